"""Encoding with fixed residual codebooks: greedy, beam search, next-best last-level codes.

Shared by every residual quantiser of semid (RQ-Kmeans, balanced RQ-Kmeans, and the
latent space of RQ-VAE / LETTER): given codebooks ``C`` [L, K, d] and vectors ``Z``,
find codes ``(s_1..s_L)`` whose sum ``sum_l C_l[s_l]`` is close to ``Z``.

- Greedy (beam 1): each level takes the code nearest to the current residual.
- Beam search (beam B): keep the B partial code paths with the smallest residual norm
  after each level; every path is extended by its B nearest codes, and the best B of
  the B x B children survive — what ``faiss.ResidualQuantizer`` does with
  ``max_beam_size = B``. The final code is the best surviving path. It usually lowers
  the reconstruction error (a greedy first choice can leave a residual the later
  levels represent badly), at B times the search cost.
"""

from __future__ import annotations

import faiss
import numpy as np

__all__ = ["assign_and_subtract", "beam_encode", "greedy_encode", "last_level_candidates", "prefix_residual"]

# Rows per block: bounds the [block, B, d] residual tensor of the beam.
_BLOCK = 8192
# Rows per block of a greedy assignment (see assign_and_subtract).
_ASSIGN_BLOCK = 65536


def _flat_index(codebook: np.ndarray) -> faiss.IndexFlatL2:
    index = faiss.IndexFlatL2(codebook.shape[1])
    index.add(np.ascontiguousarray(codebook, dtype=np.float32))
    return index


def assign_and_subtract(residual: np.ndarray, centroids: np.ndarray, out_codes: np.ndarray) -> float:
    """Assign each row of ``residual`` to its nearest centroid (exact L2), write the code into
    ``out_codes`` and subtract the centroid in place; return the new sum of squares.

    Works in row blocks so the temporaries stay small and cache-warm instead of materialising a
    second n x d matrix. Fitting and encoding share it, and so the block size: the float rounding
    of an exact-L2 search may depend on the batch faiss/BLAS sees, and encoding the training set
    has to reproduce the codes a fit returned bit for bit.
    """
    index = _flat_index(centroids)
    sse = 0.0
    for start in range(0, residual.shape[0], _ASSIGN_BLOCK):
        block = residual[start : start + _ASSIGN_BLOCK]
        _, labels = index.search(block, 1)
        lab = labels[:, 0]
        out_codes[start : start + _ASSIGN_BLOCK] = lab
        block -= centroids[lab]
        sse += float(np.einsum("ij,ij->i", block, block).sum(dtype=np.float64))
    return sse


def greedy_encode(Z: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """int32 [n, L]: nearest code per level on the running residual (beam 1)."""
    residual = np.array(Z, dtype=np.float32, order="C", copy=True)
    codes = np.empty((residual.shape[0], codebooks.shape[0]), dtype=np.int32)
    for lvl in range(codebooks.shape[0]):
        assign_and_subtract(residual, codebooks[lvl], codes[:, lvl])
    return codes


def beam_encode(Z: np.ndarray, codebooks: np.ndarray, beam_size: int) -> np.ndarray:
    """int32 [n, L]: the best code path found by a beam of ``beam_size`` paths per item.

    ``beam_size=1`` is greedy encoding. Ties between equally good paths go to the lower
    code (faiss returns neighbours in distance order, ties by index; our stable sorts keep it).
    """
    if isinstance(beam_size, bool) or int(beam_size) != beam_size or beam_size < 1:
        raise ValueError(f"beam_size must be a positive integer, got {beam_size!r}")
    beam_size = int(beam_size)
    if beam_size == 1:
        return greedy_encode(Z, codebooks)
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    n, d = Z.shape
    L, K, _ = codebooks.shape
    indexes = [_flat_index(codebooks[lvl]) for lvl in range(L)]
    out = np.empty((n, L), dtype=np.int32)
    for start in range(0, n, _BLOCK):
        out[start : start + _BLOCK] = _beam_block(Z[start : start + _BLOCK], codebooks, indexes, beam_size)
    return out


def _beam_block(Z: np.ndarray, codebooks: np.ndarray, indexes: list, B: int) -> np.ndarray:
    m, d = Z.shape
    L, K, _ = codebooks.shape
    # Paths: residuals [m, P, d], codes so far [m, P, l]; P = 1 before the first level.
    residual = Z[:, None, :].copy()
    paths = np.zeros((m, 1, 0), dtype=np.int32)
    rows = np.arange(m)[:, None]
    for lvl in range(L):
        P = residual.shape[1]
        k = min(B, K)
        dist, labels = indexes[lvl].search(residual.reshape(m * P, d), k)
        # Every child's distortion is its residual's squared norm: rank the P * k children.
        dist = dist.reshape(m, P * k)
        labels = labels.reshape(m, P * k)
        keep = min(B, P * k)
        order = np.argsort(dist, axis=1, kind="stable")[:, :keep]
        parent = order // k
        code = labels[rows, order].astype(np.int32)
        residual = residual[rows, parent] - codebooks[lvl][code]
        paths = np.concatenate([paths[rows, parent], code[:, :, None]], axis=2)
    # Paths are kept sorted by distortion: path 0 is the best.
    return paths[:, 0, :]


def prefix_residual(Z: np.ndarray, codebooks: np.ndarray, codes: np.ndarray, levels: int) -> np.ndarray:
    """``Z - sum_{l < levels} C_l[codes[:, l]]``: what the first ``levels`` levels leave unexplained."""
    residual = np.array(Z, dtype=np.float32, copy=True)
    for lvl in range(levels):
        residual -= codebooks[lvl][codes[:, lvl]]
    return residual


def last_level_candidates(Z: np.ndarray, codebooks: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """int64 [n, k]: each item's ``k`` nearest last-level codes given its own first L-1 codes,
    nearest first — the alternatives a colliding item can move to without changing its prefix."""
    L, K, _ = codebooks.shape
    k = min(int(k), K)
    index = _flat_index(codebooks[L - 1])
    labels = np.empty((Z.shape[0], k), dtype=np.int64)
    # Block by block (a multiple of faiss's own query block): the residuals of a whole catalogue are
    # as large as the catalogue.
    for start in range(0, Z.shape[0], _ASSIGN_BLOCK):
        block = slice(start, start + _ASSIGN_BLOCK)
        _, labels[block] = index.search(prefix_residual(Z[block], codebooks, codes[block], L - 1), k)
    return labels
