"""Argument checks shared by every estimator of the library: one wording for one mistake."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_int", "as_float32_matrix"]


def check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def as_float32_matrix(X: Any, what: str = "X") -> np.ndarray:
    """Validated float32 C-contiguous view or copy of ``X``."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array [n_items, dim], got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        raise ValueError(
            f"{what} must hold floating-point embeddings, got dtype {X.dtype}; "
            "cast explicitly if the integers really are coordinates"
        )
    X = np.ascontiguousarray(X, dtype=np.float32)
    # A float64 row sum cannot overflow for float32 inputs, so it is non-finite exactly
    # when the row holds a NaN or an inf; it is cheaper than isfinite on the full matrix.
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~np.isfinite(X.sum(axis=1, dtype=np.float64))
    n_bad = int(bad.sum())
    if n_bad:
        first = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(
            f"{what} has {n_bad} row(s) out of {X.shape[0]} containing NaN or inf "
            f"(first row indices: {first}); drop or impute them before tokenising"
        )
    return X
