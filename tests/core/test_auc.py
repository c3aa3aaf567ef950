"""AUC, log-loss and the paired user bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from semid_assets.core.evaluation.auc import ClusterBootstrap, auc, log_loss


def _pairwise_auc(labels, scores):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)  # rounding makes many ties
    assert auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores), abs=1e-12)
    assert auc([0, 1], [0.2, 0.9]) == 1.0 and auc([0, 1], [0.9, 0.2]) == 0.0 and auc([0, 1], [0.5, 0.5]) == 0.5


def test_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(1)
    labels, scores = rng.integers(0, 2, 50), rng.random(50)
    weights = rng.integers(0, 4, 50)
    repeated = np.repeat(np.arange(50), weights)
    assert auc(labels, scores, weights) == pytest.approx(auc(labels[repeated], scores[repeated]))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="0 \\(negative\\) or 1"):
        auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        auc([0, 1], [0.1, np.nan])
    assert np.isnan(auc([1, 1], [0.1, 0.2]))


def test_log_loss():
    assert log_loss([1, 0], [0.5, 0.5]) == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        log_loss([1], [1.5])


def test_paired_interval_of_a_real_difference_excludes_zero_and_covers_the_estimate():
    rng = np.random.default_rng(2)
    users = rng.integers(0, 200, 4000)
    labels = rng.integers(0, 2, 4000)
    good = labels + rng.normal(0, 1.0, 4000)
    worse = labels + rng.normal(0, 1.6, 4000)
    boot = ClusterBootstrap(labels, users, n_boot=200, seed=0)
    a, rep_a = boot.auc(good)
    b, rep_b = boot.auc(worse)
    assert a.low < a.estimate < a.high and a.estimate > b.estimate
    diff = boot.difference(a.estimate, rep_a, b.estimate, rep_b)
    assert diff.excludes_zero() and diff.low > 0
    # Same seed, same replicates.
    again, _ = ClusterBootstrap(labels, users, n_boot=200, seed=0).auc(good)
    assert again == a


def test_with_few_items_the_item_bootstrap_is_the_wider():
    # 8 items whose appeal differs, 400 users: most of the uncertainty is in which items were drawn.
    rng = np.random.default_rng(3)
    items = rng.integers(0, 8, 6000)
    users = rng.integers(0, 400, 6000)
    appeal = rng.normal(0, 1, 8)
    labels = (rng.random(6000) < 1 / (1 + np.exp(-appeal[items]))).astype(int)
    scores = appeal[items] + rng.normal(0, 1, 6000)
    by_users = ClusterBootstrap(labels, users, n_boot=200, seed=0).auc(scores)[0]
    by_items = ClusterBootstrap(labels, items, n_boot=200, seed=0).auc(scores)[0]
    assert by_users.estimate == by_items.estimate
    assert by_items.width > 2 * by_users.width
