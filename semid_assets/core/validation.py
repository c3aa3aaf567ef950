"""Argument checks shared by every estimator of the library: one wording for one mistake."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["check_int", "check_optional_int", "check_float", "check_bool", "as_float32_matrix"]


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int, refused unless it is an integer (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return int(value)


def check_optional_int(name: str, value: Any, low: int) -> int | None:
    """``None``, or ``value`` checked by :func:`check_int`."""
    return None if value is None else check_int(name, value, low)


def check_float(name: str, value: Any, *, low: float = 0.0, inclusive: bool = True) -> float:
    """``value`` as a float, refused unless it is a finite real number (not a bool) ``>= low``
    (``> low`` when not ``inclusive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < low or (value == low and not inclusive):
        raise ValueError(f"{name} must be a finite number {'>=' if inclusive else '>'} {low:g}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool, refused unless it is one (``1`` or ``"yes"`` are not)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


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
