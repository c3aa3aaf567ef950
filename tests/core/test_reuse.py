"""Reusing an aligner's stored vectors instead of embedding every item again."""

from __future__ import annotations

import numpy as np

from semid_assets.core.alignment.reuse import PROBE_ITEMS, embed_reusing


def _embedder(vectors: np.ndarray):
    calls = []

    def embed(rows: np.ndarray) -> np.ndarray:
        calls.append(np.asarray(rows))
        return vectors[rows]

    return embed, calls


def test_stored_vectors_of_the_same_aligner_are_reused_and_only_new_items_embedded():
    rng = np.random.default_rng(0)
    ids = np.array([f"i{i}" for i in range(1000)])
    truth = rng.standard_normal((1000, 8)).astype(np.float32)
    order = rng.permutation(900)  # the earlier month held 900 of the items, in another order
    embed, calls = _embedder(truth)
    got = embed_reusing(ids, (ids[order], truth[order]), embed)
    assert np.array_equal(got, truth)
    assert len(calls) == 2 and len(calls[0]) == PROBE_ITEMS
    assert set(calls[1].tolist()) == set(range(900, 1000))


def test_vectors_of_another_aligner_are_not_reused():
    rng = np.random.default_rng(1)
    ids = np.array([f"i{i}" for i in range(600)])
    truth = rng.standard_normal((600, 8)).astype(np.float32)
    other = truth.copy()
    other[3, 0] += 1e-6  # one bit off in the probe: everything is embedded again
    embed, calls = _embedder(truth)
    assert np.array_equal(embed_reusing(ids, (ids, other), embed), truth)
    assert len(calls[-1]) == 600
    embed, calls = _embedder(truth)
    assert np.array_equal(embed_reusing(ids, None, embed), truth) and len(calls) == 1
    embed, calls = _embedder(truth)
    assert np.array_equal(embed_reusing(ids, (np.array(["x"]), truth[:1]), embed), truth)
    assert len(calls) == 1 and len(calls[0]) == 600
