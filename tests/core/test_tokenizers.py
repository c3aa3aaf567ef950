"""The tokenizer family: every method fits, encodes unseen items, decodes, round-trips and is deterministic;
RQ-VAE's dead-code reset, balanced cluster sizes, beam search."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from semid_assets.core.artifact import load_npz, save_npz
from semid_assets.core.tokenizers.balanced_kmeans import RQKMeansBalanced, balanced_assign, balanced_capacity
from semid_assets.core.tokenizers.base import Anchoring, QuantiserOptions, Tokenizer
from semid_assets.core.tokenizers.methods import METHODS, declared, make_tokenizer, tokenizer_class
from semid_assets.core.tokenizers.residual import beam_encode, greedy_encode
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans, RQKMeansOptions
from semid_assets.core.tokenizers.rq_vae import RQVAE

from test_rq_kmeans import hierarchical_blobs

_SHARED = dict(levels=3, codebook_size=16, seed=0, n_threads=1)
_KMEANS = dict(_SHARED, n_iter=8)
_VAE = dict(_SHARED, latent_dim=8, hidden_dims=[32], epochs=20, batch_size=128, min_steps=0, lr=3e-3)
SMALL = {"rq_kmeans": _KMEANS, "rq_kmeans_balanced": _KMEANS, "rq_vae": _VAE, "letter": _VAE}


@pytest.fixture(scope="module")
def data():
    X = hierarchical_blobs(n=2600, dim=16, seed=1)
    # Collaborative side input for LETTER: a noisy view of the items' top cluster; some items have none.
    rng = np.random.default_rng(0)
    H = rng.normal(size=(len(X), 6)).astype(np.float32) + X[:, :6] * 0.5
    H[::10] = 0.0
    return X[:2000], X[2000:], H[:2000]


def _fit(method, data, **extra):
    X, _, H = data
    model = make_tokenizer(method, SMALL[method], **extra)
    side = {"collaborative": H} if "collaborative" in model.side_inputs else {}
    return model, model.fit_encode(X, **side)


@pytest.fixture(scope="module")
def fitted(data):
    return {method: _fit(method, data) for method in METHODS}


@pytest.mark.parametrize("method", list(METHODS))
def test_fits_encodes_unseen_items_and_decodes(method, fitted, data):
    X, unseen, _ = data
    model, codes = fitted[method]
    assert codes.shape == (len(X), 3) and codes.dtype == np.int32
    assert codes.min() >= 0 and codes.max() < 16
    new_codes = model.encode(unseen)
    assert new_codes.shape == (len(unseen), 3)
    decoded = model.decode(new_codes)
    assert decoded.shape == unseen.shape and decoded.dtype == np.float32
    # Reconstructions beat predicting the mean on items the model never saw.
    assert np.mean((decoded - unseen) ** 2) < 0.5 * np.mean((unseen - X.mean(0)) ** 2)
    report = model.level_report(X, codes)
    assert list(report["level"]) == [1, 2, 3] and report["relative_mse"].iloc[-1] < 0.5


@pytest.mark.parametrize("method", list(METHODS))
def test_round_trip_through_npz_and_determinism(method, fitted, data, tmp_path):
    X, unseen, _ = data
    model, codes = fitted[method]
    arrays, meta = model.to_arrays()
    save_npz(tmp_path / "m.npz", arrays, meta)
    loaded = type(model).from_arrays(*load_npz(tmp_path / "m.npz"))
    assert np.array_equal(loaded.encode(unseen), model.encode(unseen))
    assert np.array_equal(loaded.decode(codes[:50]), model.decode(codes[:50]))
    again, codes_again = _fit(method, data)
    assert np.array_equal(codes_again, codes)
    assert np.array_equal(again.codebooks, model.codebooks)


def test_letter_refuses_missing_or_misaligned_collaborative_input(data):
    X, _, H = data
    with pytest.raises(ValueError, match="collaborative"):
        make_tokenizer("letter", SMALL["letter"]).fit(X)
    with pytest.raises(ValueError, match="rows"):
        make_tokenizer("letter", SMALL["letter"]).fit(X, collaborative=H[:-1])


def test_letter_pulls_codes_towards_collaborative_groups():
    """Content has two equally plausible 8-way structures, A (slightly stronger) and B; the
    collaborative embeddings follow B. Plain RQ-VAE's level-1 codes follow A; with LETTER's
    collaborative loss they follow B."""
    from semid_assets.core.evaluation.comparison import normalized_mutual_info

    rng = np.random.default_rng(3)
    A, B = rng.integers(0, 8, 2000), rng.integers(0, 8, 2000)
    X = (np.concatenate([3 * np.eye(8)[A], 2 * np.eye(8)[B]], 1) + rng.normal(scale=0.3, size=(2000, 16)))
    H = np.eye(8)[B] + rng.normal(scale=0.05, size=(2000, 8))
    nmi = {}
    for weight in (0.0, 1.0):
        model = make_tokenizer("letter", SMALL["letter"], cf_weight=weight)
        codes = model.fit_encode(X.astype(np.float32), collaborative=H.astype(np.float32))
        nmi[weight] = normalized_mutual_info(codes[:, 0], B)
    assert nmi[0.0] < 0.4 and nmi[1.0] > 0.7


def test_dead_code_reset_prevents_codebook_collapse():
    """Planted: a small latent and a fast-moving encoder leave most k-means-initialised codes stranded."""
    X = hierarchical_blobs(n=2000, dim=32, seed=0)
    utilisation = {}
    for reset in (True, False):
        model = RQVAE(levels=2, codebook_size=32, latent_dim=8, hidden_dims=[32], epochs=20, batch_size=128,
                      lr=1e-3, dead_code_reset=reset, seed=0, n_threads=1)
        codes = model.fit_encode(X)
        utilisation[reset] = len(np.unique(codes[:, 0])) / 32
    assert utilisation[False] <= 0.5, "the planted setting should collapse without resets"
    assert utilisation[True] >= 0.9


def test_balanced_largest_cluster_within_capacity(fitted, data):
    X, _, _ = data
    model, codes = fitted["rq_kmeans_balanced"]
    capacity = balanced_capacity(len(X), 16, 0.0)
    assert capacity == 125
    for lvl in range(3):
        sizes = np.bincount(codes[:, lvl], minlength=16)
        # slack 0: every code holds ceil(N/K) or fewer, i.e. at most 1.0 x N/K rounded up.
        assert sizes.max() <= capacity and sizes.min() >= len(X) - 15 * capacity
    assert np.array_equal(model.encode_catalogue(X), codes)
    plain = RQKMeans(levels=1, codebook_size=16, seed=0).fit_encode(X)
    assert np.bincount(plain[:, 0]).max() > capacity, "the data should be unbalanced for plain k-means"


def test_balanced_assign_respects_capacity_with_slack():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(900, 4)), rng.normal(loc=20, size=(100, 4))]).astype(np.float32)
    centroids = X[rng.choice(len(X), 10, replace=False)]
    for slack in (0.0, 0.2):
        capacity = balanced_capacity(len(X), 10, slack)
        labels = balanced_assign(X, centroids, capacity, candidates=3)
        assert labels.min() >= 0 and np.bincount(labels, minlength=10).max() <= capacity
    with pytest.raises(ValueError, match="cannot hold"):
        balanced_assign(X, centroids, 50)


def test_beam_search_never_worse_than_greedy_on_the_same_codebooks(fitted, data):
    X, unseen, _ = data
    for method in ("rq_kmeans", "rq_kmeans_balanced"):
        model, _ = fitted[method]
        mse = {b: float(np.mean((unseen - model.decode(model.encode(unseen, beam_size=b))) ** 2)) for b in (1, 4, 16)}
        assert mse[4] <= mse[1] and mse[16] <= mse[1]
    model, _ = fitted["rq_kmeans"]
    assert np.array_equal(model.encode(unseen, beam_size=1), model.encode(unseen))
    assert np.array_equal(beam_encode(unseen, model.codebooks, 1), greedy_encode(unseen, model.codebooks))


def test_beam_search_finds_the_exact_optimum_with_a_full_beam():
    rng = np.random.default_rng(5)
    books = rng.normal(size=(2, 6, 3)).astype(np.float32)
    Z = rng.normal(size=(40, 3)).astype(np.float32)
    best = beam_encode(Z, books, beam_size=6)
    every = np.stack(np.meshgrid(np.arange(6), np.arange(6), indexing="ij"), -1).reshape(-1, 2)
    err = ((Z[:, None, :] - books[0][every[:, 0]][None] - books[1][every[:, 1]][None]) ** 2).sum(-1)
    chosen = ((Z - books[0][best[:, 0]] - books[1][best[:, 1]]) ** 2).sum(-1)
    assert np.allclose(chosen, err.min(1), atol=1e-5)


def test_google_setting_is_expressible():
    model = make_tokenizer("rq_vae", levels=8, codebook_size=2048, latent_dim=256, hidden_dims=[])
    assert (model.levels, model.codebook_size, model.options.latent_dim, model.options.hidden_dims) == (8, 2048, 256, ())


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="unknown tokenizer method"):
        make_tokenizer("vqgan")
    with pytest.raises(ValueError, match="beam_size"):
        RQKMeans(beam_size=0)
    with pytest.raises(ValueError, match="balance_slack"):
        RQKMeansBalanced(balance_slack=-1)
    with pytest.raises(ValueError, match="lr"):
        RQVAE(lr=0)
    with pytest.raises(ValueError, match="candidates"):
        RQKMeansBalanced(candidates=0)
    with pytest.raises(ValueError, match="hidden_dims"):
        RQVAE(hidden_dims=[64, 0])
    with pytest.raises(ValueError, match="seed must be <= 2147483647"):
        RQVAE(seed=2**31)
    with pytest.raises(ValueError, match="n_threads"):
        make_tokenizer("letter", n_threads=0)


def test_make_tokenizer_refuses_an_option_of_another_method_and_names_it():
    with pytest.raises(ValueError, match=r"rq_kmeans has no option\(s\) \['epochs'\] \(epochs is an option of "
                                         r"rq_vae, letter\)"):
        make_tokenizer("rq_kmeans", {"levels": 2, "epochs": 3})
    with pytest.raises(ValueError, match=r"cf_weight is an option of letter"):
        make_tokenizer("rq_vae", cf_weight=0.5)
    with pytest.raises(ValueError, match=r"no_such_option is no option of any method"):
        make_tokenizer("letter", {"no_such_option": 1})
    with pytest.raises(ValueError, match="unknown tokenizer method 'vqgan'; known: rq_kmeans, rq_kmeans_balanced"):
        tokenizer_class("vqgan")
    # Shared options fit every method; an options object of the method itself is taken as it is.
    shared = QuantiserOptions(levels=2, codebook_size=8)
    assert all(make_tokenizer(method, shared).levels == 2 for method in METHODS)
    options = RQKMeansOptions(n_iter=3)
    assert make_tokenizer("rq_kmeans", options).options is options
    with pytest.raises(TypeError, match="RQKMeans takes RQKMeansOptions"):
        RQKMeans(QuantiserOptions())


def test_every_method_declares_what_sets_it_apart():
    for method, cls in METHODS.items():
        assert issubclass(cls, Tokenizer) and cls.method == method
        assert issubclass(cls.Options, QuantiserOptions) and isinstance(cls.anchoring, Anchoring)
        # What the definitions read without importing the class (torch, for RQ-VAE and LETTER) is the class's.
        declaration = declared(method)
        assert (declaration.options, declaration.side_inputs, declaration.class_name) == \
            (cls.Options, cls.side_inputs, cls.__name__)
    assert [m for m, cls in METHODS.items() if cls.anchoring is Anchoring.WHOLE_MODEL] == ["rq_vae", "letter"]
    assert [m for m, cls in METHODS.items() if cls.population_codes] == ["rq_kmeans_balanced"]
    assert {m: cls.side_inputs for m, cls in METHODS.items() if cls.side_inputs} == {"letter": ("collaborative",)}


@pytest.mark.parametrize("method", list(METHODS))
def test_interface_of_a_fitted_model(method, fitted, data):
    X, unseen, _ = data
    model, codes = fitted[method]
    assert model.get_params() == dataclasses.asdict(model.options) and model.is_fitted
    quantised = model.quantised(unseen)
    assert quantised.dtype == np.float32 and quantised.shape[1] == model.codebooks.shape[2]
    # A prefix of every level is the full reconstruction.
    assert np.array_equal(model.decode_prefix(codes, 3), model.decode(codes))
    assert model.relative_mse(X, codes) == model.level_report(X, codes)["relative_mse"].iloc[-1]
    candidates = model.last_level_candidates(X, codes, 4)
    assert candidates.shape == (len(X), 4) and candidates.dtype == np.int64
    if not model.population_codes:  # greedy codes take the nearest last-level code: the first candidate
        assert np.array_equal(candidates[:, 0], codes[:, 2])
    assert model.warm_start_mismatch(model, X.shape[1]) is None
    assert "shape" in model.warm_start_mismatch(model, X.shape[1] + 1)
    other = next(m for m in METHODS if m != method)
    assert f"needs a fitted {method} version" in model.warm_start_mismatch(fitted[other][0], X.shape[1])
    with pytest.raises(ValueError, match="out of range"):
        model.decode(np.full((2, 3), 16, dtype=np.int32))
    with pytest.raises(ValueError, match="takes no side inputs|takes only"):
        model.fit(X, popularity=np.ones(len(X)))


def test_stored_rq_vae_artefacts_of_the_old_layout_still_load(fitted, data):
    _, unseen, _ = data
    model, _ = fitted["rq_vae"]
    arrays, meta = model.to_arrays()
    old_params = {**meta["params"], "hidden_dims": list(meta["params"]["hidden_dims"]), "n_threads": None}
    loaded = RQVAE.from_arrays(arrays, {**meta, "params": old_params})
    assert loaded.options == model.options
    assert np.array_equal(loaded.encode(unseen), model.encode(unseen))


def test_rq_vae_input_scale_and_reports_match_the_whole_array_formulas(fitted, data, monkeypatch):
    import torch

    from semid_assets.core.tokenizers import metrics
    from semid_assets.core.tokenizers.rq_vae import _rms_deviation

    X, _, _ = data
    mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
    # The in-place forms keep a fit's scale, so its model, bit for bit.
    assert _rms_deviation(X, mean) == float(np.sqrt(np.mean(np.square(X - mean), dtype=np.float64)))
    model, codes = fitted["rq_vae"]
    decoded = model.decode(codes)
    q = super(RQVAE, model).decode_prefix(codes, 3)
    with torch.no_grad():
        raw = model.net.decoder(torch.from_numpy(q)).numpy()
    assert np.array_equal(decoded, raw * np.float32(model.scale) + model.mean)
    # The level report in blocks of 300 rows: the whole-array sums, up to float64 summation order.
    whole = model.level_report(X, codes)
    monkeypatch.setattr(metrics, "_BLOCK", 300)
    blocked = model.level_report(X, codes)
    centred = X - mean
    last = X - decoded
    assert np.isclose(blocked["mse"].iloc[-1], np.einsum("ij,ij->", last, last, dtype=np.float64) / X.size,
                      rtol=1e-9)
    assert np.isclose(blocked["relative_mse"].iloc[-1], np.einsum("ij,ij->", last, last, dtype=np.float64)
                      / np.einsum("ij,ij->", centred, centred, dtype=np.float64), rtol=1e-9)
    assert np.allclose(blocked[["mse", "relative_mse"]], whole[["mse", "relative_mse"]], rtol=1e-9, atol=0)
    # The last level alone (what the staleness report weighs) is the report's figure, bit for bit.
    assert model.relative_mse(X, codes) == blocked["relative_mse"].iloc[-1]
    monkeypatch.undo()
    assert model.relative_mse(X, codes) == whole["relative_mse"].iloc[-1]


@pytest.mark.parametrize("method", list(METHODS))
def test_beam_mse_in_blocks_matches_encoding_the_whole_array(method, fitted, data, monkeypatch):
    from semid_assets.core.evaluation import comparison

    X, _, _ = data
    model, _ = fitted[method]
    catalogue = model.encode_catalogue(X)
    monkeypatch.setattr(comparison, "_BLOCK", 512)
    found = comparison.beam_mse(model, X, [4, 1, 1], catalogue)
    assert sorted(found) == [1, 4]
    for beam, mse in found.items():
        diff = X - model.decode(model.encode(X, beam_size=beam))
        assert np.isclose(mse, np.einsum("ij,ij->", diff, diff, dtype=np.float64) / diff.size, rtol=1e-9)
    # Population codes (balanced) are not the beam's codes: it encodes again rather than take them.
    if model.population_codes:
        shuffled = catalogue[::-1].copy()
        assert comparison.beam_mse(model, X, [1], shuffled)[1] == found[1]


def test_last_level_candidates_in_blocks_are_the_whole_search():
    from semid_assets.core.tokenizers import residual

    rng = np.random.default_rng(3)
    Z = rng.normal(size=(residual._ASSIGN_BLOCK + 4500, 6)).astype(np.float32)
    books = rng.normal(size=(2, 24, 6)).astype(np.float32)
    codes = greedy_encode(Z, books)
    whole = residual._flat_index(books[1]).search(residual.prefix_residual(Z, books, codes, 1), 5)[1]
    assert np.array_equal(residual.last_level_candidates(Z, books, codes, 5), whole)


@pytest.mark.parametrize("method", ["rq_vae", "letter"])
def test_latent_tokenizers_fit_the_same_weights_with_two_threads(method):
    """A gradient gathered into the codebooks by advanced indexing is summed in an order two threads do
    not fix: the same fit twice must give the same weights, bit for bit, at any thread count."""
    import torch

    rng = np.random.default_rng(5)
    X = rng.normal(size=(4096, 24)).astype(np.float32)
    side = {"collaborative": rng.normal(size=(4096, 8)).astype(np.float32)} if method == "letter" else {}
    fits = []
    for _ in range(2):
        model = make_tokenizer(method, levels=2, codebook_size=64, latent_dim=128, hidden_dims=[64], epochs=1,
                               batch_size=2048, min_steps=6, seed=0, n_threads=2)
        model.fit(X, **side)
        fits.append(model.net.state_dict())
    assert all(torch.equal(fits[0][name], fits[1][name]) for name in fits[0])
