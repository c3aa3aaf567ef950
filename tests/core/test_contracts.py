"""Bad input is refused with a message that names the problem and the fix."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from semid_assets.core.data.contracts import (
    ContractError,
    validate_interactions,
    validate_items,
)


def _items(**extra):
    columns = {"item_id": ["a", "b", "c"], "created_at": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-02-01"]),
               "title": ["x", "y", "z"]}
    columns.update(extra)
    return pa.table(columns)


def test_valid_items_pass_and_timestamps_are_normalised():
    table = validate_items(_items())
    assert table.schema.field("created_at").type == pa.timestamp("us")


def test_missing_column_is_named():
    with pytest.raises(ContractError, match="created_at"):
        validate_items(pa.table({"item_id": ["a"], "title": ["x"]}))


def test_duplicate_ids_are_counted():
    with pytest.raises(ContractError, match=r"1 item_id value\(s\) occur more than once \(2 rows\)"):
        validate_items(pa.table({"item_id": ["a", "a", "b"], "created_at": [1, 2, 3]}))


def test_nan_in_embedding_column_names_column_and_count():
    vectors = pa.array([[1.0, 2.0], [np.nan, 1.0], [np.inf, 0.0]], pa.list_(pa.float32(), 2))
    with pytest.raises(ContractError, match=r"'emb_image' has NaN/inf values in 2 vector"):
        validate_items(_items(emb_image=vectors))


def test_wrong_embedding_dimension():
    with pytest.raises(ContractError, match=r"'emb_image'.*inconsistent.*dim 2: 2 vectors, dim 3: 1 vectors"):
        validate_items(_items(emb_image=pa.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0, 3.0]])))
    with pytest.raises(ContractError, match="dimension 2, but 4 is expected"):
        validate_items(_items(emb_image=pa.array([[1.0, 2.0]] * 3)), expected_dims={"emb_image": 4})


def test_token_lists_of_vectors_are_accepted():
    frames = pa.array([[[1.0, 0.0], [0.0, 1.0]]] * 3, pa.list_(pa.list_(pa.float32(), 2)))
    assert validate_items(_items(emb_frames=frames)).num_rows == 3


def test_unknown_items_in_interactions_are_reported_and_dropped_below_the_limit():
    df = pd.DataFrame({"user_id": ["u"] * 200, "item_id": ["a"] * 199 + ["ghost"],
                       "ts": pd.date_range("2025-01-01", periods=200, freq="h"), "label": [1, 0] * 100})
    kept, report = validate_interactions(df, np.array(["a", "b"]))
    assert len(kept) == 199 and report.unknown_item_rows == 1 and report.unknown_examples == ["ghost"]


def test_many_unknown_items_mean_an_id_mismatch():
    df = pd.DataFrame({"user_id": ["u"] * 4, "item_id": ["1", "2", "3", "a"], "ts": [1, 2, 3, 4], "label": [1] * 4})
    with pytest.raises(ContractError, match=r"3 of 4 rows \(75.0%\) reference 3 item_id"):
        validate_interactions(df, np.array(["a"]))


def test_labels_must_be_binary():
    df = pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "ts": [1], "label": [4]})
    with pytest.raises(ContractError, match="threshold ratings"):
        validate_interactions(df, np.array(["a"]))


MS_2025 = 1_735_812_000_000  # 2025-01-02 10:00 UTC in milliseconds


def _interactions(ts):
    return pd.DataFrame({"user_id": ["u"] * len(ts), "item_id": ["a"] * len(ts), "ts": ts, "label": [1] * len(ts)})


@pytest.mark.parametrize("column, values, count, fix", [
    ("created_at", ["2025-01-01", "2025-01-02", "2025-02-01"], r"holds strings \(3 of 3 rows\)",
     r"look like dates: convert them.*pd\.to_datetime"),
    ("created_at", pd.to_datetime(["1900-01-01", "2025-01-02", "9999-12-31"]),
     (r"has 2 value\(s\) of 3 rows outside 1970-01-01 … 2100-01-01, "
      r"e\.g\. 1900-01-01 00:00:00, 9999-12-31 00:00:00"), "correct or remove those rows"),
    ("created_at", [MS_2025 * 1_000_000, MS_2025 * 1_000_000, 1_735_812_000],
     r"holds Unix epochs that look like nanoseconds, not seconds: 2 of 3 values",
     r"pd\.to_datetime\(df\['created_at'\], unit='ns'\)"),
    ("ts", [MS_2025, MS_2025 + 1, MS_2025 + 2],
     r"holds Unix epochs that look like milliseconds, not seconds: 3 of 3 values", r"unit='ms'"),
    ("ts", [1.7e9, -5.0, np.inf], r"has 2 value\(s\) of 3 rows outside", "correct or remove those rows"),
    ("ts", [True, False, True], r"has type bool in all 3 rows", r"pd\.to_datetime"),
])
def test_bad_timestamps_are_refused_with_column_count_and_fix(column, values, count, fix):
    with pytest.raises(ContractError, match=rf"'{column}' {count}") as refused:
        if column == "created_at":
            validate_items(_items(created_at=values))
        else:
            validate_interactions(_interactions(values), np.array(["a"]))
    assert re.search(fix, str(refused.value)), str(refused.value)


def test_missing_timestamps_name_the_rows():
    with pytest.raises(ContractError, match=r"'created_at' has 2 missing value\(s\) of 3 rows \(rows 0, 2, counting "
                                            r"from 0\); every row needs a timestamp — fill or remove"):
        validate_items(_items(created_at=pa.array([None, 1_735_812_000, None], pa.int64())))


def test_time_zone_is_converted_to_utc_and_forgotten_by_pandas():
    paris = pd.to_datetime(["2025-01-01 10:00", "2025-01-02 10:00", "2025-02-01 10:00"]).tz_localize("Europe/Paris")
    table = validate_items(pa.Table.from_pandas(pd.DataFrame({"item_id": ["a", "b", "c"], "created_at": paris})))
    created = table.to_pandas()["created_at"]
    assert created.dtype == "datetime64[us]", "a stale pandas time zone would come back on every read"
    assert created[0] == pd.Timestamp("2025-01-01 09:00")
