"""Anchored retraining: a new tokenizer version that keeps the previous version's code labels.

Retraining from scratch relabels everything: even when the clusters barely move,
k-means numbers them anew, and every embedding table keyed by SID downstream is
invalidated. Anchoring does two things:

1. warm start: each level's k-means starts from the previous version's codebook of that
   level (``fit_encode(..., init_codebooks=...)``), so clusters that did not move stay
   where they were;
2. relabelling: each level's codes are renamed by the optimal one-to-one matching
   (``core/matching.match_level_codes``) to the codes the previous version gives the
   same items, and the codebook rows are permuted to match — the model is unchanged,
   only its labels are.

The previous version's codes come from encoding this version's items with the previous
tokenizer, so new items count too and no earlier table needs to be read.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from semid_assets.core.matching import match_level_codes

__all__ = ["supports_anchoring", "relabel_to_previous", "anchored_fit_encode"]


def supports_anchoring(model: Any) -> bool:
    """Whether ``model.fit_encode`` takes ``init_codebooks`` (the residual k-means family does)."""
    fit_encode = getattr(model, "fit_encode", None)
    return fit_encode is not None and "init_codebooks" in inspect.signature(fit_encode).parameters


def relabel_to_previous(codebooks: np.ndarray, codes: np.ndarray,
                        previous_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Rename each level's codes to the previous version's labels by optimal matching.

    ``codebooks`` [L, K, d], ``codes`` and ``previous_codes`` [n, L] (the same items).
    Returns ``(codebooks, codes, relabelled)``: the permuted codebooks, the renamed codes
    (decoding is unchanged: ``new_codebooks[l][new_codes] == codebooks[l][codes]``), and
    per level how many codes changed number.
    """
    codebooks = np.asarray(codebooks)
    codes = np.asarray(codes)
    previous_codes = np.asarray(previous_codes)
    if codes.shape != previous_codes.shape:
        raise ValueError(f"codes have shape {codes.shape} but previous_codes {previous_codes.shape}; "
                         "encode the same items with both versions")
    if codebooks.shape[0] != codes.shape[1]:
        raise ValueError(f"codebooks have {codebooks.shape[0]} levels but codes {codes.shape[1]}")
    K = codebooks.shape[1]
    new_codebooks = np.empty_like(codebooks)
    new_codes = np.empty_like(codes)
    relabelled = []
    for level in range(codes.shape[1]):
        perm = match_level_codes(previous_codes[:, level], codes[:, level], K)
        new_codebooks[level][perm] = codebooks[level]
        new_codes[:, level] = perm[codes[:, level]]
        relabelled.append(int((perm != np.arange(K)).sum()))
    return new_codebooks, new_codes, relabelled


def anchored_fit_encode(model: Any, X: np.ndarray, previous: Any,
                        progress: Callable[[str], None] | None = None) -> tuple[np.ndarray, dict]:
    """Fit ``model`` on ``X`` anchored to the fitted ``previous`` version; return codes and a summary.

    ``model`` must support ``init_codebooks`` (see :func:`supports_anchoring`) and have the
    previous version's shape; its codebooks are relabelled in place.
    """
    if not supports_anchoring(model):
        raise ValueError(f"{type(model).__name__} cannot warm-start from codebooks; train it unanchored")
    previous_codes = previous.encode(X)
    codes = model.fit_encode(X, progress=progress, init_codebooks=previous.codebooks)
    model.codebooks, codes, relabelled = relabel_to_previous(model.codebooks, codes, previous_codes)
    unchanged = np.all(codes == previous_codes, axis=1)
    info = {
        "codes_relabelled_per_level": relabelled,
        "full_sid_unchanged": float(unchanged.mean()),
        "prefix_unchanged": [float(np.all(codes[:, : lvl + 1] == previous_codes[:, : lvl + 1], axis=1).mean())
                             for lvl in range(codes.shape[1])],
    }
    model.fit_info["anchoring"] = info
    return codes, info
