"""The one validator of code arrays: what a tokenizer, a semantic-ID table or a metric accepts as codes.

Codes are integer indices into per-level codebooks, one row per item and one column per level,
stored as int32. Every module that takes codes from a caller checks them here, so one mistake
gets one wording wherever it is made.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_codes"]

_INT32_MAX = int(np.iinfo(np.int32).max)


def check_codes(codes: Any, *, levels: int | None = None, codebook_size: int | None = None, what: str = "codes",
                allow_1d: bool = False, allow_empty: bool = True) -> np.ndarray:
    """``codes`` as a 2-D integer array ``[n_items, levels]``, or a ``ValueError`` naming ``what`` is wrong.

    - ``levels``: the number of columns required (any number >= 1 when None).
    - ``codebook_size``: every code must lie in ``[0, codebook_size - 1]``; when None, codes must
      be non-negative and fit in int32 (how semantic IDs are stored).
    - ``allow_1d``: a 1-D array is read as a single level and returned as ``[n, 1]``.
    - ``allow_empty``: whether zero rows are accepted.

    The array is returned as given (no copy, dtype kept), reshaped only for ``allow_1d``.
    """
    codes = np.asarray(codes)
    if allow_1d and codes.ndim == 1:
        codes = codes[:, None]
    if codes.ndim != 2:
        expected = "1-D [n_items] or 2-D [n_items, levels]" if allow_1d else "2-D [n_items, levels]"
        raise ValueError(f"{what} must be {expected}, got shape {codes.shape}")
    if levels is not None and codes.shape[1] != levels:
        raise ValueError(f"{what} must have shape [n, {levels}], got {codes.shape}")
    if codes.shape[1] < 1:
        raise ValueError(f"{what} must have at least one level")
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"{what} must be integers, got dtype {codes.dtype}")
    if codes.shape[0] == 0:
        if not allow_empty:
            raise ValueError(f"{what} is empty")
        return codes
    lo, hi = int(codes.min()), int(codes.max())
    if codebook_size is not None:
        if lo < 0 or hi >= codebook_size:
            raise ValueError(f"{what} out of range: found values in [{lo}, {hi}], "
                             f"expected [0, {codebook_size - 1}]")
    elif lo < 0:
        raise ValueError(f"{what} must be non-negative (a code indexes a codebook row), found {lo}")
    elif hi > _INT32_MAX:
        raise ValueError(f"{what} must fit in int32, found {hi}")
    return codes
