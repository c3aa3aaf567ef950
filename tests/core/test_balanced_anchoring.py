"""Anchored retraining of balanced RQ-Kmeans: warm start, relabelling, capacity, catalogue codes."""

from __future__ import annotations

import numpy as np
import pytest

from semid_assets.core.tokenizers.anchoring import anchored_fit_encode, carried_over_codebooks, relabel_to_previous
from semid_assets.core.tokenizers.balanced_kmeans import RQKMeansBalanced, balanced_assign, balanced_capacity
from semid_assets.core.tokenizers.base import Anchoring, WarmStart


def _clustered(n=4000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(32, d)).astype(np.float32) * 3
    return (centres[rng.integers(0, 32, n)] + rng.normal(size=(n, d))).astype(np.float32)


def _model(seed, n_iter=100, **options):
    # Every point trains (max_points_per_centroid=None): the converged codebooks are then a fixed
    # point of the balanced Lloyd iterations on the whole catalogue.
    return RQKMeansBalanced(levels=3, codebook_size=16, n_iter=n_iter, seed=seed, n_threads=1,
                            max_points_per_centroid=None, **options)


def _within_capacity(codes, K, slack=0.0):
    capacity = balanced_capacity(len(codes), K, slack)
    return all(np.bincount(codes[:, level], minlength=K).max() <= capacity for level in range(codes.shape[1]))


def test_balanced_model_anchors_its_codebooks_and_codes_a_population():
    assert RQKMeansBalanced.anchoring is Anchoring.CODEBOOKS and RQKMeansBalanced.population_codes


def test_balanced_assign_follows_a_permutation_of_the_centroids():
    X = _clustered(seed=6)
    rng = np.random.default_rng(7)
    centroids = X[rng.choice(len(X), 16, replace=False)]
    capacity = balanced_capacity(len(X), 16, 0.0)
    for candidates in (3, 16):
        labels = balanced_assign(X, centroids, capacity, candidates)
        for _ in range(5):
            perm = rng.permutation(16)
            permuted = np.empty_like(centroids)
            permuted[perm] = centroids
            assert np.array_equal(balanced_assign(X, permuted, capacity, candidates), perm[labels])


def test_anchored_retraining_on_unchanged_data_keeps_every_sid():
    X = _clustered()
    previous = _model(seed=0)
    previous_codes = previous.fit_encode(X)
    # The guarantee's premise: the previous fit converged, so carrying its partition over gives
    # back its codebooks and the warm iterations have nothing to move.
    assert np.allclose(carried_over_codebooks(X, previous_codes, 16), previous.codebooks, atol=1e-5)
    unanchored = _model(seed=1).fit_encode(X)
    assert np.all(unanchored == previous_codes, axis=1).mean() < 0.05
    for stored in (previous_codes, None):  # the stored SIDs, or the previous version re-encoding X
        model = _model(seed=1)
        codes, info = anchored_fit_encode(model, X, previous, previous_codes=stored, steps=3)
        assert np.array_equal(codes, previous_codes)
        assert info["full_sid_unchanged"] == 1.0 and info["items_moved_by_tie_reencoding"] == 0
        assert model.fit_info["warm_started"] and model.fit_info["warm_iterations"] == 3
        assert np.array_equal(model.encode_catalogue(X), codes)


def test_anchoring_keeps_far_more_sids_on_drifted_data_within_capacity():
    X = _clustered(seed=4)
    previous = _model(seed=0, n_iter=30)
    previous_codes = previous.fit_encode(X)
    drifted = (X + np.random.default_rng(5).normal(scale=0.3, size=X.shape)).astype(np.float32)
    free = _model(seed=1, n_iter=30)
    free_codes = free.fit_encode(drifted)
    model = _model(seed=1, n_iter=30)
    codes, info = anchored_fit_encode(model, drifted, previous, previous_codes=previous_codes, steps=3)
    kept = np.all(codes == previous_codes, axis=1).mean()
    assert info["full_sid_unchanged"] == kept > 0.6
    assert np.all(free_codes == previous_codes, axis=1).mean() < 0.05
    # Even the best relabelling of the unanchored fit keeps far fewer.
    _, matched, _ = relabel_to_previous(free.codebooks, free_codes, previous_codes)
    assert np.all(matched == previous_codes, axis=1).mean() < kept - 0.2
    # The relabelled codebooks encode the catalogue to exactly the returned codes, balanced.
    assert np.array_equal(model.encode_catalogue(drifted), codes)
    assert _within_capacity(codes, 16) and _within_capacity(free_codes, 16)
    error = float(np.square(drifted - model.decode(codes)).mean())
    free_error = float(np.square(drifted - free.decode(free_codes)).mean())
    # Anchoring keeps the previous version's local optimum, here 10 % above this fresh fit's
    # (previous version on X: 1.604; fresh fits of the drifted data by seed 0-3: 1.50-1.68).
    assert error < 1.1 * free_error


def test_catalogue_codes_are_recomputed_where_duplicate_centroids_tie():
    # 16 items for 16 codes: level 1 gives every item its own code, so every level-2 residual and
    # centroid is zero and the balanced assignment breaks the all-way tie by centroid order.
    X = np.random.default_rng(8).normal(size=(16, 4)).astype(np.float32)
    previous = RQKMeansBalanced(levels=2, codebook_size=16, n_iter=5, seed=0, n_threads=1)
    previous_codes = previous.fit_encode(X)
    assert not np.any(previous.codebooks[1])
    stored = previous_codes.copy()
    stored[:, 1] = np.random.default_rng(9).permutation(16)[stored[:, 1]]  # any numbering of the ties
    model = RQKMeansBalanced(levels=2, codebook_size=16, n_iter=5, seed=1, n_threads=1)
    codes, info = anchored_fit_encode(model, X, previous, previous_codes=stored, steps=2)
    # The matching mapped level 2 onto the stored numbers, but the re-encoding of identical
    # centroids cannot follow it; what is returned is what semantic_ids will store.
    assert info["items_moved_by_tie_reencoding"] > 0
    assert np.array_equal(codes, model.encode_catalogue(X))
    assert np.array_equal(codes[:, 0], previous_codes[:, 0])


def test_bad_init_is_refused():
    X = _clustered(n=500)
    model = RQKMeansBalanced(levels=2, codebook_size=8)
    previous = RQKMeansBalanced(levels=2, codebook_size=8, n_iter=2).fit(X)

    def warm(init, **options):
        return WarmStart(previous, init_codebooks=np.asarray(init, dtype=np.float32), **options)

    with pytest.raises(ValueError, match="same levels and codebook_size"):
        model.fit_encode(X, warm_start=warm(np.zeros((2, 16, 16))))
    with pytest.raises(ValueError, match="init_codebooks have dim 8 but X has dim 16"):
        model.fit_encode(X, warm_start=warm(np.zeros((2, 8, 8))))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        model.fit_encode(X, warm_start=warm(np.zeros((2, 8, 16)), steps=0))
    with pytest.raises(ValueError, match="NaN or inf"):
        model.fit_encode(X, warm_start=warm(np.full((2, 8, 16), np.nan)))
    # The earlier version must be one of the same method and shape.
    with pytest.raises(ValueError, match="cannot warm-start from a RQKMeansBalanced of shape"):
        RQKMeansBalanced(levels=3, codebook_size=8).fit_encode(X, warm_start=WarmStart(previous))
    with pytest.raises(ValueError, match="takes no side inputs"):
        anchored_fit_encode(model, X, previous, collaborative=X)


def test_carried_over_codebooks_in_row_blocks_are_the_ones_of_all_rows_at_once(monkeypatch):
    from semid_assets.core.tokenizers import anchoring

    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 6)).astype(np.float32)
    codes = rng.integers(0, 12, size=(300, 3))  # 16 codes: some hold no item and start at a random one
    codes[::7] = -1  # items the previous version never saw

    def all_at_once() -> np.ndarray:  # the whole catalogue's residuals in one array (what the blocks replace)
        known = np.all(codes >= 0, axis=1)
        pick, residual, held = np.random.default_rng(0), X[known].astype(np.float64), codes[known]
        out = np.empty((3, 16, 6), np.float32)
        for level in range(3):
            sums = np.zeros((16, 6))
            np.add.at(sums, held[:, level], residual)
            counts = np.bincount(held[:, level], minlength=16)[:, None]
            centroids = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
            empty = np.flatnonzero(counts[:, 0] == 0)
            centroids[empty] = residual[pick.choice(len(residual), size=len(empty), replace=False)]
            out[level] = centroids
            residual -= centroids[held[:, level]]
        return out

    monkeypatch.setattr(anchoring, "_CARRY_BLOCK", 17)
    assert np.array_equal(carried_over_codebooks(X, codes, 16, seed=0), all_at_once())
