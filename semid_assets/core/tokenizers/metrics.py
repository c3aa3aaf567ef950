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

import numpy as np
import pandas as pd

__all__ = [
    "codebook_utilisation",
    "token_entropy",
    "collision_stats",
    "prefix_group_ids",
    "level_report",
]

# Rows per block when reconstructing: bounds temporaries to ~block x dim floats.
_BLOCK = 65536


def _code_counts(codes_level: np.ndarray, codebook_size: int) -> np.ndarray:
    codes_level = np.asarray(codes_level)
    if codes_level.ndim != 1:
        raise ValueError(
            f"codes_level must be 1-D (one code per item), got shape {codes_level.shape}"
        )
    if not np.issubdtype(codes_level.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {codes_level.dtype}")
    if isinstance(codebook_size, bool) or int(codebook_size) != codebook_size or codebook_size < 1:
        raise ValueError(f"codebook_size must be a positive integer, got {codebook_size!r}")
    if codes_level.size == 0:
        raise ValueError("codes_level is empty")
    lo, hi = int(codes_level.min()), int(codes_level.max())
    if lo < 0 or hi >= codebook_size:
        raise ValueError(
            f"codes out of range: found values in [{lo}, {hi}], expected [0, {codebook_size - 1}]"
        )
    return np.bincount(codes_level, minlength=int(codebook_size))


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


def _as_codes_2d(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim == 1:
        codes = codes[:, None]
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D [n_items, levels], got shape {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
    if codes.shape[0] == 0:
        raise ValueError("codes is empty")
    if codes.shape[1] and int(codes.min()) < 0:
        raise ValueError("codes must be non-negative")
    return codes


def prefix_group_ids(codes: np.ndarray) -> list[np.ndarray]:
    """Dense group ids of every code prefix: element l-1 labels the tuple ``c_1..c_l``.

    Each level folds the previous dense id (< n) and the next code into one int64, so
    no product of codebook sizes can overflow whatever K and the number of levels.
    Returns a list of ``levels`` int64 arrays of length n with values in [0, #groups).
    """
    codes = _as_codes_2d(codes)
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

    Blocked over rows with float64 accumulators: 1M x 256 takes a few seconds and about
    one block of extra memory.
    """
    X = np.asarray(X)
    codebooks = np.asarray(codebooks)
    codes = _as_codes_2d(codes)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D [n_items, dim], got shape {X.shape}")
    if codebooks.ndim != 3:
        raise ValueError(f"codebooks must be 3-D [levels, K, dim], got shape {codebooks.shape}")
    n, d = X.shape
    L, K, dc = codebooks.shape
    if codes.shape != (n, L):
        raise ValueError(
            f"codes have shape {codes.shape}, expected ({n}, {L}) from X and codebooks"
        )
    if dc != d:
        raise ValueError(f"codebooks have dim {dc} but X has dim {d}")
    if int(codes.max()) >= K:
        raise ValueError(f"codes out of range: max {int(codes.max())}, codebook_size {K}")
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

    groups = prefix_group_ids(codes)
    rows = []
    for lvl in range(L):
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
