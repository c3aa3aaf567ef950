from __future__ import annotations

import numpy as np
import pytest

from semid_assets.core.alignment import partner_rank
from semid_assets.core.alignment.partner_rank import items_ahead


def _by_hand(x: np.ndarray, queries: np.ndarray, partners: np.ndarray, cap: int) -> np.ndarray:
    """Every score in float64 (exact for products of float32 numbers, up to the sums' last bits)."""
    x64 = x.astype(np.float64)
    scores = x64[queries] @ x64.T
    rows = np.arange(len(queries))
    partner = scores[rows, partners].copy()
    scores[rows, queries] = -np.inf
    scores[rows, partners] = -np.inf
    return np.minimum((scores >= partner[:, None]).sum(axis=1), cap)


def _hard_catalogue(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items a float32 product cannot tell apart from the partner, exact ties, zero vectors."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, 48)).astype(np.float32)
    x[5] = 0
    x[6:20] = x[100]  # duplicates: exact ties
    x[200:260] = x[300] + rng.normal(scale=1e-6, size=(60, 48)).astype(np.float32)  # scores within a rounding
    x[400:600] = x[700] + rng.normal(scale=0.03, size=(200, 48)).astype(np.float32)
    queries, partners = rng.integers(0, 3000, 700), rng.integers(0, 3000, 700)
    queries[:50], partners[:50] = 300, np.arange(200, 250)
    queries[60:160], partners[60:160] = 700, np.arange(400, 500)
    queries[50], queries[51:60], partners[51:60] = 5, 100, np.arange(6, 15)
    return x, queries, partners


def test_items_ahead_counts_what_exact_arithmetic_counts(monkeypatch):
    # Small blocks, so queries leave in the middle and undecided items come from several blocks.
    monkeypatch.setattr(partner_rank, "_QUERY_BLOCK", 256)
    monkeypatch.setattr(partner_rank, "_ITEM_BLOCK", 512)
    monkeypatch.setattr(partner_rank, "_RESCORE_BLOCK", 1000)
    for seed in range(3):
        x, queries, partners = _hard_catalogue(seed)
        assert np.array_equal(items_ahead(x, queries, partners, 51), _by_hand(x, queries, partners, 51))
    # Full ranks (no cap): every partner deep in the catalogue has neighbours closer than a rounding.
    x, queries, partners = _hard_catalogue(3)
    assert np.array_equal(items_ahead(x, queries, partners, len(x)), _by_hand(x, queries, partners, len(x)))


def test_items_ahead_is_the_same_at_any_thread_count_and_refuses_nan():
    x, queries, partners = _hard_catalogue(7)
    assert np.array_equal(items_ahead(x, queries, partners, 50, threads=1),
                          items_ahead(x, queries, partners, 50, threads=2))
    assert len(items_ahead(x, queries[:0], partners[:0], 50)) == 0
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        items_ahead(x, queries, partners, 50)


def test_a_zero_vector_finds_nothing_and_ties_count_against_the_partner():
    x = np.eye(4, dtype=np.float32)
    x[3] = 0
    x[2] = x[1]  # item 2 ties with item 1 against every query
    # Item 0 sees everything else at 0: its partner 1 has two items (2, 3) at its score.
    assert list(items_ahead(x, np.array([0, 3, 1]), np.array([1, 0, 2]), 10)) == [2, 2, 0]
