"""What the two residual k-means tokenizers share: options, the level-by-level fit, the warm start.

Both quantise the embeddings themselves, level by level::

    R_1 = X;   C_l = kmeans(R_l);   s_l = assign(R_l, C_l);   R_{l+1} = R_l - C_l[s_l]

Each level trains on a seeded sample of the residuals and then assigns every item. A method
says how a level trains (:meth:`ResidualKMeans._train_level`: faiss k-means, or balanced Lloyd
iterations) and how it assigns (:meth:`ResidualKMeans._assign_level`: nearest centroid, or
capacity-constrained). A warm start (``Anchoring.CODEBOOKS``) starts every level's iterations
from given centroids instead.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from semid_assets.core.tokenizers.base import (Anchoring, Progress, QuantiserOptions, Tokenizer, WarmStart,
                                               store_checked)
from semid_assets.core.validation import as_float32_matrix, check_int, check_optional_int

__all__ = ["KMeansOptions", "ResidualKMeans", "private_copy"]


@dataclass(frozen=True, kw_only=True)
class KMeansOptions(QuantiserOptions):
    """Options of the residual k-means family."""

    n_iter: int = 20
    """Lloyd iterations per level of a fit from scratch (a warm start runs ``WarmStart.steps``,
    by default as many)."""
    max_points_per_centroid: int | None = 256
    """Each level trains on at most ``max_points_per_centroid * codebook_size`` residuals, sampled
    without replacement by a generator seeded with ``seed``; every item is then assigned at that
    level. 256 is faiss's own default: centroid estimates settle at a few hundred points per
    centroid, while every Lloyd iteration costs time linear in the sample (so 1M items at K=256
    train on 65,536 points per level). None, or a cap at or above the item count, trains on all."""

    def __post_init__(self) -> None:
        super().__post_init__()
        store_checked(self, n_iter=check_int("n_iter", self.n_iter, 1),
                      max_points_per_centroid=check_optional_int("max_points_per_centroid",
                                                                 self.max_points_per_centroid, 1))


def private_copy(X: np.ndarray, original: Any) -> np.ndarray:
    """``X`` itself if validation already copied the caller's data (e.g. a float64 cast),
    else a copy: residuals are updated in place and must never touch the caller's array."""
    if isinstance(original, np.ndarray) and np.may_share_memory(X, original):
        return X.copy()
    if not isinstance(original, np.ndarray):
        # Array-likes (memmaps subclass ndarray; lists, torch tensors do not) may share
        # a buffer with X through __array__, so copy unless X owns its memory.
        return X if X.flags.owndata else X.copy()
    return X


class ResidualKMeans(Tokenizer):
    """A residual k-means tokenizer: ``codebooks`` float32 [levels, K, dim] quantise the embeddings.

    ``fit_info`` after a fit: ``n``, ``dim``, ``seconds``, ``warm_started`` (and ``warm_iterations``
    when warm-started), and ``levels``: per level ``level``, ``train_points``, ``seconds``, ``mse``
    (mean squared error over all items and dims after this level) plus the method's own figures.
    """

    anchoring = Anchoring.CODEBOOKS

    def __init__(self, options: KMeansOptions | None = None, /, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self.codebooks: np.ndarray | None = None

    # ------------------------------------------------------------ what a method says

    @abc.abstractmethod
    def _train_level(self, sample: np.ndarray, rng: np.random.Generator, init: np.ndarray | None,
                     iterations: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Centroids [K, d] of one level trained on ``sample`` (from ``init`` when given), and figures for
        ``fit_info`` (at least ``train_points``)."""

    @abc.abstractmethod
    def _assign_level(self, residual: np.ndarray, centroids: np.ndarray, out_codes: np.ndarray) -> dict[str, Any]:
        """Assign every row of ``residual`` a code into ``out_codes`` and subtract its centroid in place;
        return figures for ``fit_info`` (at least ``sse``, the new sum of squares)."""

    def _check_training_size(self, n_train: int) -> None:
        """Hook: warn about a training sample too small for the codebook (nothing by default)."""

    # ------------------------------------------------------------------ fitting

    def _fit_encode(self, X: Any, progress: Progress | None, warm_start: WarmStart | None,
                    side: dict[str, Any]) -> np.ndarray:
        X32 = self._training_matrix(X, warm_start)
        init, iterations = self._warm_init(warm_start, X32.shape[1])
        self._check_training_size(self._train_size(X32.shape[0]))
        residual = private_copy(X32, X)
        del X32
        return self._fit_levels(residual, progress, init, iterations)

    def _train_size(self, n: int) -> int:
        cap = self.options.max_points_per_centroid
        return n if cap is None else min(n, cap * self.codebook_size)

    def _warm_init(self, warm_start: WarmStart | None, dim: int) -> tuple[np.ndarray | None, int]:
        """The start centroids [levels, K, dim] (None: from scratch) and Lloyd iterations per level."""
        if warm_start is None:
            return None, self.options.n_iter
        init = warm_start.previous.codebooks if warm_start.init_codebooks is None else warm_start.init_codebooks
        init = np.asarray(init)
        if init.ndim != 3 or init.shape[:2] != (self.levels, self.codebook_size):
            raise ValueError(
                f"init_codebooks has shape {init.shape}, expected ({self.levels}, {self.codebook_size}, dim): "
                "anchor only to a version with the same levels and codebook_size")
        if init.shape[2] != dim:
            raise ValueError(f"init_codebooks have dim {init.shape[2]} but X has dim {dim}")
        init = as_float32_matrix(init.reshape(-1, dim), "init_codebooks").reshape(init.shape)
        return init, warm_start.steps or self.options.n_iter

    def _fit_levels(self, residual: np.ndarray, progress: Progress | None, init: np.ndarray | None,
                    iterations: int) -> np.ndarray:
        n, d = residual.shape
        n_train = self._train_size(n)
        rng = np.random.default_rng(self.options.seed)
        t_start = time.perf_counter()
        codes = np.empty((n, self.levels), dtype=np.int32)
        codebooks = np.empty((self.levels, self.codebook_size, d), dtype=np.float32)
        level_info: list[dict[str, Any]] = []
        for lvl in range(self.levels):
            t0 = time.perf_counter()
            # Sorted indices: the gather then walks memory forwards.
            sample = residual[np.sort(rng.choice(n, size=n_train, replace=False))] if n_train < n else residual
            centroids, info = self._train_level(sample, rng, None if init is None else init[lvl], iterations)
            del sample
            codebooks[lvl] = centroids
            info.update(self._assign_level(residual, centroids, codes[:, lvl]))
            sse = info.pop("sse")
            info = {"level": lvl + 1, **info, "seconds": round(time.perf_counter() - t0, 4), "mse": sse / (n * d)}
            level_info.append(info)
            if progress is not None:
                progress(self._progress_line(info, n))
        self.codebooks = codebooks
        self.dim = int(d)
        self.fit_info = {"n": int(n), "dim": int(d), "seconds": round(time.perf_counter() - t_start, 4),
                         "levels": level_info, "warm_started": init is not None,
                         **({"warm_iterations": int(iterations)} if init is not None else {})}
        return codes

    def _progress_line(self, info: dict[str, Any], n: int) -> str:
        extra = "".join(f", {key.replace('_', ' ')} {info[key]:,}" for key in ("capacity", "largest_cluster")
                        if key in info)
        return (f"{type(self).__name__} level {info['level']}/{self.levels}: K={self.codebook_size}, trained on "
                f"{info['train_points']:,} of {n:,} points{extra} in {info['seconds']:.2f} s, "
                f"reconstruction MSE {info['mse']:.6g}")

    # --------------------------------------------------------------- artefact

    def _state_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"codebooks": self.codebooks.copy()}, {}

    def _load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        codebooks = np.ascontiguousarray(arrays["codebooks"], dtype=np.float32)
        expected = (self.levels, self.codebook_size, self.dim)
        if codebooks.shape != expected:
            raise ValueError(f"codebooks have shape {codebooks.shape}, metadata says {expected}")
        self.codebooks = codebooks
