"""The hierarchy report on a planted trie: nested clusters must show rising similarity."""

from __future__ import annotations

import numpy as np
import pytest

from semid_assets.core.evaluation.hierarchy import example_subtrees, prefix_similarity, render_subtree, trie_stats


def _planted(n=3000, seed=0):
    """Vectors built coarse to fine from the codes themselves, like a good tokenizer's trie."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 6, (n, 3))
    d = 32
    tables = [rng.normal(size=(6 ** (level + 1), d)) * scale for level, scale in enumerate((1.0, 0.7, 0.5))]
    X = rng.normal(size=(n, d)) * 0.4
    key = np.zeros(n, dtype=np.int64)
    for level in range(3):
        key = key * 6 + codes[:, level]
        X += tables[level][key]
    return codes, X.astype(np.float32)


def test_similarity_rises_with_prefix_length_on_planted_data():
    codes, X = _planted()
    table = prefix_similarity(codes, X, pairs=4000, seed=0)
    cosine = table["mean_cosine"].to_numpy()
    assert (np.diff(cosine) > 0).all()
    assert cosine[0] > table["random_cosine"].iloc[0] + 0.1
    assert list(table["prefixes"]) == [6, 36, 216]
    assert (table["size_max"].diff().dropna() <= 0).all()


def test_prefix_similarity_is_deterministic_and_says_when_no_pair_shares_a_prefix():
    codes, X = _planted(n=200)
    assert prefix_similarity(codes, X, pairs=500, seed=3).equals(prefix_similarity(codes, X, pairs=500, seed=3))
    unique = np.arange(10).reshape(-1, 1)
    table = prefix_similarity(unique, np.eye(10, dtype=np.float32), pairs=10)
    assert table["pairs"].iloc[0] == 0 and np.isnan(table["mean_cosine"].iloc[0])
    with pytest.raises(ValueError, match="all zeros"):
        prefix_similarity(unique, np.zeros((10, 3), dtype=np.float32))


def test_trie_stats_counts_prefixes_and_branching():
    codes = np.array([[0, 0], [0, 1], [0, 1], [1, 0]])
    stats = trie_stats(codes)
    assert list(stats["prefixes"]) == [2, 3]
    assert list(stats["branching_mean"]) == [2.0, 1.5] and list(stats["branching_max"]) == [2, 2]
    assert list(stats["singletons"]) == [1, 2]


def test_examples_are_deterministic_and_render_titles():
    codes, _ = _planted(n=600)
    picks = example_subtrees(codes, count=2)
    assert picks == example_subtrees(codes.copy(), count=2) and len(set(picks)) == 2
    prefixes, counts = np.unique(codes[:, :2], axis=0, return_counts=True)
    assert picks[0] == tuple(prefixes[np.argmax(counts)])
    titles = [f"video {i}" for i in range(len(codes))]
    text = render_subtree(codes, titles, picks[0], max_children=2, max_items=1)
    assert text.startswith(f"- `{picks[0][0]}-{picks[0][1]}` — {counts.max()} items")
    assert "  - `" in text and "    - video " in text and "more" in text


def test_centred_figures_equal_centring_the_whole_matrix():
    # Only the sampled rows are centred now; the figures must be those of centring every row first.
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(4000, 24)) + 0.3).astype(np.float32)
    codes = np.stack([rng.integers(0, 8, 4000), rng.integers(0, 4, 4000)], 1)
    table = prefix_similarity(codes, X, pairs=3000, seed=1)
    X64 = np.asarray(X, np.float64)
    centred = X64 - X64.mean(axis=0)
    centred = np.asarray(centred, np.float32)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    rng = np.random.default_rng(1)  # the function's own draws, in its order
    i, j = rng.integers(0, 4000, 3000), rng.integers(0, 3999, 3000)
    j += j >= i
    expected = float(np.einsum("ij,ij->i", centred[i], centred[j]).mean())
    assert table["random_centred_cosine"].iloc[0] == expected
