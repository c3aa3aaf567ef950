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


def test_an_aligners_own_candidate_vectors_come_before_the_months_aligned_embeddings(tmp_path):
    """The month's aligned embeddings may be another aligner's (the candidate did not serve); its own
    candidate vectors are taken first, and the month's embeddings only when there are none."""
    from semid_assets.core.alignment.content import ContentAligner
    from semid_assets.core.data.embedding_table import embeddings_to_arrow
    from semid_assets.core.lifecycle.serving import CANDIDATE_VECTORS, stored_vectors
    from semid_assets.core.storage import AssetStore

    class Trained:  # any aligner but the content stand-in counts as trained
        info = {"month": "2025-02"}
        out_dim = 4

    store, ids, aligner = AssetStore(tmp_path), np.array(["a", "b"]), Trained()
    own, served = np.ones((2, 4), np.float32), np.zeros((2, 4), np.float32)
    assert stored_vectors(store, aligner) is None
    store.write_table("aligned_embeddings", embeddings_to_arrow(ids, served), month="2025-02")
    assert np.array_equal(stored_vectors(store, aligner)[1], served)
    store.write_table(CANDIDATE_VECTORS, embeddings_to_arrow(ids, own), month="2025-02")
    got_ids, got = stored_vectors(store, aligner)
    assert list(got_ids) == ["a", "b"] and np.array_equal(got, own)
    assert stored_vectors(store, ContentAligner({"content": 4})) is None
    # Vectors of another width (the content embedding served that month) are not even read.
    store.write_table(CANDIDATE_VECTORS, embeddings_to_arrow(ids, np.ones((2, 6), np.float32)), month="2025-02")
    assert np.array_equal(stored_vectors(store, aligner)[1], served)
