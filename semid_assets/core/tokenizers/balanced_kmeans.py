"""Balanced residual k-means (OneRec v1's balanced k-means): every code holds ~n/K items.

Each level runs Lloyd iterations whose assignment step is capacity-constrained: no code
may take more than ``capacity = ceil(n / K * (1 + balance_slack))`` points. The
assignment is greedy on faiss top-k distances, in rounds, fully vectorised:

1. every point lists its ``candidates`` nearest centroids (one faiss search);
2. each round, every unassigned point proposes to its next listed centroid; a centroid
   accepts, nearest first, as many proposals as it has room left; the rest move on;
3. points whose whole list is full search again among the centroids with room left.

Cost: one faiss search of the points against K centroids plus O(n * candidates) numpy
work, so 1M points x K=1024 is a few seconds per pass — not the quadratic cost of an
exact min-cost-flow solver. Balance also protects a level from the collapse plain Lloyd
suffers on near-orthogonal residuals (a centroid cannot absorb more than its capacity),
so training starts from seeded random points without progressive-dimension k-means.

Anchored retraining (``core/tokenizers/anchoring.py``) warm-starts every level from given centroids
(``fit_encode(..., init_codebooks=...)``) and runs ``warm_iterations`` balanced Lloyd
iterations from there, as :class:`~semid_assets.core.tokenizers.rq_kmeans.RQKMeans` does.

Unseen items (``encode``) take their nearest codes — capacity is a property of a
population, not of one new item; ``encode_catalogue`` re-applies the capacity to a
whole catalogue, which is how the pipeline's semantic IDs are made.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
from scipy import sparse

from semid_assets.core.tokenizers.residual import beam_encode
from semid_assets.core.threads import faiss_threads
from semid_assets.core.tokenizers.rq_kmeans import checked_warm_start
from semid_assets.core.validation import as_float32_matrix, check_int

__all__ = ["RQKMeansBalanced", "balanced_assign", "balanced_capacity"]

_FORMAT = "semid.RQKMeansBalanced"
_FORMAT_VERSION = 1
_BLOCK = 65536


def balanced_capacity(n: int, K: int, slack: float) -> int:
    """Most points one of ``K`` clusters may hold among ``n``: ``ceil(n / K * (1 + slack))``."""
    return max(1, math.ceil(n / K * (1.0 + slack) - 1e-9))


def _search(X: np.ndarray, centroids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    D = np.empty((X.shape[0], k), dtype=np.float32)
    I = np.empty((X.shape[0], k), dtype=np.int64)
    for start in range(0, X.shape[0], _BLOCK):
        D[start : start + _BLOCK], I[start : start + _BLOCK] = index.search(X[start : start + _BLOCK], k)
    return D, I


def _propose_rounds(points: np.ndarray, D: np.ndarray, I: np.ndarray, load: np.ndarray,
                    capacity: int, labels: np.ndarray) -> np.ndarray:
    """Greedy capacity-constrained assignment of ``points`` over their candidate lists
    ``I`` (distances ``D``, nearest first); updates ``labels`` and ``load`` in place and
    returns the points left without a place."""
    k = I.shape[1]
    pointer = np.zeros(len(points), dtype=np.int64)
    pending = np.arange(len(points))
    while pending.size:
        pending = pending[pointer[pending] < k]
        if not pending.size:
            break
        cand = I[pending, pointer[pending]]
        dist = D[pending, pointer[pending]]
        # Group proposals by centroid, nearest first; a proposal's rank within its group
        # decides whether it fits in what is left of the centroid's capacity.
        order = np.lexsort((dist, cand))
        cand_sorted = cand[order]
        starts = np.flatnonzero(np.r_[True, cand_sorted[1:] != cand_sorted[:-1]])
        rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        accept = rank < (capacity - load[cand_sorted])
        won = pending[order[accept]]
        labels[points[won]] = cand_sorted[accept]
        load += np.bincount(cand_sorted[accept], minlength=len(load))
        lost = pending[order[~accept]]
        pointer[lost] += 1
        pending = np.sort(lost)
    return points[labels[points] < 0]


def balanced_assign(X: np.ndarray, centroids: np.ndarray, capacity: int, candidates: int = 16) -> np.ndarray:
    """int64 [n]: each row of ``X`` assigned to a centroid, no centroid above ``capacity``.

    Greedy in rounds over each point's ``candidates`` nearest centroids, nearest
    proposals first; points left over search again among centroids with room.
    """
    n = X.shape[0]
    K = centroids.shape[0]
    if capacity * K < n:
        raise ValueError(f"capacity {capacity} x {K} centroids cannot hold {n} points")
    labels = np.full(n, -1, dtype=np.int64)
    load = np.zeros(K, dtype=np.int64)
    k = min(int(candidates), K)
    D, I = _search(X, centroids, k)
    left = _propose_rounds(np.arange(n), D, I, load, capacity, labels)
    while left.size:
        room = np.flatnonzero(load < capacity)
        k = min(int(candidates), room.size)
        D, I_sub = _search(X[left], centroids[room], k)
        left = _propose_rounds(left, D, room[I_sub], load, capacity, labels)
    return labels


class RQKMeansBalanced:
    """Residual k-means with capacity-constrained (balanced) clusters at every level.

    Parameters
    ----------
    levels, codebook_size, seed:
        As :class:`~semid_assets.core.tokenizers.rq_kmeans.RQKMeans`.
    n_iter:
        Balanced Lloyd iterations per level (a warm start runs ``fit_encode``'s
        ``warm_iterations``, default ``n_iter``; ``fit_info`` records ``warm_started`` and
        ``warm_iterations``).
    balance_slack:
        Capacity of a code = ``ceil(n / K * (1 + balance_slack))``. 0 (default) is
        OneRec's equal split: sizes differ by at most one point on the training set.
    candidates:
        Nearest centroids each point may propose to before the leftover search.
    max_points_per_centroid:
        Each level trains on at most this many sampled residuals per centroid; every
        item is then assigned (balanced) at that level. ``None`` trains on all points.
    beam_size:
        Beam of ``encode`` (nearest-code encoding of unseen items); 1 is greedy.
    n_threads:
        faiss OpenMP threads (``None``: faiss's setting).
    """

    def __init__(
        self,
        levels: int = 3,
        codebook_size: int = 256,
        n_iter: int = 20,
        seed: int = 0,
        balance_slack: float = 0.0,
        candidates: int = 16,
        max_points_per_centroid: int | None = 256,
        beam_size: int = 1,
        n_threads: int | None = None,
    ) -> None:
        self.levels = check_int("levels", levels, 1)
        self.codebook_size = check_int("codebook_size", codebook_size, 2)
        self.n_iter = check_int("n_iter", n_iter, 1)
        self.seed = check_int("seed", seed, 0)
        if not (isinstance(balance_slack, (int, float)) and 0.0 <= balance_slack):
            raise ValueError(f"balance_slack must be a number >= 0, got {balance_slack!r}")
        self.balance_slack = float(balance_slack)
        self.candidates = check_int("candidates", candidates, 1)
        self.max_points_per_centroid = (
            None if max_points_per_centroid is None
            else check_int("max_points_per_centroid", max_points_per_centroid, 1))
        self.beam_size = check_int("beam_size", beam_size, 1)
        self.n_threads = None if n_threads is None else check_int("n_threads", n_threads, 1)
        self.codebooks: np.ndarray | None = None
        self.dim: int | None = None
        self.fit_info: dict[str, Any] = {}

    def get_params(self) -> dict[str, Any]:
        return {"levels": self.levels, "codebook_size": self.codebook_size, "n_iter": self.n_iter,
                "seed": self.seed, "balance_slack": self.balance_slack, "candidates": self.candidates,
                "max_points_per_centroid": self.max_points_per_centroid, "beam_size": self.beam_size,
                "n_threads": self.n_threads}

    def __repr__(self) -> str:
        return f"RQKMeansBalanced({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    # ------------------------------------------------------------------ fitting

    def fit(self, X: np.ndarray, progress: Callable[[str], None] | None = None,
            init_codebooks: np.ndarray | None = None, warm_iterations: int | None = None) -> RQKMeansBalanced:
        self.fit_encode(X, progress=progress, init_codebooks=init_codebooks, warm_iterations=warm_iterations)
        return self

    def fit_encode(self, X: np.ndarray, progress: Callable[[str], None] | None = None,
                   init_codebooks: np.ndarray | None = None, warm_iterations: int | None = None) -> np.ndarray:
        """Fit and return the balanced codes of the training points, int32 [n, levels]
        (what ``encode_catalogue(X)`` gives with the fitted codebooks).

        ``init_codebooks`` [levels, K, dim] warm-starts each level's balanced Lloyd iterations
        from that level's codebook instead of seeded random sample points, so code ``k`` tends
        to stay near the earlier code ``k`` (``core/tokenizers/anchoring.py`` makes the labels match
        exactly). ``warm_iterations`` (default ``n_iter``) sets the iterations of a warm start:
        each one lets border items move to another code.
        """
        init_codebooks = checked_warm_start(init_codebooks, warm_iterations, self.levels, self.codebook_size)
        with faiss_threads(self.n_threads):
            return self._fit_encode(X, progress, init_codebooks, warm_iterations)

    def _fit_encode(self, X: np.ndarray, progress: Callable[[str], None] | None,
                    init_codebooks: np.ndarray | None = None, warm_iterations: int | None = None) -> np.ndarray:
        residual = as_float32_matrix(X).copy()
        n, d = residual.shape
        K = self.codebook_size
        if init_codebooks is not None and init_codebooks.shape[2] != d:
            raise ValueError(f"init_codebooks have dim {init_codebooks.shape[2]} but X has dim {d}")
        if n < K:
            raise ValueError(f"X has {n} points but codebook_size is {K}; use codebook_size <= {n}")
        cap = n if self.max_points_per_centroid is None else self.max_points_per_centroid * K
        n_train = min(n, cap)
        rng = np.random.default_rng(self.seed)
        t_start = time.perf_counter()
        codes = np.empty((n, self.levels), dtype=np.int32)
        codebooks = np.empty((self.levels, K, d), dtype=np.float32)
        level_info = []
        full_capacity = balanced_capacity(n, K, self.balance_slack)
        for lvl in range(self.levels):
            t0 = time.perf_counter()
            idx = np.sort(rng.choice(n, size=n_train, replace=False)) if n_train < n else np.arange(n)
            sample = residual[idx]
            init = None if init_codebooks is None else init_codebooks[lvl]
            centroids = self._train_level(sample, rng, init, warm_iterations)
            # The same assignment encode_catalogue makes, so the fitted catalogue's codes are reproducible.
            labels = balanced_assign(residual, centroids, full_capacity, self.candidates)
            codebooks[lvl] = centroids
            codes[:, lvl] = labels
            residual -= centroids[labels]
            mse = float(np.einsum("ij,ij->", residual, residual, dtype=np.float64)) / (n * d)
            sizes = np.bincount(labels, minlength=K)
            seconds = time.perf_counter() - t0
            level_info.append({"level": lvl + 1, "train_points": int(n_train), "seconds": round(seconds, 4),
                               "mse": mse, "largest_cluster": int(sizes.max()), "capacity": full_capacity})
            if progress is not None:
                progress(f"RQKMeansBalanced level {lvl + 1}/{self.levels}: K={K}, capacity {full_capacity}, "
                         f"largest cluster {int(sizes.max())} in {seconds:.2f} s, reconstruction MSE {mse:.6g}")
        self.codebooks = codebooks
        self.dim = int(d)
        self.fit_info = {"n": int(n), "dim": int(d), "seconds": round(time.perf_counter() - t_start, 4),
                         "levels": level_info, "warm_started": init_codebooks is not None,
                         **({"warm_iterations": int(warm_iterations or self.n_iter)}
                            if init_codebooks is not None else {})}
        return codes

    def _train_level(self, sample: np.ndarray, rng: np.random.Generator, init: np.ndarray | None = None,
                     warm_iterations: int | None = None) -> np.ndarray:
        m = sample.shape[0]
        K = self.codebook_size
        capacity = balanced_capacity(m, K, self.balance_slack)
        if init is None:
            centroids, iterations = sample[np.sort(rng.choice(m, size=K, replace=False))].copy(), self.n_iter
        else:
            centroids, iterations = init.copy(), warm_iterations or self.n_iter
        for _ in range(iterations):
            labels = balanced_assign(sample, centroids, capacity, self.candidates)
            centroids = _cluster_means(sample, labels, centroids)
        return centroids

    # ---------------------------------------------------------------- encoding

    def _check_fitted(self, action: str) -> np.ndarray:
        if self.codebooks is None:
            raise ValueError(f"RQKMeansBalanced is not fitted: call fit() before {action}()")
        return self.codebooks

    def _input(self, X: np.ndarray) -> np.ndarray:
        X = as_float32_matrix(X)
        if X.shape[1] != self.dim:
            raise ValueError(f"X has dim {X.shape[1]} but the tokenizer was fitted on dim {self.dim}")
        return X

    def encode(self, X: np.ndarray, beam_size: int | None = None) -> np.ndarray:
        """Nearest codes of ``X`` (unseen items): int32 [n, levels], beam ``beam_size``."""
        codebooks = self._check_fitted("encode")
        beam = self.beam_size if beam_size is None else check_int("beam_size", beam_size, 1)
        X = self._input(X)
        with faiss_threads(self.n_threads):
            return beam_encode(X, codebooks, beam)

    def encode_catalogue(self, X: np.ndarray) -> np.ndarray:
        """Balanced codes of a whole population ``X``: level by level, capacity
        ``ceil(n / K * (1 + balance_slack))`` per code (the fitted catalogue's own codes)."""
        codebooks = self._check_fitted("encode_catalogue")
        residual = self._input(X).copy()
        n = residual.shape[0]
        capacity = balanced_capacity(n, self.codebook_size, self.balance_slack)
        codes = np.empty((n, self.levels), dtype=np.int32)
        with faiss_threads(self.n_threads):
            for lvl in range(self.levels):
                labels = balanced_assign(residual, codebooks[lvl], capacity, self.candidates)
                codes[:, lvl] = labels
                residual -= codebooks[lvl][labels]
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstruction ``sum_l C_l[codes[:, l]]``: float32 [n, dim]."""
        codebooks = self._check_fitted("decode")
        codes = _check_codes(codes, self.levels, self.codebook_size)
        out = codebooks[0][codes[:, 0]]
        for lvl in range(1, self.levels):
            out += codebooks[lvl][codes[:, lvl]]
        return out

    # --------------------------------------------------------------- artefact

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        codebooks = self._check_fitted("to_arrays")
        return {"codebooks": codebooks.copy()}, {"format": _FORMAT, "format_version": _FORMAT_VERSION,
                                                 "params": self.get_params(), "dim": self.dim,
                                                 "fit_info": self.fit_info}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> RQKMeansBalanced:
        if meta.get("format") != _FORMAT or meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"not a {_FORMAT} v{_FORMAT_VERSION} artefact: "
                             f"{meta.get('format')!r} v{meta.get('format_version')!r}")
        obj = cls(**meta["params"])
        codebooks = np.ascontiguousarray(arrays["codebooks"], dtype=np.float32)
        expected = (obj.levels, obj.codebook_size, meta["dim"])
        if codebooks.shape != expected:
            raise ValueError(f"codebooks have shape {codebooks.shape}, metadata says {expected}")
        obj.codebooks, obj.dim, obj.fit_info = codebooks, int(meta["dim"]), dict(meta.get("fit_info", {}))
        return obj


def _cluster_means(X: np.ndarray, labels: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Mean of each cluster; a cluster left empty keeps its previous centroid."""
    K = previous.shape[0]
    # A sparse one-hot product sums each cluster's rows without copying X (np.add.at is slow).
    onehot = sparse.csr_matrix((np.ones(len(labels), dtype=np.float32), (labels, np.arange(len(labels)))),
                               shape=(K, len(labels)))
    sums = np.asarray(onehot @ X, dtype=np.float64)
    counts = np.bincount(labels, minlength=K)
    out = previous.astype(np.float32, copy=True)
    filled = counts > 0
    out[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
    return out


def _check_codes(codes: np.ndarray, levels: int, K: int) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != levels:
        raise ValueError(f"codes must have shape [n, {levels}], got {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= K):
        raise ValueError(f"codes out of range: expected [0, {K - 1}], found [{int(codes.min())}, {int(codes.max())}]")
    return codes
