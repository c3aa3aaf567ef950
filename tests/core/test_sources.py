"""Sources: the Parquet contract, month slicing, and refusals."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semid_assets.core.data.contracts import ContractError
from semid_assets.core.data.sources import ParquetSource, month_end, open_source


def _write(tmp_path, items: pd.DataFrame, interactions: pd.DataFrame):
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
