"""Generations: published SIDs stay literally, new items get unique SIDs, cuts keep what did not change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from semid_assets.core.lifecycle.generations import (FIRST_MONTH, GENERATION, Generation, cut_generation,
                                                     extend_generation, first_generation, new_item_mask, place_items,
                                                     published)
from semid_assets.core.lifecycle.migration import migration_summary, migration_table, prefix_flows
from semid_assets.core.tokenizers.sids import SUFFIX


def _full_ids(table: pd.DataFrame) -> list[tuple]:
    columns = [c for c in table.columns if c[:1] == "c" and c[1:].isdigit()] + [SUFFIX]
    return [tuple(r) for r in table[columns].to_numpy().tolist()]


def _random_codes(n: int, levels: int = 3, K: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, K, size=(n, levels))


def test_first_generation_gives_unique_ids_in_catalogue_order():
    codes = np.array([[1, 2], [1, 2], [0, 0], [1, 2]])
    table, moved = first_generation(np.array(["a", "b", "c", "d"]), codes, "2025-01")
    assert moved == 0
    assert table[SUFFIX].tolist() == [0, 1, 0, 2]
    assert set(table[GENERATION]) == {1} and set(table[FIRST_MONTH]) == {"2025-01"}
    assert len(set(_full_ids(table))) == 4


def test_published_ids_stay_literally_and_new_items_are_unique_month_after_month():
    rng = np.random.default_rng(3)
    ids = np.array([f"i{k}" for k in range(300)])
    table, _ = first_generation(ids[:100], _random_codes(100, seed=1), "2025-01")
    first_rows = table.copy()
    for month, upto in (("2025-02", 180), ("2025-03", 300)):
        previous = published(table)
        new = new_item_mask(previous, ids[:upto])
        table, _ = extend_generation(table, ids[:upto], rng.integers(0, 4, size=(int(new.sum()), 3)), month)
        # Every item published before keeps its row bit for bit.
        kept = table.set_index("item_id").loc[first_rows["item_id"]].reset_index()
        pd.testing.assert_frame_equal(kept, first_rows, check_dtype=True)
        assert len(set(_full_ids(table))) == len(table)
        assert table.loc[new, FIRST_MONTH].eq(month).all()
    assert list(table["item_id"]) == list(ids)


def test_extend_is_deterministic():
    ids = np.array([f"i{k}" for k in range(50)])
    table, _ = first_generation(ids[:30], _random_codes(30, seed=4), "2025-01")
    new_codes = _random_codes(20, seed=5)
    once, _ = extend_generation(table, ids, new_codes, "2025-02")
    again, _ = extend_generation(table, ids, new_codes, "2025-02")
    pd.testing.assert_frame_equal(once, again)


def test_a_new_item_on_a_taken_tuple_takes_the_lowest_free_suffix_or_a_free_code_with_candidates():
    fixed = np.array([[1, 1], [1, 1], [2, 2]])
    fixed_suffix = np.array([0, 2, 0])
    codes, suffix, moved = place_items(fixed, fixed_suffix, np.array([[1, 1], [1, 1], [3, 3]]))
    assert suffix.tolist() == [1, 3, 0] and moved == 0
    candidates = np.array([[1, 0], [1, 0], [3, 2]])
    codes, suffix, moved = place_items(fixed, fixed_suffix, np.array([[1, 1], [1, 1], [3, 3]]), candidates)
    # The first mover finds (1, 0) free; the second finds both candidates taken and takes a suffix.
    assert codes.tolist() == [[1, 0], [1, 1], [3, 3]] and suffix.tolist() == [0, 1, 0] and moved == 1


def test_a_catalogue_that_lost_published_items_is_refused_with_the_fix():
    table, _ = first_generation(np.array(["a", "b"]), np.array([[0, 1], [1, 0]]), "2025-01")
    with pytest.raises(ValueError, match=r"1 item\(s\) published earlier are missing.*\['b'\].*created_at"):
        new_item_mask(published(table), np.array(["a", "c"]))


def test_cut_keeps_suffix_and_first_month_of_unchanged_tuples():
    ids = np.array(["a", "b", "c", "d"])
    old, _ = first_generation(ids[:3], np.array([[0, 0], [0, 0], [1, 1]]), "2025-01")
    # b keeps its tuple (0, 0) and its suffix 1 although a moves away; c changes; d is new.
    new, _ = cut_generation(old, ids, np.array([[2, 2], [0, 0], [1, 0], [0, 0]]), "2025-04", 2)
    row = new.set_index("item_id")
    assert (row.loc["b", SUFFIX], row.loc["b", FIRST_MONTH]) == (1, "2025-01")
    assert row.loc["d", SUFFIX] == 0 and row.loc["d", FIRST_MONTH] == "2025-04"
    assert row.loc["a", FIRST_MONTH] == "2025-04" and row.loc["c", FIRST_MONTH] == "2025-04"
    assert set(new[GENERATION]) == {2}
    assert len(set(_full_ids(new))) == len(new)


def test_migration_lists_every_item_and_where_each_old_prefix_went():
    ids = np.array(["a", "b", "c", "d"])
    old, _ = first_generation(ids, np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), "2025-01")
    new, _ = cut_generation(old, ids, np.array([[0, 0], [0, 1], [0, 2], [2, 1]]), "2025-02", 2)
    migration = migration_table(old, new)
    assert list(migration["item_id"]) == list(ids)
    assert migration["sid_changed"].tolist() == [False, False, True, True]
    assert migration["prefix_kept"].tolist() == [2, 2, 0, 0]
    flows = prefix_flows(migration, [1])
    one = flows[flows["old_prefix"] == "1"].set_index("new_prefix")
    assert one["items"].to_dict() == {"0": 1, "2": 1} and one["share"].sum() == pytest.approx(1.0)
    summary = migration_summary(migration)
    assert summary["sid_unchanged"] == 0.5 and summary["prefix_1_unchanged"] == 0.5


def test_generation_record_round_trips():
    record = Generation(number=2, method="rq_kmeans", origin_month="2025-04", aligner_month="2025-03",
                        reason="mse gain 0.12", previous=1)
    assert Generation.from_json(record.to_json()) == record
    with pytest.raises(ValueError, match="numbered from 1"):
        Generation(number=0, method="rq_kmeans", origin_month="2025-04", aligner_month=None, reason="")


def test_prefix_keys_name_each_rows_leading_codes():
    from semid_assets.core.lifecycle.migration import prefix_key

    codes = np.random.default_rng(2).integers(-1, 12, size=(500, 3))
    for length in (1, 2, 3):
        expected = ["-".join(str(c) for c in row[:length]) for row in codes.tolist()]
        assert prefix_key(codes, length).tolist() == expected
    assert prefix_key(np.array([[12, 5, 7]], dtype=np.int32), 3).tolist() == ["12-5-7"]
    assert prefix_key(np.zeros((0, 3), dtype=np.int64), 2).shape == (0,)
