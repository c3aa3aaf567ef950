"""How many items outrank a pair's partner: exact counts that stop as soon as the answer is known.

Recall@K of a pair asks, per direction (a finds b), whether fewer than K other items score at
least as high against a as b does. A top-K search answers it by ranking the K nearest items of
every query against the whole catalogue. Most queries of a large catalogue miss, though, and a
miss is known as soon as K items are seen ahead of the partner: here the items are swept in
blocks, and a query leaves the sweep once ``cap`` items are surely ahead (a miss at every K up to
``cap``). Only the hits and near-misses are multiplied with every block.

Scores are float32 products; each comes with a proven bound on its rounding. An item whose score
clears the partner's exact (float64) score by more than the bound is ahead, one that falls short
by more is behind, and the rare ones in between are scored in float64 (a product of two float32
numbers is exact there). The counts are those of exact arithmetic on the float32 vectors, so
they do not depend on the thread count or on how the matrix routine blocks its sums.
"""

from __future__ import annotations

import numpy as np

from semid_assets.core.threads import compute_threads, uses_torch

__all__ = ["items_ahead"]

_QUERY_BLOCK = 2048  # queries swept together
_ITEM_BLOCK = 32768  # items per product: a 2048 × 32768 block of scores is 256 MB
_RESCORE_BLOCK = 65536  # undecided (query, item) pairs scored in float64 at once
_SAFETY = 1.01  # the bound is proven; this only absorbs the rounding of the bound's own arithmetic


@uses_torch
def items_ahead(vectors: np.ndarray, queries: np.ndarray, partners: np.ndarray, cap: int,
                threads: int | None = None) -> np.ndarray:
    """Per query row ``queries[i]``: how many items other than it and ``partners[i]`` have an inner
    product with it at least the partner's (ties count as ahead), counted up to ``cap`` (``cap``
    means ``cap`` or more). Runs on ``threads`` threads (None: 1); the counts are the same at any."""
    import torch

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    queries = np.asarray(queries, np.int64)
    partners = np.asarray(partners, np.int64)
    out = np.empty(len(queries), np.int64)
    if len(queries) == 0:
        return out
    with compute_threads(threads):
        max_norm = _max_norm(x)
        if not np.isfinite(max_norm):
            raise ValueError("the vectors hold NaN or infinite values; no item can be ranked against them. "
                             "Check the embedding step that produced them.")
        precision = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")  # float32 products in float32: the bound assumes it
        try:
            for start in range(0, len(queries), _QUERY_BLOCK):
                block = slice(start, start + _QUERY_BLOCK)
                out[block] = _block_ahead(x, queries[block], partners[block], cap, max_norm)
        finally:
            torch.set_float32_matmul_precision(precision)
    return out


def _max_norm(x: np.ndarray) -> float:
    """An upper bound of the largest row norm: float32 sums of squares by blocks, raised by far more than
    their rounding (dims · 2⁻²⁴ relative)."""
    squares = [np.einsum("ij,ij->i", block, block).max(initial=0.0)
               for block in (x[i: i + _ITEM_BLOCK] for i in range(0, len(x), _ITEM_BLOCK))]
    return float(np.sqrt(max(squares, default=0.0)) * (1 + x.shape[1] * 2.0 ** -22))


def _error_factor(dims: int) -> float:
    """``e`` such that a float32 product of q and v is within ``e·|q|·|v|`` of the exact one: a float32
    sum of ``dims`` products in any order errs by at most γ = dims·2⁻²⁴/(1 − dims·2⁻²⁴) of their
    absolute sum, and Σ|q_i·v_i| ≤ |q|·|v| (Cauchy–Schwarz)."""
    return _SAFETY * dims * 2.0 ** -24 / (1 - dims * 2.0 ** -24)


def _block_ahead(x: np.ndarray, queries: np.ndarray, partners: np.ndarray, cap: int, max_norm: float) -> np.ndarray:
    """:func:`items_ahead` of one block of queries."""
    import torch

    q64 = x[queries].astype(np.float64)
    exact = np.einsum("ij,ij->i", q64, x[partners].astype(np.float64))
    # Flushed subnormals add at most dims · 2⁻¹²⁶ · max|v|; 1e-30 covers it for any sane vector.
    bound = _error_factor(x.shape[1]) * np.linalg.norm(q64, axis=1) * max_norm + 1e-30
    # float32 thresholds rounded outwards: above ``hi`` is surely ahead, below ``lo`` surely behind.
    hi = np.nextafter((exact + bound).astype(np.float32), np.float32(np.inf))
    lo = np.nextafter((exact - bound).astype(np.float32), np.float32(-np.inf))
    filtered = torch.from_numpy(x[queries])
    sure = np.zeros(len(queries), np.int64)
    band_rows, band_items = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    open_rows = np.arange(len(queries))
    for i0 in range(0, len(x), _ITEM_BLOCK):
        if not len(open_rows):
            break
        scores = (filtered[torch.from_numpy(open_rows)] @ torch.from_numpy(x[i0: i0 + _ITEM_BLOCK]).T).numpy()
        _drop_own(scores, queries[open_rows], partners[open_rows], i0)
        reached = scores >= lo[open_rows, None]
        ahead = scores > hi[open_rows, None]
        sure[open_rows] += np.count_nonzero(ahead, axis=1)
        # Undecided items matter only to a query still open after this block.
        pending = np.flatnonzero((sure[open_rows] < cap)
                                 & (np.count_nonzero(reached, axis=1) > np.count_nonzero(ahead, axis=1)))
        r, c = np.nonzero(reached[pending] & ~ahead[pending])
        band_rows.append(open_rows[pending[r]])
        band_items.append(c + i0)
        open_rows = open_rows[sure[open_rows] < cap]
    rows, items = np.concatenate(band_rows), np.concatenate(band_items)
    return np.minimum(sure + _rescored_ahead(x, q64, exact, rows, items, sure < cap), cap)


def _drop_own(scores: np.ndarray, queries: np.ndarray, partners: np.ndarray, i0: int) -> None:
    """The query and its partner are never counted: their scores in this item block become -inf."""
    for column in (queries, partners):
        inside = np.flatnonzero((column >= i0) & (column < i0 + scores.shape[1]))
        scores[inside, column[inside] - i0] = -np.inf


def _rescored_ahead(x: np.ndarray, q64: np.ndarray, exact: np.ndarray, rows: np.ndarray, items: np.ndarray,
                    open_rows: np.ndarray) -> np.ndarray:
    """Per query row, how many of its undecided items score at least its partner, scored in float64."""
    keep = open_rows[rows]
    rows, items = rows[keep], items[keep]
    counts = np.zeros(len(q64), np.int64)
    for start in range(0, len(rows), _RESCORE_BLOCK):
        r, j = rows[start: start + _RESCORE_BLOCK], items[start: start + _RESCORE_BLOCK]
        scores = np.einsum("ij,ij->i", q64[r], x[j].astype(np.float64))
        counts += np.bincount(r[scores >= exact[r]], minlength=len(q64))
    return counts
