from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from semid_assets.core.tokenizers.sids import codes_of_items, collision_suffix, semantic_id_table


def test_suffix_hand_made():
    codes = np.array([[1, 2], [1, 2], [0, 0], [1, 2], [0, 0], [3, 3], [1, 3]])
    np.testing.assert_array_equal(collision_suffix(codes), [0, 1, 0, 2, 1, 0, 0])
    assert collision_suffix(codes).dtype == np.int32


def test_suffix_counts_in_row_order_per_group():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, size=(2000, 2))  # 9 tuples: many collisions
    suffix = collision_suffix(codes)
    seen: dict[tuple[int, ...], int] = {}
    for row, s in zip(map(tuple, codes), suffix):
        assert s == seen.get(row, 0)
        seen[row] = s + 1


def test_older_items_keep_their_suffix_when_newer_items_join():
    rng = np.random.default_rng(1)
    old = rng.integers(0, 4, size=(300, 3))
    new = rng.integers(0, 4, size=(200, 3))
    before = collision_suffix(old)
    after = collision_suffix(np.vstack([old, new]))
    np.testing.assert_array_equal(after[: len(old)], before)


def test_full_sid_is_unique():
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 5, size=(5000, 3))
    ids = np.arange(5000) * 10
    table = semantic_id_table(ids, codes)
    assert not table.duplicated(["c1", "c2", "c3", "suffix"]).any()


def test_table_layout_and_order():
    codes = np.array([[4, 1], [4, 1], [2, 0]], dtype=np.int64)
    table = semantic_id_table(np.array(["x", "a", "m"]), codes)
    assert list(table.columns) == ["item_id", "c1", "c2", "suffix"]
    assert table["item_id"].tolist() == ["x", "a", "m"]
    assert table[["c1", "c2"]].to_numpy().tolist() == codes.tolist()
    assert table["suffix"].tolist() == [0, 1, 0]
    for col in ("c1", "c2", "suffix"):
        assert table[col].dtype == np.int32
    assert table.index.equals(pd.RangeIndex(3))


def test_table_keeps_series_ids_positionally():
    ids = pd.Series([10, 20, 30], index=[7, 8, 9], dtype="int64")
    table = semantic_id_table(ids, np.zeros((3, 1), dtype=np.int32))
    assert table["item_id"].tolist() == [10, 20, 30]
    assert table["item_id"].dtype == np.int64
    assert table["suffix"].tolist() == [0, 1, 2]


def test_duplicate_ids_rejected():
    codes = np.zeros((5, 2), dtype=np.int32)
    with pytest.raises(ValueError, match=r"2 id\(s\) occur more than once, on 4 rows"):
        semantic_id_table(np.array([1, 2, 1, 3, 2]), codes)


def test_length_mismatch_and_bad_codes():
    with pytest.raises(ValueError, match="3 entries but codes has 2 rows"):
        semantic_id_table(np.arange(3), np.zeros((2, 2), dtype=np.int32))
    with pytest.raises(ValueError, match="2-D"):
        collision_suffix(np.zeros(3, dtype=np.int32))
    with pytest.raises(ValueError, match="integers"):
        collision_suffix(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        collision_suffix(np.array([[0, -1]]))


def test_empty_input():
    assert collision_suffix(np.zeros((0, 3), dtype=np.int32)).shape == (0,)
    table = semantic_id_table(np.array([], dtype=np.int64), np.zeros((0, 2), dtype=np.int32))
    assert list(table.columns) == ["item_id", "c1", "c2", "suffix"] and len(table) == 0


def test_codes_of_items_reads_a_stored_table_back_and_marks_unknown_items():
    codes = np.array([[1, 2], [3, 4], [1, 2]])
    table = semantic_id_table(np.array(["a", "b", "c"]), codes)
    got = codes_of_items(table, np.array(["c", "new", "a"]))
    assert got.tolist() == [[1, 2], [-1, -1], [1, 2]] and got.dtype == np.int64
