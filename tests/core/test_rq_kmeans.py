from __future__ import annotations

import faiss
import numpy as np
import pytest

from semid_assets.core.artifact import save_npz, load_npz
from semid_assets.core.options import replace_options
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans


def hierarchical_blobs(n: int = 4000, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Three nested levels of gaussian blobs, each finer level with a smaller spread,
    so every residual level has structure left to find."""
    rng = np.random.default_rng(seed)
    top = rng.normal(scale=8.0, size=(8, dim))
    mid = rng.normal(scale=3.0, size=(8 * 4, dim))
    low = rng.normal(scale=1.0, size=(8 * 4 * 4, dim))
    a = rng.integers(0, 8, n)
    b = a * 4 + rng.integers(0, 4, n)
    c = b * 4 + rng.integers(0, 4, n)
    X = top[a] + mid[b] + low[c] + rng.normal(scale=0.3, size=(n, dim))
    return X.astype(np.float32)


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return hierarchical_blobs()


@pytest.fixture(scope="module")
def fitted(X):
    rq = RQKMeans(levels=3, codebook_size=16, n_iter=10, seed=0)
    codes = rq.fit_encode(X)
    return rq, codes


def test_shapes_and_dtypes(fitted, X):
    rq, codes = fitted
    assert codes.shape == (X.shape[0], 3) and codes.dtype == np.int32
    assert rq.codebooks.shape == (3, 16, X.shape[1]) and rq.codebooks.dtype == np.float32
    assert rq.dim == X.shape[1]
    assert codes.min() >= 0 and codes.max() < 16


def test_mse_falls_level_by_level(fitted, X):
    rq, codes = fitted
    mses = [lvl["mse"] for lvl in rq.fit_info["levels"]]
    variance = float(((X - X.mean(0)) ** 2).mean())
    assert mses[0] < variance
    assert all(later < earlier for earlier, later in zip(mses, mses[1:])), mses
    # The reported MSE is the one a decode gives back.
    final = float(((X - rq.decode(codes)) ** 2).mean())
    assert final == pytest.approx(mses[-1], rel=1e-4)


def test_fit_info_contents(fitted, X):
    rq, _ = fitted
    info = rq.fit_info
    assert info["n"] == X.shape[0] and info["dim"] == X.shape[1]
    assert info["seconds"] >= 0
    assert [lvl["level"] for lvl in info["levels"]] == [1, 2, 3]
    for lvl in info["levels"]:
        assert lvl["train_points"] == X.shape[0]  # 256 * 16 > 4000: all points
        assert lvl["seconds"] >= 0 and np.isfinite(lvl["kmeans_objective"])


def test_decode_is_sum_of_chosen_codewords(fitted):
    rq, codes = fitted
    expected = sum(rq.codebooks[lvl][codes[:, lvl]] for lvl in range(rq.levels))
    np.testing.assert_allclose(rq.decode(codes), expected, rtol=0, atol=1e-5)
    assert rq.decode(codes).dtype == np.float32


def test_encode_training_data_reproduces_fit_encode(fitted, X):
    rq, codes = fitted
    np.testing.assert_array_equal(rq.encode(X), codes)


def test_encode_float64_and_subsets(fitted, X):
    rq, codes = fitted
    np.testing.assert_array_equal(rq.encode(X.astype(np.float64)), codes)
    # Greedy assignment of a row does not depend on the other rows.
    np.testing.assert_array_equal(rq.encode(X[100:400]), codes[100:400])


def test_fit_and_fit_encode_agree(X, fitted):
    rq_ref, codes = fitted
    rq = RQKMeans(levels=3, codebook_size=16, n_iter=10, seed=0).fit(X)
    np.testing.assert_array_equal(rq.codebooks, rq_ref.codebooks)
    np.testing.assert_array_equal(rq.encode(X), codes)


def test_determinism_and_seed_sensitivity(X):
    kwargs = dict(levels=2, codebook_size=16, n_iter=5, max_points_per_centroid=64)
    a = RQKMeans(seed=7, **kwargs)
    b = RQKMeans(seed=7, **kwargs)
    c = RQKMeans(seed=8, **kwargs)
    ca, cb, cc = a.fit_encode(X), b.fit_encode(X), c.fit_encode(X)
    np.testing.assert_array_equal(a.codebooks, b.codebooks)
    np.testing.assert_array_equal(ca, cb)
    assert not np.array_equal(a.codebooks, c.codebooks)
    assert not np.array_equal(ca, cc)


@pytest.mark.parametrize("threads", [1, 2])
def test_determinism_under_faiss_threads(X, threads):
    # Same thread count: faiss's parallel loops must not make runs differ.
    before = faiss.omp_get_max_threads()
    runs = []
    for _ in range(2):
        rq = RQKMeans(levels=2, codebook_size=32, n_iter=5, seed=3, n_threads=threads)
        runs.append((rq.fit_encode(X), rq.codebooks, rq.encode(X)))
        # The process-wide faiss setting is restored after fit and encode.
        assert faiss.omp_get_max_threads() == before
    for a, b in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(a, b)


def test_encode_with_stored_codebooks_ignores_thread_count(fitted, X):
    rq, codes = fitted
    for threads in (1, 2):
        clone = RQKMeans.from_arrays(*rq.to_arrays())
        clone.options = replace_options(clone.options, n_threads=threads)
        np.testing.assert_array_equal(clone.encode(X), codes)


def test_sampling_cap(X):
    rq = RQKMeans(levels=2, codebook_size=16, n_iter=3, max_points_per_centroid=50)
    rq.fit(X)
    assert [lvl["train_points"] for lvl in rq.fit_info["levels"]] == [800, 800]
    rq_all = RQKMeans(levels=1, codebook_size=16, n_iter=3, max_points_per_centroid=None).fit(X)
    assert rq_all.fit_info["levels"][0]["train_points"] == X.shape[0]


def test_progress_lines(X):
    lines: list[str] = []
    RQKMeans(levels=3, codebook_size=16, n_iter=3).fit(X, progress=lines.append)
    assert len(lines) == 3
    for i, line in enumerate(lines, start=1):
        assert f"level {i}/3" in line and "MSE" in line and " s" in line


def test_artifact_round_trip(fitted, X, tmp_path):
    rq, codes = fitted
    arrays, meta = rq.to_arrays()
    save_npz(tmp_path / "rq.npz", arrays, meta)
    loaded = RQKMeans.from_arrays(*load_npz(tmp_path / "rq.npz"))
    assert loaded.get_params() == rq.get_params()
    assert loaded.dim == rq.dim and loaded.fit_info == rq.fit_info
    np.testing.assert_array_equal(loaded.codebooks, rq.codebooks)
    np.testing.assert_array_equal(loaded.encode(X), codes)


def test_artifacts_written_before_the_tokenizer_interface_still_load(fitted, X):
    # The layout RQKMeans wrote before options had a class: no "class" key, and n_threads None
    # ("the process's setting"), which now reads as the default, 1.
    rq, codes = fitted
    params = {"levels": 3, "codebook_size": 16, "n_iter": 10, "seed": 0, "max_points_per_centroid": 256,
              "n_redo": 1, "progressive_dim_steps": 10, "verbose": False, "n_threads": None, "beam_size": 1}
    meta = {"format": "semid.RQKMeans", "format_version": 1, "params": params, "dim": rq.dim, "fit_info": {}}
    loaded = RQKMeans.from_arrays({"codebooks": rq.codebooks}, meta)
    assert loaded.options.n_threads == 1 and loaded.options.n_iter == 10
    np.testing.assert_array_equal(loaded.encode(X), codes)


def test_from_arrays_rejects_foreign_or_inconsistent(fitted):
    rq, _ = fitted
    arrays, meta = rq.to_arrays()
    with pytest.raises(ValueError, match="not a stored RQKMeans"):
        RQKMeans.from_arrays(arrays, {**meta, "format": "other"})
    with pytest.raises(ValueError, match="format_version"):
        RQKMeans.from_arrays(arrays, {**meta, "format_version": 99})
    with pytest.raises(ValueError, match="shape"):
        RQKMeans.from_arrays({"codebooks": arrays["codebooks"][:2]}, meta)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"levels": 0}, "levels must be >= 1"),
        ({"codebook_size": 1}, "codebook_size must be >= 2"),
        ({"codebook_size": 2.5}, "codebook_size must be an integer"),
        ({"n_iter": 0}, "n_iter"),
        ({"seed": -1}, "seed"),
        ({"max_points_per_centroid": 0}, "max_points_per_centroid"),
        ({"n_redo": 0}, "n_redo"),
        ({"n_threads": 0}, "n_threads"),
    ],
)
def test_invalid_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RQKMeans(**kwargs)


def test_rejects_non_2d():
    with pytest.raises(ValueError, match="2-D"):
        RQKMeans(codebook_size=2).fit(np.zeros(10, dtype=np.float32))


def test_rejects_integer_input():
    with pytest.raises(ValueError, match="floating-point"):
        RQKMeans(codebook_size=2).fit(np.arange(20).reshape(10, 2))


def test_rejects_nan_and_inf_rows(X):
    bad = X.copy()
    bad[3, 0] = np.nan
    bad[10, 5] = np.inf
    bad[10, 6] = -np.inf
    with pytest.raises(ValueError, match=r"2 row\(s\) out of 4000.*\[3, 10\]"):
        RQKMeans(codebook_size=16).fit(bad)


def test_rejects_fewer_points_than_codebook_size():
    X = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    match = r"100 points but codebook_size is 256.*codebook_size <= 100"
    with pytest.raises(ValueError, match=match):
        RQKMeans(codebook_size=256).fit(X)


def test_warns_on_few_points_per_centroid():
    X = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    with pytest.warns(UserWarning, match="per centroid"):
        RQKMeans(levels=1, codebook_size=16, n_iter=2).fit(X)


def test_use_before_fit():
    rq = RQKMeans()
    with pytest.raises(ValueError, match=r"not fitted.*encode"):
        rq.encode(np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"not fitted.*decode"):
        rq.decode(np.zeros((3, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="not fitted"):
        rq.to_arrays()


def test_dim_mismatch(fitted):
    rq, _ = fitted
    with pytest.raises(ValueError, match="dim 8 but the tokenizer was fitted on dim 16"):
        rq.encode(np.zeros((5, 8), dtype=np.float32))


def test_decode_validates_codes(fitted):
    rq, codes = fitted
    with pytest.raises(ValueError, match="shape"):
        rq.decode(codes[:, :2])
    with pytest.raises(ValueError, match=r"out of range.*\[0, 15\]"):
        rq.decode(np.full((2, 3), 16, dtype=np.int32))
    with pytest.raises(ValueError, match="out of range"):
        rq.decode(np.full((2, 3), -1, dtype=np.int32))
    with pytest.raises(ValueError, match="integers"):
        rq.decode(codes.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inputs_are_not_modified(X, dtype):
    data = X.astype(dtype)
    before = data.copy()
    rq = RQKMeans(levels=2, codebook_size=16, n_iter=3)
    rq.fit_encode(data)
    rq.encode(data)
    rq.encode(data.tolist())
    np.testing.assert_array_equal(data, before)


def test_exactly_reconstructed_points_are_left_out_of_later_training():
    # Rows already at the origin (an earlier level gave them a singleton code) would be
    # picked as initial centroids and attract every near-orthogonal residual.
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(8, 32)).astype(np.float32) * 4
    X = (centres[rng.integers(0, 8, 600)] + rng.normal(size=(600, 32)).astype(np.float32))
    X[:150] = 0.0
    model = RQKMeans(levels=1, codebook_size=8, seed=0).fit(X)
    assert model.fit_info["levels"][0]["train_points"] == 450
    codes = model.encode(X)
    assert np.bincount(codes[150:, 0], minlength=8).max() < 0.5 * 450


def test_progressive_and_plain_kmeans_are_both_available():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(800, 16)).astype(np.float32)
    plain = RQKMeans(levels=2, codebook_size=8, seed=0, progressive_dim_steps=0).fit(X)
    progressive = RQKMeans(levels=2, codebook_size=8, seed=0).fit(X)
    assert progressive.get_params()["progressive_dim_steps"] == 10
    assert not np.array_equal(plain.codebooks, progressive.codebooks)
    again = RQKMeans.from_arrays(*progressive.to_arrays())
    assert again.get_params() == progressive.get_params()


def test_fewer_points_than_dimensions_train_with_plain_lloyd():
    # faiss's progressive k-means fits a PCA, which needs at least as many points as dimensions.
    X = np.random.default_rng(3).normal(size=(100, 384)).astype(np.float32)
    with pytest.warns(UserWarning, match="per centroid"):
        codes = RQKMeans(levels=2, codebook_size=8, seed=0, n_threads=1).fit_encode(X)
    with pytest.warns(UserWarning, match="per centroid"):
        again = RQKMeans(levels=2, codebook_size=8, seed=0, n_threads=1).fit_encode(X)
    assert codes.shape == (100, 2) and np.array_equal(codes, again)
    assert len(np.unique(codes[:, 0])) > 1
