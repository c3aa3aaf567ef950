"""Hysteresis: an item keeps its previous code unless another code is better by a margin.

After an anchored refit, the code numbers of the new version mean what the previous version's
meant, but an item near the border of two codes can still flip for a negligible gain in
reconstruction. :func:`sticky_codes` re-encodes level by level (greedy residual encoding in
the space the codebooks quantise) and, at each level, keeps the item's previous code when
choosing it leaves a residual energy at most ``margin`` × the residual's own energy above the
best code's. ``margin = 0`` is plain greedy encoding; items without previous codes (``-1``
rows: new items) are always encoded greedily.

The margin a method's candidate uses when nothing sets it is :data:`CANDIDATE_MARGINS`: the margin
is a share of residual energy, but what a share costs in error differs by method (a balanced
assignment pays for every item held off its capacity-constrained code), so each method has its
own (the measurements: ``docs/generations.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from semid_assets.core.threads import compute_threads
from semid_assets.core.tokenizers.residual import greedy_encode

__all__ = ["CANDIDATE_MARGINS", "candidate_margin", "sticky_codes", "kept_after_hysteresis", "candidate_codes"]

_BLOCK = 65536

CANDIDATE_MARGINS: Mapping[str, float] = MappingProxyType({
    "rq_kmeans": 0.1,
    "rq_kmeans_balanced": 0.05,
    "rq_vae": 0.2,
    "letter": 0.1,
})
"""Method → the hysteresis margin of its month's candidate when the tokenizer config leaves it unset."""


def candidate_margin(method: str, configured: float | None = None) -> float:
    """The hysteresis margin of ``method``'s candidate: ``configured`` when set, else the method's
    :data:`CANDIDATE_MARGINS` entry."""
    if configured is not None:
        if configured < 0:
            raise ValueError(f"hysteresis must be >= 0, got {configured!r}")
        return float(configured)
    try:
        return CANDIDATE_MARGINS[method]
    except KeyError:
        raise ValueError(f"no default hysteresis for tokenizer method {method!r}; known: "
                         f"{', '.join(CANDIDATE_MARGINS)}. Set the tokenizer config's hysteresis.") from None


def sticky_codes(codebooks: np.ndarray, Z: np.ndarray, previous_codes: np.ndarray, margin: float,
                 proposed: np.ndarray | None = None) -> np.ndarray:
    """int32 [n, L]: greedy codes of ``Z`` over ``codebooks`` [L, K, d] that stay on ``previous_codes``
    [n, L] where the cost stays within the margin (see the module docstring).

    ``proposed`` [n, L]: the codes the method itself would give (a population assignment such as
    balanced k-means'); each level then weighs the previous code against the proposed one instead
    of against the nearest code."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    previous_codes = np.asarray(previous_codes)
    L, K, d = codebooks.shape
    if previous_codes.shape != (len(Z), L):
        raise ValueError(f"previous_codes has shape {previous_codes.shape}, expected {(len(Z), L)}")
    if margin == 0:
        return greedy_encode(Z, codebooks) if proposed is None else np.asarray(proposed, dtype=np.int32)
    out = np.empty((len(Z), L), dtype=np.int32)
    norms = [np.einsum("kd,kd->k", codebooks[lvl], codebooks[lvl]) for lvl in range(L)]
    for start in range(0, len(Z), _BLOCK):
        block = slice(start, start + _BLOCK)
        out[block] = _sticky_block(codebooks, norms, Z[block], previous_codes[block], margin,
                                   None if proposed is None else np.asarray(proposed)[block])
    return out


def _sticky_block(codebooks, norms, Z, previous, margin, proposed):
    residual = Z.astype(np.float64)
    rows = np.arange(len(Z))
    codes = np.empty(previous.shape, dtype=np.int32)
    for lvl in range(codebooks.shape[0]):
        book = codebooks[lvl].astype(np.float64)
        energy = np.einsum("nd,nd->n", residual, residual)
        # ||r - c||^2 = ||r||^2 - 2 r.c + ||c||^2, for every code at once.
        distances = energy[:, None] - 2.0 * residual @ book.T + norms[lvl][None, :]
        best = np.argmin(distances, axis=1)
        if proposed is not None:
            # The method's own code is the alternative while the item is still on the method's path;
            # once an earlier level stayed elsewhere, the nearest code is.
            on_path = np.all(codes[:, :lvl] == proposed[:, :lvl], axis=1)
            best = np.where(on_path, proposed[:, lvl], best)
        prev = previous[:, lvl]
        has_prev = prev >= 0
        prev_distance = np.where(has_prev, distances[rows, np.maximum(prev, 0)], np.inf)
        stay = has_prev & (prev_distance - distances[rows, best] <= margin * energy)
        chosen = np.where(stay, prev, best).astype(np.int32)
        codes[:, lvl] = chosen
        residual -= book[chosen]
    return codes


def kept_after_hysteresis(codes: np.ndarray, previous_codes: np.ndarray) -> float:
    """Share of the items with previous codes whose full tuple is unchanged."""
    known = np.all(np.asarray(previous_codes) >= 0, axis=1)
    if not known.any():
        return float("nan")
    return float(np.all(np.asarray(codes)[known] == np.asarray(previous_codes)[known], axis=1).mean())


def candidate_codes(tokenizer, X: np.ndarray, previous_codes: np.ndarray | None, margin: float,
                    encode_catalogue=None) -> np.ndarray:
    """The catalogue codes a candidate version would publish: its own catalogue codes, held on the
    published codes (``previous_codes``, ``-1`` rows for items never published) by ``margin``.

    ``margin = 0`` or no previous codes gives exactly ``tokenizer.encode_catalogue(X)``;
    ``encode_catalogue(tokenizer, X)`` computes it elsewhere (e.g. in chunks on a compute engine).
    The margin's matrix products run with the tokenizer's ``n_threads``, as its own encoding does."""
    proposed = tokenizer.encode_catalogue(X) if encode_catalogue is None else encode_catalogue(tokenizer, X)
    if previous_codes is None or margin == 0:
        return proposed
    with compute_threads(tokenizer.options.n_threads):
        return sticky_codes(tokenizer.codebooks, tokenizer.quantised(X), previous_codes, margin, proposed=proposed)
