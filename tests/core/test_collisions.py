from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from semid_assets.core.collaborative.bpr import BPRMF, collaborative_item_embeddings
from semid_assets.core.tokenizers.collisions import reassign_collisions
from semid_assets.core.evaluation.comparison import comparison_row, display_table, normalized_mutual_info, relative_differences
from semid_assets.core.tokenizers.metrics import collision_stats


def test_reassign_yields_zero_collisions_where_free_codes_exist():
    codes = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2], [3, 0, 0], [3, 0, 0], [5, 5, 5]], dtype=np.int32)
    candidates = np.array([[2, 3, 4]] * 3 + [[0, 1, 2]] * 2 + [[5, 0, 1]])
    out, report = reassign_collisions(codes, candidates)
    assert collision_stats(out) == (0.0, 1)
    assert report["collision_rate_before"] == pytest.approx(3 / 6) and report["largest_group_before"] == 3
    assert report["collision_rate_after"] == 0.0 and report["largest_group_after"] == 1
    assert report["moved"] == 3 and report["stuck"] == 0
    # Prefixes never change; the first (oldest) holder keeps its tuple; movers take the nearest free code.
    assert np.array_equal(out[:, :2], codes[:, :2])
    assert out[0].tolist() == [0, 1, 2] and out[1, 2] == 3 and out[2, 2] == 4 and out[4, 2] == 1


def test_reassign_counts_items_without_a_free_code():
    codes = np.zeros((3, 2), dtype=np.int32)
    out, report = reassign_collisions(codes, np.array([[0, 1]] * 3))
    assert report["moved"] == 1 and report["stuck"] == 1
    assert report["largest_group_after"] == 2


def test_nmi_matches_known_values():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert normalized_mutual_info(a, np.array(list("xxyyzz"))) == pytest.approx(1.0)
    assert normalized_mutual_info(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])) == pytest.approx(0.0, abs=1e-12)
    # scikit-learn's arithmetic-mean NMI of these two labelings.
    assert normalized_mutual_info(np.array([0, 0, 1, 1, 1]), np.array([0, 0, 0, 1, 1])) == pytest.approx(
        0.4325381, abs=1e-6)


def test_comparison_table_and_relative_differences():
    report = pd.DataFrame({"level": [1, 2], "mse": [2.0, 1.0], "relative_mse": [0.5, 0.25],
                           "utilisation": [1.0, 0.5], "entropy": [2.0, 1.0]})
    collisions = {"collision_rate_before": 0.1, "collision_rate_after": 0.0, "largest_group_before": 3,
                  "largest_group_after": 1}
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    truth = {"category": np.array(["a", "a", "b", "b"]), "subcategory": np.array(["p", "q", "r", "s"])}
    vae = comparison_row("rq_vae", report, collisions, 1.0, 0.1, codes, truth, {1: 1.0, 8: 0.9})
    kmeans = comparison_row("rq_kmeans", report.assign(mse=[1.5, 0.75]), collisions, 1.0, 0.1, codes, None)
    assert vae["nmi_l1_category"] == pytest.approx(1.0) and vae["nmi_l2_subcategory"] == pytest.approx(1.0)
    frame = pd.DataFrame([vae, kmeans])
    shown = display_table(frame)
    assert list(shown["utilisation"]) == ["1.000 / 0.500"] * 2
    relative = relative_differences(frame)
    assert relative.iloc[0]["rq_kmeans vs rq_vae"] == "-25.00%"
    assert relative_differences(frame[frame.method == "rq_vae"]) is None


def test_bpr_learns_held_out_preferences():
    """Two user communities each liking their own half of the items: held-out AUC well above chance."""
    rng = np.random.default_rng(0)
    rows = []
    for user in range(200):
        half = user % 2
        for t, item in enumerate(rng.choice(np.arange(half * 50, half * 50 + 50), 12, replace=False)):
            rows.append((f"u{user}", f"i{item}", pd.Timestamp("2025-01-01") + pd.Timedelta(hours=t), 1))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "ts", "label"])
    item_ids = np.array([f"i{i}" for i in range(101)])  # i100: nobody liked it
    vectors, has, info = collaborative_item_embeddings(interactions, item_ids, dim=8, epochs=15, batch_size=256,
                                                       seed=0)
    assert vectors.shape == (101, 8) and not has[100] and not vectors[100].any()
    # Half the random negatives come from the user's own half, indistinguishable by design: the ceiling is 0.75.
    assert info["heldout_auc"] > 0.68
    again, _, _ = collaborative_item_embeddings(interactions, item_ids, dim=8, epochs=15, batch_size=256, seed=0)
    assert np.array_equal(vectors, again)
    with pytest.raises(ValueError, match="absent"):
        collaborative_item_embeddings(interactions, item_ids[:10], dim=8)
    with pytest.raises(ValueError, match="no positive"):
        BPRMF().fit(np.array([], dtype=int), np.array([], dtype=int), 1, 1)


def test_bpr_sparse_updates_leave_a_row_alone_in_steps_that_do_not_use_it():
    """Two users, one positive each, one per step. Both modes make the same first step; in the second,
    dense Adam also moves the first step's user (its momentum), the sparse default does not. So the
    modes agree on the second step's user and differ on the first's."""
    users, items = np.array([0, 1]), np.array([0, 1])
    fits = {sparse: BPRMF(dim=4, epochs=1, batch_size=1, seed=0, sparse_updates=sparse).fit(users, items, 2, 2)
            for sparse in (True, False)}
    gap = np.abs(fits[True].user_factors - fits[False].user_factors).max(axis=1)
    assert sorted(gap)[0] < 1e-6 and sorted(gap)[1] > 1e-3, gap


def test_bpr_fits_the_same_factors_twice_with_two_threads():
    rng = np.random.default_rng(4)
    users, items = rng.integers(0, 300, 20_000), rng.integers(0, 500, 20_000)
    first, again = (BPRMF(dim=16, epochs=2, batch_size=4096, seed=0, n_threads=2).fit(users, items, 300, 500)
                    for _ in range(2))
    assert np.array_equal(first.item_factors, again.item_factors)
    assert np.array_equal(first.user_factors, again.user_factors)


def test_bpr_heldout_auc_in_blocks_of_users_is_the_auc_of_all_at_once(monkeypatch):
    from semid_assets.core.collaborative import bpr

    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 40, 300), rng.integers(0, 60, 300)
    model = BPRMF(dim=4, epochs=2, batch_size=64, seed=1).fit(users, items, 40, 60)
    held_users, held_items = rng.integers(0, 40, 37), rng.integers(0, 60, 37)
    # The AUC as one array of every held-out user's negatives (what the blocks replace).
    neg_items = np.random.default_rng(model.seed + 1).integers(0, 60, size=(37, 100))
    pu = model.user_factors[held_users]
    pos = np.einsum("ij,ij->i", pu, model.item_factors[held_items]) + model.item_bias[held_items]
    neg = np.einsum("ij,ikj->ik", pu, model.item_factors[neg_items]) + model.item_bias[neg_items]
    whole = float((pos[:, None] > neg).mean() + 0.5 * (pos[:, None] == neg).mean())
    monkeypatch.setattr(bpr, "_AUC_BLOCK", 5)
    assert model.heldout_auc(held_users, held_items) == whole
