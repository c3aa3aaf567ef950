"""Balanced residual k-means (OneRec v1's balanced k-means): every code holds ~n/K items.

Each level runs Lloyd iterations whose assignment step is capacity-constrained: no code
may take more than ``capacity = ceil(n / K * (1 + balance_slack))`` points. The
assignment is greedy on faiss top-k distances, in rounds, fully vectorised:

1. every point lists its ``candidates`` nearest centroids (one faiss search);
2. each round, every unassigned point proposes to its next listed centroid; a centroid
   accepts, nearest first, as many proposals as it has room left; the rest move on;
3. points whose whole list is full search again among the centroids with room left.

Cost: one faiss search of the points against K centroids plus O(n * candidates) numpy
work per pass — not the quadratic cost of an exact min-cost-flow solver. Balance also protects a level from the collapse plain Lloyd
suffers on near-orthogonal residuals (a centroid cannot absorb more than its capacity),
so training starts from seeded random points without progressive-dimension k-means.

Anchored retraining (``core/tokenizers/anchoring.py``) warm-starts every level from given centroids
(``fit_encode(..., warm_start=WarmStart(previous, init_codebooks=...))``) and runs ``WarmStart.steps``
balanced Lloyd iterations from there, as :class:`~semid_assets.core.tokenizers.rq_kmeans.RQKMeans` does.

Unseen items (``encode``) take their nearest codes — capacity is a property of a
population, not of one new item; ``encode_catalogue`` re-applies the capacity to a
whole catalogue, which is how the pipeline's semantic IDs are made.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
from scipy import sparse

from semid_assets.core.tokenizers.base import store_checked
from semid_assets.core.tokenizers.kmeans_family import KMeansOptions, ResidualKMeans
from semid_assets.core.validation import check_float, check_int

__all__ = ["RQKMeansBalanced", "BalancedOptions", "balanced_assign", "balanced_capacity"]

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


@dataclass(frozen=True, kw_only=True)
class BalancedOptions(KMeansOptions):
    """Options of balanced RQ-Kmeans (``rq_kmeans_balanced``)."""

    balance_slack: float = 0.0
    """A code holds at most ``ceil(n / K * (1 + balance_slack))`` items. 0 is OneRec's equal split:
    on the fitted catalogue, code sizes differ by at most one item."""
    candidates: int = 16
    """Nearest centroids each item may propose to before the search among centroids with room left."""

    def __post_init__(self) -> None:
        super().__post_init__()
        store_checked(self, balance_slack=check_float("balance_slack", self.balance_slack),
                      candidates=check_int("candidates", self.candidates, 1))


class RQKMeansBalanced(ResidualKMeans):
    """Residual k-means with capacity-constrained (balanced) clusters at every level.

    Every level trains balanced Lloyd iterations from seeded random sample points (or a warm
    start's centroids) and then assigns the whole catalogue with the capacity. ``encode`` gives an
    unseen item its nearest codes (beam ``beam_size``); ``encode_catalogue`` applies the capacity
    to a whole population, which is what ``fit_encode`` returns. ``fit_info["levels"]`` adds
    ``largest_cluster`` and ``capacity`` per level.
    """

    method = "rq_kmeans_balanced"
    Options = BalancedOptions
    artifact_format = "semid.RQKMeansBalanced"
    population_codes = True

    def _train_level(self, sample: np.ndarray, rng: np.random.Generator, init: np.ndarray | None,
                     iterations: int) -> tuple[np.ndarray, dict[str, Any]]:
        m = sample.shape[0]
        K = self.codebook_size
        capacity = balanced_capacity(m, K, self.options.balance_slack)
        centroids = sample[np.sort(rng.choice(m, size=K, replace=False))].copy() if init is None else init.copy()
        for _ in range(iterations):
            labels = balanced_assign(sample, centroids, capacity, self.options.candidates)
            centroids = _cluster_means(sample, labels, centroids)
        return centroids, {"train_points": int(m)}

    def _assign_level(self, residual: np.ndarray, centroids: np.ndarray, out_codes: np.ndarray) -> dict[str, Any]:
        capacity = balanced_capacity(residual.shape[0], self.codebook_size, self.options.balance_slack)
        labels = balanced_assign(residual, centroids, capacity, self.options.candidates)
        out_codes[:] = labels
        residual -= centroids[labels]
        return {"sse": float(np.einsum("ij,ij->", residual, residual, dtype=np.float64)),
                "largest_cluster": int(np.bincount(labels, minlength=self.codebook_size).max()),
                "capacity": capacity}

    def encode_catalogue(self, X: Any) -> np.ndarray:
        """Balanced codes of a whole population ``X``: level by level, at most
        ``ceil(n / K * (1 + balance_slack))`` items per code (the fitted catalogue's own codes)."""
        self._check_fitted("encode_catalogue")
        residual = self._checked_input(X).copy()
        codes = np.empty((residual.shape[0], self.levels), dtype=np.int32)
        with self._threads():
            for lvl in range(self.levels):
                self._assign_level(residual, self.codebooks[lvl], codes[:, lvl])
        return codes


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
