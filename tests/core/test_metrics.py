from __future__ import annotations

import math

import numpy as np
import pytest

from semid_assets.core.tokenizers.metrics import (
    codebook_utilisation,
    collision_stats,
    level_report,
    prefix_group_ids,
    token_entropy,
)
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans


def test_uniform_codes_have_entropy_ln_k_and_full_utilisation():
    K = 64
    codes = np.tile(np.arange(K), 10)
    assert token_entropy(codes, K) == pytest.approx(math.log(K))
    assert codebook_utilisation(codes, K) == 1.0


def test_single_code_has_zero_entropy():
    codes = np.full(100, 5)
    assert token_entropy(codes, 16) == 0.0
    assert codebook_utilisation(codes, 16) == pytest.approx(1 / 16)


def test_half_the_codes_used():
    codes = np.repeat(np.arange(0, 32, 2), 3)  # 16 of 32 codes
    assert codebook_utilisation(codes, 32) == 0.5
    assert token_entropy(codes, 32) == pytest.approx(math.log(16))


def test_entropy_of_skewed_distribution():
    codes = np.array([0, 0, 0, 1])
    p = np.array([0.75, 0.25])
    assert token_entropy(codes, 4) == pytest.approx(float(-(p * np.log(p)).sum()))


@pytest.mark.parametrize(
    "codes, K, match",
    [
        (np.array([0, 4]), 4, "out of range"),
        (np.array([-1, 0]), 4, "out of range"),
        (np.array([], dtype=int), 4, "empty"),
        (np.zeros((2, 2), dtype=int), 4, "1-D"),
        (np.array([0.0, 1.0]), 4, "integers"),
        (np.array([0, 1]), 0, "codebook_size"),
    ],
)
def test_code_level_validation(codes, K, match):
    with pytest.raises(ValueError, match=match):
        codebook_utilisation(codes, K)


def test_collision_stats_hand_made():
    codes = np.array(
        [
            [1, 2, 3],
            [1, 2, 3],  # dup of row 0
            [1, 2, 4],
            [0, 0, 0],
            [1, 2, 3],  # third of the (1, 2, 3) group
            [0, 0, 0],  # dup of row 3
            [2, 2, 3],
        ]
    )
    rate, largest = collision_stats(codes)
    assert rate == pytest.approx(1 - 4 / 7)
    assert largest == 3


def test_collision_stats_no_collision_and_1d():
    assert collision_stats(np.arange(10)[:, None]) == (0.0, 1)
    assert collision_stats(np.array([3, 3, 1])) == (pytest.approx(1 / 3), 2)


def test_prefix_group_ids_do_not_overflow_with_huge_codes():
    # Codes near int32 max on many levels: a naive mixed-radix key would overflow int64.
    big = np.iinfo(np.int32).max
    codes = np.array([[big, big, big, big], [big, big, big, 0], [big, big, big, big]])
    groups = prefix_group_ids(codes)
    assert [len(np.unique(g)) for g in groups] == [1, 1, 1, 2]
    assert groups[-1][0] == groups[-1][2] != groups[-1][1]


def _blobs(n=3000, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    top = rng.normal(scale=6.0, size=(8, dim))
    low = rng.normal(scale=2.0, size=(64, dim))
    a = rng.integers(0, 8, n)
    b = a * 8 + rng.integers(0, 8, n)
    return (top[a] + low[b] + rng.normal(scale=0.5, size=(n, dim))).astype(np.float32)


def test_level_report_matches_direct_computation():
    X = _blobs()
    rq = RQKMeans(levels=3, codebook_size=16, n_iter=8, seed=1)
    codes = rq.fit_encode(X)
    report = level_report(X, codes, rq.codebooks)

    assert list(report.columns) == [
        "level", "mse", "relative_mse", "utilisation", "entropy",
        "entropy_norm", "collision_rate", "largest_group",
    ]
    assert report["level"].tolist() == [1, 2, 3]
    total_ss = float(((X.astype(np.float64) - X.mean(0, dtype=np.float64)) ** 2).sum())
    recon = np.zeros_like(X, dtype=np.float64)
    for lvl in range(3):
        recon += rq.codebooks[lvl][codes[:, lvl]]
        sse = float(((X - recon) ** 2).sum())
        row = report.iloc[lvl]
        assert row["mse"] == pytest.approx(sse / X.size, rel=1e-4)
        assert row["mse"] == pytest.approx(rq.fit_info["levels"][lvl]["mse"], rel=1e-4)
        assert row["relative_mse"] == pytest.approx(sse / total_ss, rel=1e-4)
        assert row["utilisation"] == codebook_utilisation(codes[:, lvl], 16)
        assert row["entropy"] == pytest.approx(token_entropy(codes[:, lvl], 16))
        assert row["entropy_norm"] == pytest.approx(row["entropy"] / math.log(16))
        rate, largest = collision_stats(codes[:, : lvl + 1])
        assert row["collision_rate"] == pytest.approx(rate)
        assert row["largest_group"] == largest

    assert report["mse"].is_monotonic_decreasing
    assert report["collision_rate"].is_monotonic_decreasing
    assert 0 < report["relative_mse"].iloc[-1] < report["relative_mse"].iloc[0] < 1


def test_level_report_validation():
    X = np.zeros((4, 3), dtype=np.float32)
    codebooks = np.zeros((2, 5, 3), dtype=np.float32)
    codes = np.zeros((4, 2), dtype=np.int32)
    with pytest.raises(ValueError, match="expected \\(4, 2\\)"):
        level_report(X, codes[:, :1], codebooks)
    with pytest.raises(ValueError, match="dim"):
        level_report(np.zeros((4, 2), dtype=np.float32), codes, codebooks)
    with pytest.raises(ValueError, match="out of range"):
        level_report(X, codes + 5, codebooks)
    with pytest.raises(ValueError, match="3-D"):
        level_report(X, codes, codebooks[0])
