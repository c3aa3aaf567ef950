"""Quality metrics of a residual-quantisation tokenizer, per level.

OneRec reports, for its 3 x 8192 RQ-Kmeans tokenizer, per level: reconstruction loss,
codebook utilisation and token-distribution entropy. This module computes those plus
the collision statistics that decide how many items need a suffix to stay addressable.

Definitions (n items, K codes per level, ``c_l`` the level-l code of an item):

- utilisation_l = |{k : some item has c_l = k}| / K.
- entropy_l = -sum_k p_k ln p_k with p_k = (#items with c_l = k) / n, in nats;
  ln K when codes are uniform, 0 when every item has the same code.
- collision rate of a code tuple = 1 - (#distinct tuples) / n: the fraction of items
  that are not the first holder of their tuple.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from semid_assets.core.tokenizers.codes import check_codes
from semid_assets.core.validation import check_int

__all__ = [
    "codebook_utilisation",
    "token_entropy",
    "collision_stats",
    "prefix_group_ids",
    "level_report",
    "decoded_level_report",
    "decoded_relative_mse",
]

# Rows per block when reconstructing: bounds temporaries to ~block x dim floats.
_BLOCK = 65536


def _code_counts(codes_level: np.ndarray, codebook_size: int) -> np.ndarray:
    codes_level = np.asarray(codes_level)
    if codes_level.ndim != 1:
        raise ValueError(
            f"codes_level must be 1-D (one code per item), got shape {codes_level.shape}"
        )
    codebook_size = check_int("codebook_size", codebook_size, 1)
    check_codes(codes_level, codebook_size=codebook_size, allow_1d=True, allow_empty=False)
    return np.bincount(codes_level, minlength=codebook_size)


def codebook_utilisation(codes_level: np.ndarray, codebook_size: int) -> float:
    """Fraction of the ``codebook_size`` codes that at least one item uses."""
    counts = _code_counts(codes_level, codebook_size)
    return float(np.count_nonzero(counts)) / codebook_size


def token_entropy(codes_level: np.ndarray, codebook_size: int) -> float:
    """Shannon entropy of the code frequencies, in nats (max ln K, for uniform codes)."""
    counts = _code_counts(codes_level, codebook_size)
    p = counts[counts > 0] / counts.sum()
    # max(…, 0) removes the -0.0 a single-code distribution would otherwise give.
    return max(float(-(p * np.log(p)).sum()), 0.0)


def prefix_group_ids(codes: np.ndarray) -> list[np.ndarray]:
    """Dense group ids of every code prefix: element l-1 labels the tuple ``c_1..c_l``.

    Each level folds the previous dense id (< n) and the next code into one int64, so
    no product of codebook sizes can overflow whatever K and the number of levels.
    Returns a list of ``levels`` int64 arrays of length n with values in [0, #groups).
    """
    codes = check_codes(codes, allow_1d=True, allow_empty=False)
    n = codes.shape[0]
    group = np.zeros(n, dtype=np.int64)
    out = []
    for lvl in range(codes.shape[1]):
        col = codes[:, lvl].astype(np.int64)
        key = group * (int(col.max()) + 1) + col
        _, group = np.unique(key, return_inverse=True)
        group = group.reshape(-1).astype(np.int64, copy=False)
        out.append(group)
    return out


def _collision_from_groups(group: np.ndarray) -> tuple[float, int]:
    counts = np.bincount(group)
    n = group.shape[0]
    return 1.0 - counts.shape[0] / n, int(counts.max())


def collision_stats(codes: np.ndarray) -> tuple[float, int]:
    """``(collision rate, largest group size)`` of the full code tuples.

    Collision rate = 1 - n_unique_tuples / n; largest group = how many items share the
    most crowded tuple (1 when there is no collision), i.e. the suffix range needed.
    A 1-D ``codes`` is read as a single level.
    """
    groups = prefix_group_ids(codes)
    return _collision_from_groups(groups[-1])


def level_report(X: np.ndarray, codes: np.ndarray, codebooks: np.ndarray) -> pd.DataFrame:
    """One row per level l = 1..L of a residual quantiser's quality.

    Columns:

    - ``level``: l.
    - ``mse``: mean over items and dims of (x - sum_{j<=l} C_j[c_j])^2.
    - ``relative_mse``: sum of squared error / sum of squared deviation of X from its
      mean: the fraction of variance left unexplained after l levels (1 = no better than
      predicting the mean, 0 = perfect).
    - ``utilisation``, ``entropy`` (nats), ``entropy_norm`` (entropy / ln K) of the
      level-l codes.
    - ``collision_rate``, ``largest_group``: of the prefix ``c_1..c_l``.

    Blocked over rows with float64 accumulators, so the extra memory is about one block.
    """
    X = np.asarray(X)
    codebooks = np.asarray(codebooks)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D [n_items, dim], got shape {X.shape}")
    if codebooks.ndim != 3:
        raise ValueError(f"codebooks must be 3-D [levels, K, dim], got shape {codebooks.shape}")
    n, d = X.shape
    L, K, dc = codebooks.shape
    codes = check_codes(codes, codebook_size=K, allow_1d=True, allow_empty=False)
    if codes.shape != (n, L):
        raise ValueError(
            f"codes have shape {codes.shape}, expected ({n}, {L}) from X and codebooks"
        )
    if dc != d:
        raise ValueError(f"codebooks have dim {dc} but X has dim {d}")
    codebooks = codebooks.astype(np.float32, copy=False)

    mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
    total_ss = 0.0
    sse = np.zeros(L, dtype=np.float64)
    for start in range(0, n, _BLOCK):
        block = X[start : start + _BLOCK].astype(np.float32, copy=True)
        centred = block - mean
        total_ss += float(np.einsum("ij,ij->i", centred, centred).sum(dtype=np.float64))
        del centred
        block_codes = codes[start : start + _BLOCK]
        for lvl in range(L):
            block -= codebooks[lvl][block_codes[:, lvl]]
            sse[lvl] += float(np.einsum("ij,ij->i", block, block).sum(dtype=np.float64))
    return _report(codes, K, sse, total_ss, d)


def decoded_level_report(X: np.ndarray, codes: np.ndarray, decode_prefix: Callable[[np.ndarray, int], np.ndarray],
                         codebook_size: int) -> pd.DataFrame:
    """:func:`level_report` of a quantiser whose reconstruction is not a sum of codebook rows (an RQ-VAE's
    decoder): ``decode_prefix(codes, l)`` gives the reconstruction from the first l codes, in X's space."""
    X, codes = _decoded_inputs(X, codes, codebook_size)
    sse, total_ss = _decoded_sse(X, codes, decode_prefix, range(1, codes.shape[1] + 1))
    return _report(codes, codebook_size, sse, total_ss, X.shape[1])


def decoded_relative_mse(X: np.ndarray, codes: np.ndarray, decode_prefix: Callable[[np.ndarray, int], np.ndarray],
                         codebook_size: int) -> float:
    """The last level's ``relative_mse`` of :func:`decoded_level_report`, bit for bit, decoding every code
    once instead of once per level."""
    X, codes = _decoded_inputs(X, codes, codebook_size)
    sse, total_ss = _decoded_sse(X, codes, decode_prefix, [codes.shape[1]])
    return float(sse[0] / total_ss) if total_ss > 0 else float("nan")


def _decoded_inputs(X, codes, codebook_size: int) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D [n_items, dim], got shape {X.shape}")
    codes = check_codes(codes, codebook_size=codebook_size, allow_empty=False)
    if codes.shape[0] != X.shape[0]:
        raise ValueError(f"codes have {codes.shape[0]} rows but X {X.shape[0]}")
    return X, codes


def _decoded_sse(X: np.ndarray, codes: np.ndarray, decode_prefix, levels) -> tuple[np.ndarray, float]:
    """Sum of squared error of the reconstruction from the first l codes, for each l of ``levels``, and
    X's total sum of squares about its mean: block by block, as a decoder's reconstruction of a whole
    catalogue is as large as the catalogue."""
    levels = list(levels)
    mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
    total_ss = 0.0
    sse = np.zeros(len(levels), dtype=np.float64)
    for start in range(0, X.shape[0], _BLOCK):
        block, block_codes = X[start : start + _BLOCK], codes[start : start + _BLOCK]
        centred = block - mean
        total_ss += float(np.einsum("ij,ij->", centred, centred, dtype=np.float64))
        for i, level in enumerate(levels):
            diff = decode_prefix(block_codes, level)
            np.subtract(block, diff, out=diff)
            sse[i] += float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
    return sse, total_ss


def _report(codes: np.ndarray, K: int, sse, total_ss: float, d: int) -> pd.DataFrame:
    """The rows of a level report from each level's sum of squared error ``sse`` and X's ``total_ss``."""
    n = codes.shape[0]
    groups = prefix_group_ids(codes)
    rows = []
    for lvl in range(codes.shape[1]):
        counts = np.bincount(codes[:, lvl], minlength=K)
        p = counts[counts > 0] / n
        entropy = max(float(-(p * np.log(p)).sum()), 0.0)
        rate, largest = _collision_from_groups(groups[lvl])
        rows.append(
            {
                "level": lvl + 1,
                "mse": sse[lvl] / (n * d),
                "relative_mse": sse[lvl] / total_ss if total_ss > 0 else float("nan"),
                "utilisation": float(np.count_nonzero(counts)) / K,
                "entropy": entropy,
                "entropy_norm": entropy / np.log(K) if K > 1 else float("nan"),
                "collision_rate": rate,
                "largest_group": largest,
            }
        )
    return pd.DataFrame(rows)
