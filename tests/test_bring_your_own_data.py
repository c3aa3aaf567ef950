"""Two Parquet files following the contract run the same lineage; MovieLens files are read as documented."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pyarrow.parquet as pq
import pytest

from semid_assets.cli import main
from semid_assets.core.data.errors import ContractError
from semid_assets.core.data.sources import MovieLensSource, ParquetSource
from semid_assets.core.evaluation.ranking_data import split_month
from semid_assets.definitions import build_definitions
from semid_assets.demo import run_demo
from semid_assets.io_manager import write_parquet_atomically
from semid_assets.settings import Settings


def test_parquet_contract_runs_the_whole_lineage(tiny_run, tiny_settings, tmp_path):
    _, instance, _, months = tiny_run
    source = tiny_settings.source()
    month = months[-1]
    items = source.items_as_of(month).drop_columns(["truth_category", "truth_subcategory", "truth_topic",
                                                    "truth_community"])
    interactions = source.interactions_as_of(month)
    items_path, interactions_path = tmp_path / "items.parquet", tmp_path / "interactions.parquet"
    pq.write_table(items, items_path)
    interactions.to_parquet(interactions_path, index=False)

    # Same home: the text-token cache is shared, so only the lineage itself runs again.
    settings = replace(tiny_settings, dataset="parquet", items_path=str(items_path),
                       interactions_path=str(interactions_path), codebook_size_override=16)
    parquet_months = settings.source().months()
    assert parquet_months[-1] == month
    summary = run_demo(build_definitions(settings), instance, [month], ["rq_kmeans"], log=lambda s: None)
    assert summary.loc[0, "items"] == items.num_rows
    sids = pd.read_parquet(settings.assets_dir("parquet") / "semantic_ids" / f"month={month}" / "method=rq_kmeans.parquet")
    assert list(sids["item_id"]) == items.column("item_id").to_pylist()


def test_movielens_files_are_read_as_documented(tmp_path):
    (tmp_path / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t5\t875000000\n"      # 1997-09-23
        "2\t10\t2\t876000000\n"      # 1997-10-04
        "2\t20\t4\t880000000\n")     # 1997-11-20
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Children's Comedy\n"
        "20\tHeat\t1995\tAction Crime Thriller\n"
        "30\tNever Rated\t1996\tDrama\n")
    source = MovieLensSource(str(tmp_path))
    assert source.months() == ["1997-09", "1997-10", "1997-11"]
    september = source.items_as_of("1997-09")
    assert september.column("item_id").to_pylist() == [10]
    assert september.column("title").to_pylist() == ["Toy Story (1995)"]
    assert september.column("genres").to_pylist() == ["Animation, Children's, Comedy"]
    november = source.interactions_as_of("1997-11")
    assert list(november["label"]) == [1, 0, 1]
    assert source.items_as_of("1997-11").num_rows == 2, "a movie nobody rated never entered the catalogue"


def _bring(tmp_path, created_at, ts) -> tuple[str, str]:
    items_path, interactions_path = tmp_path / "items.parquet", tmp_path / "interactions.parquet"
    pd.DataFrame({"item_id": ["a", "b", "c"], "created_at": created_at, "title": ["x", "y", "z"]}).to_parquet(items_path)
    pd.DataFrame({"user_id": ["u", "v", "u", "v"], "item_id": ["a", "a", "b", "c"], "ts": ts,
                  "label": [1, 0, 1, 1]}).to_parquet(interactions_path)
    return str(items_path), str(interactions_path)


def test_aware_timestamps_reach_the_ranking_split_as_naive_utc(tmp_path):
    utc = pd.to_datetime(["2025-01-03", "2025-02-04", "2025-02-05"]).tz_localize("UTC")
    ts = pd.to_datetime(["2025-01-04", "2025-01-20", "2025-02-06", "2025-02-07"]).tz_localize("UTC")
    source = ParquetSource(*_bring(tmp_path, utc, ts))
    # raw_items travels through the IO manager's Parquet file before ranking_eval reads it.
    stored = tmp_path / "raw_items.parquet"
    write_parquet_atomically(source.items_as_of("2025-02"), stored)
    created_at = pq.read_table(stored, columns=["item_id", "created_at"]).to_pandas()["created_at"].to_numpy()
    split = split_month(source.interactions_as_of("2025-02"), created_at, "2025-02", max_train_rows=100)
    assert list(split.new_items) == [False, True, True] and len(split.train) == 2 and len(split.evaluation) == 2


@pytest.fixture
def stray_2099(tmp_path, monkeypatch):
    """A Parquet dataset whose log holds one row dated 2099, set as the environment's dataset."""
    created = pd.to_datetime(["2025-01-03", "2025-01-04", "2025-01-05"])
    ts = pd.to_datetime(["2025-01-04", "2025-01-20", "2025-02-06", "2099-02-07"])
    items_path, interactions_path = _bring(tmp_path, created, ts)
    for key, value in {"SEMID_HOME": str(tmp_path / "home"), "SEMID_DATASET": "parquet", "SEMID_SIZE": "default",
                       "SEMID_ITEMS": items_path, "SEMID_INTERACTIONS": interactions_path,
                       "DAGSTER_HOME": str(tmp_path / "home" / "dagster")}.items():
        monkeypatch.setenv(key, value)
    return interactions_path


def test_a_stray_future_row_is_refused_before_partitions_are_built(stray_2099):
    settings = Settings.from_env()
    refusal = rf"{stray_2099}: column 'ts' has 1 value\(s\) of 4 rows in the future .*e\.g\. 2099-02-07 00:00:00"
    with pytest.raises(ContractError, match=refusal):
        settings.source().months()
    with pytest.raises(ContractError, match=refusal):
        build_definitions(settings)


def test_semid_demo_and_ui_refuse_a_stray_future_row_plainly(stray_2099, monkeypatch, capsys, tmp_path):
    assert main(["demo", "--dataset", "parquet", "--methods", "rq_kmeans"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("semid: error: ") and "2099-02-07" in err and "Correct or remove those rows" in err
    assert not (tmp_path / "home").exists(), "nothing is set up for a dataset that is refused"

    def serve(*args, **kwargs):
        raise AssertionError("the servers started on a dataset that must be refused")

    monkeypatch.setattr("semid_assets.ui.serve", serve)
    assert main(["ui"]) == 2
    assert "2099-02-07" in capsys.readouterr().err
