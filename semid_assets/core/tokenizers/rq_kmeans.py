"""Residual k-means (RQ-Kmeans) tokenizer: embeddings -> coarse-to-fine code tuples.

This is the tokenizer of OneRec: level 1 clusters the embeddings, every later level
clusters what the previous levels left unexplained::

    R_1 = X
    C_l = kmeans(R_l, K)                    # codebook of level l, K x d
    s_l = argmin_k ||R_l - C_l[k]||         # code of level l
    R_{l+1} = R_l - C_l[s_l]

so ``decode(codes) = sum_l C_l[s_l]`` approximates ``X`` better with every level and the
tuple ``(s_1, ..., s_L)`` reads from coarse (which big cluster) to fine.

Each level's k-means is a ``faiss.Kmeans`` on a seeded sample of the residuals;
assignment is an exact ``IndexFlatL2`` search over every point.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from semid_assets.core.threads import faiss_threads
from semid_assets.core.tokenizers.residual import beam_encode
from semid_assets.core.validation import as_float32_matrix, check_int

__all__ = ["RQKMeans"]

_FORMAT = "semid.RQKMeans"
_FORMAT_VERSION = 1

# Row block for assignment. Fitting and encoding must share it: the float rounding
# of an exact-L2 search may depend on the batch faiss/BLAS sees, and encoding the
# training set has to reproduce the codes fit_encode returned bit for bit.
_BLOCK = 65536

# faiss prints a C-level warning below 39 points per centroid; we warn from Python
# instead so the message reaches ``warnings`` filters and logs rather than raw stderr.
_MIN_POINTS_PER_CENTROID = 39


def checked_warm_start(init_codebooks: np.ndarray | None, warm_iterations: int | None, levels: int,
                       codebook_size: int) -> np.ndarray | None:
    """Validate a warm start of a residual k-means: ``init_codebooks`` as float32
    ``[levels, codebook_size, dim]`` (or None) and ``warm_iterations`` >= 1 (or None)."""
    if warm_iterations is not None:
        check_int("warm_iterations", warm_iterations, 1)
    if init_codebooks is None:
        return None
    init = np.asarray(init_codebooks)
    if init.ndim != 3 or init.shape[:2] != (levels, codebook_size):
        raise ValueError(
            f"init_codebooks has shape {init.shape}, expected ({levels}, {codebook_size}, dim): "
            "anchor only to a version with the same levels and codebook_size")
    return as_float32_matrix(init.reshape(-1, init.shape[2]), "init_codebooks").reshape(init.shape)


class RQKMeans:
    """Residual k-means tokenizer (OneRec's RQ-Kmeans) on faiss.

    Parameters
    ----------
    levels:
        Number of code levels L (length of a semantic ID before the collision suffix).
    codebook_size:
        Codes per level K. Every level has its own K x dim codebook.
    n_iter:
        Lloyd iterations per level.
    seed:
        Seeds both the training sample and faiss's centroid initialisation. The same X,
        seed and number of faiss threads give bit-identical codebooks and codes from run
        to run: faiss's parallel loops split work by centroid, so nothing races. Another
        thread count changes BLAS rounding in k-means distances (~1e-6 relative), which
        can flip a near-tie assignment during training and send k-means to a different,
        equally good optimum (1 vs 2 threads at 100k x 256: MSE within 0.02 %, but most
        code tuples differ). Pin ``n_threads`` to reproduce a fit on another machine;
        encoding with stored codebooks is unaffected except at exact ties.
    max_points_per_centroid:
        Each level trains k-means on at most ``max_points_per_centroid * K`` residuals,
        sampled without replacement from a ``numpy`` generator seeded with ``seed``.
        The default 256 is faiss's own: centroid estimates stabilise at a few hundred
        points per centroid while the cost of every Lloyd iteration grows linearly with
        the sample, so 1M items x K=256 train on 65,536 points per level
        (``bench/bench_rq_kmeans.py`` measures what 1024 buys). ``None``, or any value
        with ``max_points_per_centroid * K >= n``, trains on all points. Assignment
        always covers all points, exactly.
    n_redo:
        k-means restarts per level; faiss keeps the run with the lowest objective.
    progressive_dim_steps:
        Train each level with faiss's progressive-dimension k-means (the training of
        ``faiss.ResidualQuantizer``): k-means first runs on the top PCA dimensions of the
        residuals and warm-starts in ever more of them, ``progressive_dim_steps`` steps up
        to the full dimension. ``0`` runs plain Lloyd k-means from random points. Why the
        default 10: after a level or two the residuals are close to orthogonal in high
        dimension, so every point is nearest to whichever initial centroid has the
        smallest norm; that centroid absorbs the others' points, its mean shrinks further,
        and the whole level collapses into one code. On the embedded default data plain
        Lloyd collapsed level 3 for half the seeds (one code holding 98 % of the items,
        46 % of items sharing a full SID); progressive k-means did not for any seed, and
        spread codes more evenly (level-3 entropy 5.5 vs 4.5 nats when Lloyd succeeds).
        It trains about 2-3x slower; encoding is unchanged. A level with fewer training
        points than dimensions trains with plain Lloyd: faiss's PCA cannot rank more
        dimensions than it has points.
    verbose:
        Let faiss print its per-iteration k-means log.
    n_threads:
        OpenMP threads faiss may use during ``fit``/``encode`` (the previous process-wide
        setting is restored afterwards); ``None`` keeps faiss's current setting (all
        cores by default). Fix it to make fits reproducible across machines (see
        ``seed``). Use 1 when other CPU-bound processes share the machine: faiss's threads
        wait for each other at every barrier, and on an oversubscribed 2-core box
        2 threads ran 2-3x slower than 1.
    beam_size:
        Paths kept per level when encoding (``core/tokenizers/residual.py``): 1 is greedy, level by
        level; B > 1 is faiss's beam search over the fitted codebooks, B times the search
        cost for a lower reconstruction error. Training is unchanged (each level's
        k-means sees the greedy residuals); ``encode(X, beam_size=...)`` overrides it.

    Attributes (after ``fit``)
    --------------------------
    codebooks:
        float32 [levels, K, dim].
    dim:
        Embedding dimension seen at fit.
    fit_info:
        ``{"n": ..., "dim": ..., "seconds": total, "levels": [per level: "level",
        "train_points", "seconds", "kmeans_objective" (faiss's final sum of squared
        distances on the training sample), "mse" (mean squared error over all points
        and dims after this level)]}``.

    Example::

        rq = RQKMeans(levels=3, codebook_size=256, seed=0)
        codes = rq.fit_encode(X)          # int32 [n, 3]
        X_hat = rq.decode(codes)          # float32 [n, dim]
    """

    def __init__(
        self,
        levels: int = 3,
        codebook_size: int = 256,
        n_iter: int = 20,
        seed: int = 0,
        max_points_per_centroid: int | None = 256,
        n_redo: int = 1,
        progressive_dim_steps: int = 10,
        verbose: bool = False,
        n_threads: int | None = None,
        beam_size: int = 1,
    ) -> None:
        self.levels = check_int("levels", levels, 1)
        self.codebook_size = check_int("codebook_size", codebook_size, 2)
        self.n_iter = check_int("n_iter", n_iter, 1)
        # faiss stores its seed in a C int.
        self.seed = check_int("seed", seed, 0)
        if self.seed > 2**31 - 1:
            raise ValueError(f"seed must be < 2**31, got {seed}")
        self.max_points_per_centroid = (
            None
            if max_points_per_centroid is None
            else check_int("max_points_per_centroid", max_points_per_centroid, 1)
        )
        self.n_redo = check_int("n_redo", n_redo, 1)
        self.progressive_dim_steps = check_int("progressive_dim_steps", progressive_dim_steps, 0)
        self.verbose = bool(verbose)
        self.n_threads = None if n_threads is None else check_int("n_threads", n_threads, 1)
        self.beam_size = check_int("beam_size", beam_size, 1)
        self.codebooks: np.ndarray | None = None
        self.dim: int | None = None
        self.fit_info: dict[str, Any] = {}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"RQKMeans({params})"

    def get_params(self) -> dict[str, Any]:
        return {
            "levels": self.levels,
            "codebook_size": self.codebook_size,
            "n_iter": self.n_iter,
            "seed": self.seed,
            "max_points_per_centroid": self.max_points_per_centroid,
            "n_redo": self.n_redo,
            "progressive_dim_steps": self.progressive_dim_steps,
            "verbose": self.verbose,
            "n_threads": self.n_threads,
            "beam_size": self.beam_size,
        }

    @property
    def is_fitted(self) -> bool:
        return self.codebooks is not None

    # ------------------------------------------------------------------ fitting

    def fit(self, X: np.ndarray, progress: Callable[[str], None] | None = None,
            init_codebooks: np.ndarray | None = None) -> RQKMeans:
        """Learn one codebook per level on ``X`` [n, dim] (float; float64 is cast to float32)."""
        self.fit_encode(X, progress=progress, init_codebooks=init_codebooks)
        return self

    def fit_encode(
        self, X: np.ndarray, progress: Callable[[str], None] | None = None,
        init_codebooks: np.ndarray | None = None,
        warm_iterations: int | None = None,
    ) -> np.ndarray:
        """Fit and return the codes of the training points, int32 [n, levels].

        Fitting already assigns every point at every level (the next level trains on
        the residuals), so this costs nothing beyond ``fit``.

        ``init_codebooks`` [levels, K, dim] (an earlier version's codebooks) warm-starts
        every level's k-means from that level's codebook — plain Lloyd iterations from
        those centroids, since progressive-dimension k-means cannot start from given
        centroids and a trained codebook does not have the random-start collapse that
        progressive k-means guards against. Code ``k`` then tends to stay near the
        earlier code ``k``; ``core/tokenizers/anchoring.py`` makes the label correspondence exact.
        ``warm_iterations`` (default ``n_iter``) sets the Lloyd iterations of a warm start:
        every iteration lets border items drift to another code, so few iterations keep
        more IDs for nearly the same error (measured in the README).
        """
        init_codebooks = checked_warm_start(init_codebooks, warm_iterations, self.levels, self.codebook_size)
        with faiss_threads(self.n_threads):
            return self._fit_encode(X, progress, init_codebooks, warm_iterations)

    def _fit_encode(self, X: np.ndarray, progress: Callable[[str], None] | None,
                    init_codebooks: np.ndarray | None = None, warm_iterations: int | None = None) -> np.ndarray:
        X_in = X
        X = as_float32_matrix(X)
        n, d = X.shape
        K = self.codebook_size
        if init_codebooks is not None and init_codebooks.shape[2] != d:
            raise ValueError(f"init_codebooks have dim {init_codebooks.shape[2]} but X has dim {d}")
        if n < K:
            raise ValueError(
                f"X has {n} points but codebook_size is {K}: k-means needs at least one "
                f"point per centroid; use codebook_size <= {n} (a power of two such as "
                f"{1 << max(1, int(math.log2(max(n, 2))) - 1)} keeps codes compact)"
            )
        cap = n if self.max_points_per_centroid is None else self.max_points_per_centroid * K
        n_train = min(n, cap)
        if n_train < _MIN_POINTS_PER_CENTROID * K:
            warnings.warn(
                f"RQKMeans trains {K} centroids per level on {n_train} points "
                f"(< {_MIN_POINTS_PER_CENTROID} per centroid): codebooks will be noisy; "
                "consider a smaller codebook_size",
                UserWarning,
                stacklevel=3,
            )

        rng = np.random.default_rng(self.seed)
        t_start = time.perf_counter()
        residual = _private_copy(X, X_in)
        del X
        codes = np.empty((n, self.levels), dtype=np.int32)
        codebooks = np.empty((self.levels, K, d), dtype=np.float32)
        level_info: list[dict[str, Any]] = []

        for lvl in range(self.levels):
            t0 = time.perf_counter()
            if n_train < n:
                # Sorted indices: the gather then walks memory forwards.
                idx = np.sort(rng.choice(n, size=n_train, replace=False))
                sample = residual[idx]
            else:
                sample = residual
            # Points an earlier level already reconstructed exactly (singleton codes) sit at
            # the origin; picked as an initial centroid, the origin is every near-orthogonal
            # residual's nearest point and the level collapses. They carry nothing to learn.
            exact = ~np.any(sample, axis=1)
            if exact.any() and int((~exact).sum()) >= K:
                sample = sample[~exact]
            # A fresh faiss seed per level: faiss's ResidualQuantizer reuses one seed, so on
            # a fixed training set every level starts from the same points, whose residuals
            # the previous level already shrank; its level 2 then barely helps (all 100k
            # points of the benchmark data: MSE after level 2 2.02e-3 vs 1.85e-3 here).
            faiss_seed = int(rng.integers(0, 2**31 - 1))
            train_rows = len(sample)
            init = None if init_codebooks is None else init_codebooks[lvl]
            centroids, objective = self._kmeans(sample, faiss_seed, init, warm_iterations)
            del sample
            codebooks[lvl] = centroids
            sse = _assign_and_subtract(residual, centroids, codes[:, lvl])
            seconds = time.perf_counter() - t0
            mse = sse / (n * d)
            level_info.append(
                {
                    "level": lvl + 1,
                    "train_points": int(train_rows),
                    "seconds": round(seconds, 4),
                    "kmeans_objective": float(objective),
                    "mse": float(mse),
                }
            )
            if progress is not None:
                progress(
                    f"RQKMeans level {lvl + 1}/{self.levels}: K={K}, trained on {train_rows:,} "
                    f"of {n:,} points in {seconds:.2f} s, reconstruction MSE {mse:.6g}"
                )

        self.codebooks = codebooks
        self.dim = int(d)
        self.fit_info = {
            "n": int(n),
            "dim": int(d),
            "seconds": round(time.perf_counter() - t_start, 4),
            "levels": level_info,
            "warm_started": init_codebooks is not None,
            **({"warm_iterations": int(warm_iterations or self.n_iter)} if init_codebooks is not None else {}),
        }
        return codes

    def _kmeans(self, sample: np.ndarray, faiss_seed: int,
                init: np.ndarray | None = None, warm_iterations: int | None = None) -> tuple[np.ndarray, float]:
        n_train, d = sample.shape
        K = self.codebook_size
        # Progressive k-means ranks dimensions by a PCA of the sample, which faiss cannot fit
        # from fewer points than dimensions: a catalogue that small trains with plain Lloyd.
        progressive = self.progressive_dim_steps and init is None and n_train >= d
        kmeans = faiss.Kmeans(
            d,
            K,
            niter=self.n_iter if init is None or warm_iterations is None else warm_iterations,
            # Restarts from the same given centroids would only repeat the same run.
            nredo=self.n_redo if init is None else 1,
            seed=faiss_seed,
            verbose=self.verbose,
            # We sampled already (reproducibly, with numpy): stop faiss from subsampling
            # again, and from printing its too-few-points warning (we warn in Python).
            max_points_per_centroid=n_train // K + 1,
            min_points_per_centroid=1,
            # faiss switches to progressive clustering whenever the keyword is present.
            **({"progressive_dim_steps": self.progressive_dim_steps} if progressive else {}),
        )
        objective = kmeans.train(sample, init_centroids=init)
        return np.ascontiguousarray(kmeans.centroids, dtype=np.float32), float(objective)

    # ---------------------------------------------------------------- encoding

    def _check_fitted(self, action: str) -> np.ndarray:
        if self.codebooks is None:
            raise ValueError(f"RQKMeans is not fitted: call fit() before {action}()")
        return self.codebooks

    def encode(self, X: np.ndarray, beam_size: int | None = None) -> np.ndarray:
        """Codes of ``X`` [n, dim]: int32 [n, levels]; greedy level by level at beam 1,
        else the best path of a beam search (``beam_size`` defaults to the constructor's)."""
        codebooks = self._check_fitted("encode")
        beam = self.beam_size if beam_size is None else check_int("beam_size", beam_size, 1)
        X_in = X
        X = as_float32_matrix(X)
        if X.shape[1] != self.dim:
            raise ValueError(
                f"X has dim {X.shape[1]} but the tokenizer was fitted on dim {self.dim}"
            )
        if beam > 1:
            with faiss_threads(self.n_threads):
                return beam_encode(X, codebooks, beam)
        residual = _private_copy(X, X_in)
        del X
        codes = np.empty((residual.shape[0], self.levels), dtype=np.int32)
        with faiss_threads(self.n_threads):
            for lvl in range(self.levels):
                _assign_and_subtract(residual, codebooks[lvl], codes[:, lvl])
        return codes

    transform = encode

    def fit_transform(
        self, X: np.ndarray, progress: Callable[[str], None] | None = None
    ) -> np.ndarray:
        return self.fit_encode(X, progress=progress)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstruction ``sum_l C_l[codes[:, l]]``: float32 [n, dim]."""
        codebooks = self._check_fitted("decode")
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.levels:
            raise ValueError(f"codes must have shape [n, {self.levels}], got {codes.shape}")
        if not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
        if codes.size:
            lo, hi = int(codes.min()), int(codes.max())
            if lo < 0 or hi >= self.codebook_size:
                raise ValueError(
                    f"codes out of range: found values in [{lo}, {hi}], "
                    f"expected [0, {self.codebook_size - 1}]"
                )
        out = codebooks[0][codes[:, 0]]
        for lvl in range(1, self.levels):
            out += codebooks[lvl][codes[:, lvl]]
        return out

    # --------------------------------------------------------------- artefact

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        codebooks = self._check_fitted("to_arrays")
        meta = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "params": self.get_params(),
            "dim": self.dim,
            "fit_info": self.fit_info,
        }
        return {"codebooks": codebooks.copy()}, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> RQKMeans:
        if meta.get("format") != _FORMAT:
            raise ValueError(f"not an RQKMeans artefact: format={meta.get('format')!r}")
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"unsupported RQKMeans format_version {meta.get('format_version')!r} "
                f"(this code reads {_FORMAT_VERSION})"
            )
        obj = cls(**meta["params"])
        codebooks = np.ascontiguousarray(arrays["codebooks"], dtype=np.float32)
        expected = (obj.levels, obj.codebook_size, meta["dim"])
        if codebooks.shape != expected:
            raise ValueError(f"codebooks have shape {codebooks.shape}, metadata says {expected}")
        obj.codebooks = codebooks
        obj.dim = int(meta["dim"])
        obj.fit_info = dict(meta.get("fit_info", {}))
        return obj


def _private_copy(X: np.ndarray, original: Any) -> np.ndarray:
    """``X`` itself if validation already copied the caller's data (e.g. a float64 cast),
    else a copy: residuals are updated in place and must never touch the caller's array."""
    if isinstance(original, np.ndarray) and np.may_share_memory(X, original):
        return X.copy()
    if not isinstance(original, np.ndarray):
        # Array-likes (memmaps subclass ndarray; lists, torch tensors do not) may share
        # a buffer with X through __array__, so copy unless X owns its memory.
        return X if X.flags.owndata else X.copy()
    return X


def _assign_and_subtract(
    residual: np.ndarray, centroids: np.ndarray, out_codes: np.ndarray
) -> float:
    """Assign each row of ``residual`` to its nearest centroid (exact L2), write the code
    into ``out_codes`` and subtract the centroid in place; return the new sum of squares.

    Works in row blocks so the temporaries stay small and cache-warm instead of
    materialising a second n x d matrix.
    """
    d = residual.shape[1]
    index = faiss.IndexFlatL2(d)
    index.add(centroids)
    sse = 0.0
    for start in range(0, residual.shape[0], _BLOCK):
        block = residual[start : start + _BLOCK]
        _, labels = index.search(block, 1)
        lab = labels[:, 0]
        out_codes[start : start + _BLOCK] = lab
        block -= centroids[lab]
        sse += float(np.einsum("ij,ij->i", block, block).sum(dtype=np.float64))
    return sse
