"""Anchored retraining of RQ-VAE and LETTER: whole-model warm start, then relabelling."""

from __future__ import annotations

import numpy as np
import pytest

from semid_assets.core.tokenizers.anchoring import anchored_fit_encode
from semid_assets.core.tokenizers.base import Anchoring, WarmStart
from semid_assets.core.tokenizers.letter import LETTER
from semid_assets.core.tokenizers.matching import match_level_codes
from semid_assets.core.tokenizers.rq_vae import RQVAE

from test_rq_kmeans import hierarchical_blobs

# 2 x 16 codes over 2,000 items: 8 steps an epoch, ~2 s for 60 epochs on one thread.
SHAPE = dict(levels=2, codebook_size=16, latent_dim=8, hidden_dims=[32], batch_size=256, epochs=60, n_threads=1)


def kept(codes: np.ndarray, previous: np.ndarray) -> float:
    return float(np.all(codes == previous, axis=1).mean())


def best_relabelling(previous: np.ndarray, codes: np.ndarray, K: int) -> np.ndarray:
    out = codes.copy()
    for level in range(codes.shape[1]):
        out[:, level] = match_level_codes(previous[:, level], codes[:, level], K)[codes[:, level]]
    return out


@pytest.fixture(scope="module")
def previous():
    X = hierarchical_blobs(n=2000, dim=16, seed=1).astype(np.float32)
    model = RQVAE(seed=0, **SHAPE)
    return X, model, model.fit_encode(X)


def test_anchored_refit_on_unchanged_data_keeps_most_sids(previous):
    X, earlier, earlier_codes = previous
    unanchored = RQVAE(seed=1, **SHAPE).fit_encode(X)
    assert kept(unanchored, earlier_codes) < 0.05  # other labels entirely
    best = kept(best_relabelling(earlier_codes, unanchored, 16), earlier_codes)  # measured 0.25
    model = RQVAE(seed=1, **SHAPE)
    codes, info = anchored_fit_encode(model, X, earlier)
    # Measured 0.87 full SIDs, 1.00 first codes with the gentle warm start (lr × 0.1, no dead-code
    # resets; 0.42 at full strength): further epochs keep moving the latent, and every move
    # re-decides border items' second code.
    assert info["warm_start"] == "previous model" and model.fit_info["warm_started"]
    assert info["epochs"] == 60 and info["full_sid_unchanged"] == kept(codes, earlier_codes)
    assert info["full_sid_unchanged"] > max(0.6, best + 0.3)
    assert info["prefix_unchanged"][0] > 0.95
    # One warm epoch keeps nearly all (measured 0.99): fewer epochs trade error for stability.
    few = RQVAE(seed=1, **SHAPE)
    _, info_few = anchored_fit_encode(few, X, earlier, steps=1)
    assert info_few["epochs"] == 1 and info_few["full_sid_unchanged"] > 0.85
    # The previous version is untouched by the warm start.
    assert np.array_equal(earlier.encode(X), earlier_codes)


def test_anchored_refit_on_drifted_data_beats_the_best_relabelling(previous):
    X, earlier, earlier_codes = previous
    drifted = (X + np.random.default_rng(5).normal(scale=0.1 * X.std(), size=X.shape)).astype(np.float32)
    unanchored = RQVAE(seed=1, **SHAPE).fit_encode(drifted)
    best = kept(best_relabelling(earlier_codes, unanchored, 16), earlier_codes)  # measured 0.24
    known = earlier_codes.copy()
    known[:100] = -1  # items the earlier version never saw take no part in the matching
    codes, info = anchored_fit_encode(RQVAE(seed=1, **SHAPE), drifted, earlier, previous_codes=known)
    assert info["items_known_before"] == len(X) - 100
    assert info["full_sid_unchanged"] == kept(codes[100:], earlier_codes[100:])
    assert info["full_sid_unchanged"] > best + 0.3  # measured 0.76 (0.46 at full strength)


@pytest.mark.parametrize("beam", [1, 3])
def test_after_relabelling_encode_gives_the_returned_codes(previous, beam):
    X, earlier, _ = previous
    model = RQVAE(seed=1, beam_size=beam, **SHAPE)
    codes, _ = anchored_fit_encode(model, X, earlier, steps=2)
    assert np.array_equal(model.encode(X), codes)


def test_permuting_codebook_rows_with_the_codes_keeps_encode_and_decode(previous):
    X, earlier, codes = previous
    model = RQVAE.from_arrays(*earlier.to_arrays())
    rng = np.random.default_rng(0)
    perms = [rng.permutation(16) for _ in range(2)]
    books = model.codebooks
    permuted = np.empty_like(books)
    for level, perm in enumerate(perms):
        permuted[level][perm] = books[level]
    renamed = np.stack([perm[codes[:, level]] for level, perm in enumerate(perms)], axis=1)
    beam3 = model.encode(X, beam_size=3)
    before = model.decode(codes)
    model.codebooks = permuted
    assert np.array_equal(model.encode(X), renamed)
    assert np.array_equal(model.encode(X, beam_size=3),
                          np.stack([perm[beam3[:, level]] for level, perm in enumerate(perms)], axis=1))
    assert np.allclose(model.decode(renamed), before, atol=1e-5)
    with pytest.raises(ValueError, match="codebooks must have shape"):
        model.codebooks = permuted[:, :8]


def test_a_warm_start_of_another_shape_is_refused_with_both_shapes(previous):
    X, earlier, _ = previous
    other = RQVAE(seed=1, **{**SHAPE, "latent_dim": 4})
    with pytest.raises(ValueError, match=r"of shape .*'latent_dim': 8.*this model and its data have shape "
                                         r".*'latent_dim': 4"):
        other.fit_encode(X, warm_start=WarmStart(earlier))
    assert "latent_dim" in other.warm_start_mismatch(earlier, X.shape[1])
    assert "'dim': 8" in RQVAE(seed=1, **SHAPE).warm_start_mismatch(earlier, 8)
    assert RQVAE(seed=1, **SHAPE).warm_start_mismatch(earlier, X.shape[1]) is None
    with pytest.raises(ValueError, match="latent_dim"):
        anchored_fit_encode(other, X, earlier)
    with pytest.raises(ValueError, match="init_codebooks warm-start the k-means family"):
        RQVAE(seed=1, **SHAPE).fit_encode(X, warm_start=WarmStart(earlier, init_codebooks=earlier.codebooks))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        WarmStart(earlier, steps=0)
    # A warm start copies a model of the same method: LETTER does not continue an RQ-VAE.
    letter = LETTER(seed=1, **SHAPE)
    assert "needs a fitted letter version, got RQVAE" in letter.warm_start_mismatch(earlier, X.shape[1])


def test_letter_is_anchored_with_its_collaborative_input():
    rng = np.random.default_rng(0)
    X = hierarchical_blobs(n=1200, dim=16, seed=2).astype(np.float32)
    H = rng.normal(size=(1200, 6)).astype(np.float32)
    H[:50] = 0  # items nobody liked yet
    params = dict(levels=2, codebook_size=8, latent_dim=8, hidden_dims=[32], batch_size=256, epochs=20,
                  n_threads=1, diversity_clusters=2)
    earlier = LETTER(seed=0, **params)
    earlier_codes = earlier.fit_encode(X, collaborative=H)
    model = LETTER(seed=1, **params)
    assert model.anchoring is Anchoring.WHOLE_MODEL
    with pytest.raises(ValueError, match=r"LETTER needs side input\(s\) \['collaborative'\]"):
        anchored_fit_encode(model, X, earlier)
    codes, info = anchored_fit_encode(model, X, earlier, previous_codes=earlier_codes, collaborative=H)
    assert model.fit_info["warm_started"] and model.fit_info["items_with_cf"] == 1150
    assert "cf" in model.fit_info["epochs"][-1]
    assert np.array_equal(model.encode(X), codes)
    # With its 20 gentle warm epochs LETTER keeps 0.82 of full SIDs (0.94 first codes) against 0.35
    # for the best relabelling of an unanchored fit (at full strength it kept 0.37: the random
    # collaborative term keeps pulling the latent). Two warm epochs keep 0.97.
    unanchored = LETTER(seed=1, **params).fit_encode(X, collaborative=H)
    best = kept(best_relabelling(earlier_codes, unanchored, 8), earlier_codes)
    assert info["prefix_unchanged"][0] > 0.85 and info["full_sid_unchanged"] > best + 0.3
    _, info_few = anchored_fit_encode(LETTER(seed=1, **params), X, earlier, previous_codes=earlier_codes,
                                      collaborative=H, steps=2)
    assert info_few["full_sid_unchanged"] > best + 0.3


def test_a_warm_start_trains_gently_and_keeps_more_ids_than_full_strength(previous):
    X, earlier, earlier_codes = previous
    assert earlier.fit_info["lr"] == earlier.options.lr and earlier.fit_info["dead_code_reset"]  # from scratch: as configured
    drifted = (X + np.random.default_rng(6).normal(scale=0.1 * X.std(), size=X.shape)).astype(np.float32)
    gentle = RQVAE(seed=1, **SHAPE)
    _, info = anchored_fit_encode(gentle, drifted, earlier)
    assert gentle.fit_info["lr"] == pytest.approx(earlier.options.lr * 0.1) and not gentle.fit_info["dead_code_reset"]
    strong = RQVAE(seed=1, warm_lr_scale=1.0, warm_dead_code_reset=True, **SHAPE)
    _, info_strong = anchored_fit_encode(strong, drifted, earlier)
    assert info["full_sid_unchanged"] > info_strong["full_sid_unchanged"] + 0.1
    with pytest.raises(ValueError, match="warm_lr_scale"):
        RQVAE(warm_lr_scale=0.0)
