"""ROC AUC and log-loss with bootstrap confidence intervals, paired across models.

Impressions are not independent: the rows of one user share that user's taste and
pickiness, and the rows of one item share that item's appeal. A bootstrap therefore
resamples *clusters*, not rows: each replicate draws as many clusters as there are, with
replacement, and weights every row by how often its cluster was drawn. Clustering by
users holds the items fixed and clustering by items holds the users fixed; a slice with
few items (new uploads) has most of its uncertainty in the items, which only the item
bootstrap sees. All models scored on the same rows share the replicates, so the interval
of a difference between two models is the percentile interval of their per-replicate
differences — far tighter than comparing two marginal intervals.

AUC is the Mann–Whitney statistic with ties counted one half, computed from one sort
per score vector; a weighted replicate then costs two ``bincount`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "auc", "log_loss", "ClusterBootstrap"]


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def width(self) -> float:
        return self.high - self.low

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(f"labels and scores must be 1-D of one length, got {labels.shape} and {scores.shape}")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (negative) or 1 (positive)")
    if not np.isfinite(scores).all():
        raise ValueError(f"scores hold {int((~np.isfinite(scores)).sum())} NaN/inf value(s)")
    return labels.astype(np.int8), scores


class _Ranked:
    """One score vector sorted once: tie blocks and each row's block, for weighted AUCs."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray):
        order = np.argsort(scores, kind="stable")
        sorted_scores = scores[order]
        starts = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]] if len(scores) else np.zeros(0, bool)
        block_sorted = np.cumsum(starts) - 1
        self.block = np.empty(len(scores), dtype=np.int64)
        self.block[order] = block_sorted
        self.n_blocks = int(block_sorted[-1]) + 1 if len(scores) else 0
        self.positive = labels == 1

    def auc(self, weights: np.ndarray) -> float:
        pos = np.bincount(self.block, weights=np.where(self.positive, weights, 0.0), minlength=self.n_blocks)
        neg = np.bincount(self.block, weights=np.where(self.positive, 0.0, weights), minlength=self.n_blocks)
        total_pos, total_neg = pos.sum(), neg.sum()
        if total_pos <= 0 or total_neg <= 0:
            return float("nan")
        below = np.cumsum(neg) - neg
        return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


def auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """P(score of a random positive > score of a random negative), ties counting 1/2.

    NaN when the rows hold only one class (AUC is undefined there).
    """
    labels, scores = _check(labels, scores)
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    return _Ranked(labels, scores).auc(w)


def log_loss(labels: np.ndarray, probabilities: np.ndarray, weights: np.ndarray | None = None,
             eps: float = 1e-7) -> float:
    """Mean binary cross-entropy (nats) of predicted probabilities."""
    labels, p = _check(labels, probabilities)
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must lie in [0, 1]")
    p = np.clip(p, eps, 1 - eps)
    losses = -(labels * np.log(p) + (1 - labels) * np.log1p(-p))
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    return float((losses * w).sum() / w.sum()) if w.sum() > 0 else float("nan")


class ClusterBootstrap:
    """Replicates that resample clusters (users, or items) with replacement, shared by every
    model scored on these rows.

    ``groups`` holds each row's cluster as an integer in ``[0, n_groups)``; pass the same
    ``n_groups`` and ``seed`` to the bootstrap of a subset of the rows (e.g. cold items)
    so that a cluster carries the same weight in both.
    """

    def __init__(self, labels: np.ndarray, groups: np.ndarray, *, n_groups: int | None = None,
                 n_boot: int = 500, seed: int = 0, level: float = 0.95):
        self.labels = np.asarray(labels).astype(np.int8)
        self.groups = np.asarray(groups, dtype=np.int64)
        if self.groups.shape != self.labels.shape:
            raise ValueError(f"need one group per row: {self.groups.shape} groups for {self.labels.shape} labels")
        if self.groups.size and self.groups.min() < 0:
            raise ValueError("groups must be non-negative integers")
        self.n_groups = int(n_groups if n_groups is not None else (self.groups.max() + 1 if self.groups.size else 0))
        if self.groups.size and self.groups.max() >= self.n_groups:
            raise ValueError(f"groups reach {int(self.groups.max())} but n_groups is {self.n_groups}")
        if n_boot < 1 or not 0 < level < 1:
            raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got n_boot={n_boot}, level={level}")
        self.n_boot, self.seed, self.level = int(n_boot), int(seed), float(level)

    def _weights(self):
        rng = np.random.default_rng(self.seed)
        for _ in range(self.n_boot):
            drawn = np.bincount(rng.integers(0, self.n_groups, self.n_groups), minlength=self.n_groups)
            yield drawn[self.groups].astype(np.float64)

    def auc_replicates(self, scores: np.ndarray) -> np.ndarray:
        labels, scores = _check(self.labels, scores)
        ranked = _Ranked(labels, scores)
        return np.array([ranked.auc(w) for w in self._weights()])

    def interval(self, estimate: float, replicates: np.ndarray) -> Interval:
        finite = replicates[np.isfinite(replicates)]
        if not finite.size:
            return Interval(float(estimate), float("nan"), float("nan"))
        tail = (1 - self.level) / 2 * 100
        low, high = np.percentile(finite, [tail, 100 - tail])
        return Interval(float(estimate), float(low), float(high))

    def auc(self, scores: np.ndarray) -> tuple[Interval, np.ndarray]:
        """The AUC with its percentile interval, and the replicates (for paired differences)."""
        replicates = self.auc_replicates(scores)
        return self.interval(auc(self.labels, scores), replicates), replicates

    def difference(self, estimate_a: float, replicates_a: np.ndarray, estimate_b: float,
                   replicates_b: np.ndarray) -> Interval:
        """Interval of ``a − b`` from replicates drawn by this same bootstrap."""
        return self.interval(estimate_a - estimate_b, replicates_a - replicates_b)
