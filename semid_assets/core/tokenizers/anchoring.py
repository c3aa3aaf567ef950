"""Anchored retraining: a new tokenizer version that keeps the previous version's code labels.

Retraining from scratch relabels everything: even when the clusters barely move,
k-means numbers them anew, and every embedding table keyed by SID downstream is
invalidated. Anchoring does two things:

1. warm start: each level's k-means starts from centroids that already hold the previous
   version's partition (``fit_encode(..., init_codebooks=...)``), so clusters that did not
   move stay where they were;
2. relabelling: each level's codes are renamed by the optimal one-to-one matching
   (``core/matching.match_level_codes``) to the codes the previous version gave the
   same items, and the codebook rows are permuted to match — the model is unchanged,
   only its labels are.

Where the previous codes come from decides the warm start. The pipeline passes the
previous version's stored semantic IDs: a retrained aligner moves every embedding, so the
previous codebooks (and the previous tokenizer applied to today's vectors) no longer
describe today's space, while the partition the previous version made still can be
carried over — each centroid re-estimated as the mean of today's vectors of the items that
held its code. Without stored codes (a notebook, embeddings known not to have moved) the
previous tokenizer encodes today's vectors and its codebooks are the warm start.

RQ-VAE and LETTER quantise an encoder's latent, so codebooks alone cannot be warm-started
(a fresh encoder makes a new latent space). They are anchored by warm-starting the whole
model: ``fit_encode(..., warm_start=previous)`` copies encoder, decoder and codebooks and
training continues from them; the previous codes (stored, or the previous model's codes of
``X``) serve only the relabelling, which is the same as for the k-means family.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from semid_assets.core.tokenizers.matching import match_level_codes
from semid_assets.core.tokenizers.residual import encode_catalogue

__all__ = ["supports_anchoring", "warm_starts_whole_model", "anchoring_mismatch", "relabel_to_previous",
           "carried_over_codebooks", "anchored_fit_encode"]


def supports_anchoring(model: Any) -> bool:
    """Whether ``model.fit_encode`` takes ``init_codebooks`` (both residual k-means methods do)
    or ``warm_start`` (RQ-VAE and LETTER, see :func:`warm_starts_whole_model`)."""
    fit_encode = getattr(model, "fit_encode", None)
    return fit_encode is not None and ("init_codebooks" in inspect.signature(fit_encode).parameters
                                       or warm_starts_whole_model(model))


def warm_starts_whole_model(model: Any) -> bool:
    """Whether ``model.fit_encode`` takes ``warm_start`` (a previous fitted model it continues training)."""
    fit_encode = getattr(model, "fit_encode", None)
    return fit_encode is not None and "warm_start" in inspect.signature(fit_encode).parameters


def anchoring_mismatch(model: Any, previous: Any, dim: int) -> str | None:
    """Why ``model`` cannot be anchored to ``previous`` on inputs of width ``dim``, or None if it can.

    A whole-model warm start asks the model (``warm_start_mismatch``: same network shape);
    the k-means family needs codebooks of shape ``(levels, codebook_size, dim)``."""
    if not supports_anchoring(model):
        return f"{type(model).__name__} cannot warm-start"
    if warm_starts_whole_model(model):
        return model.warm_start_mismatch(previous, dim)
    expected = (model.levels, model.codebook_size, int(dim))
    shape = getattr(getattr(previous, "codebooks", None), "shape", None)
    if shape != expected:
        return f"the earlier version has codebooks of shape {shape}, this one {expected}"
    return None


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


def carried_over_codebooks(X: np.ndarray, previous_codes: np.ndarray, codebook_size: int,
                           seed: int = 0) -> np.ndarray:
    """Initial codebooks [L, K, d] that carry the previous version's partition into ``X``'s space.

    Level by level, code ``k``'s centroid is the mean residual of the items the previous
    version gave code ``k`` (rows of ``previous_codes`` that are -1, items the previous
    version never saw, take no part). A code no known item holds starts at the residual
    of a seeded random known item. This is valid whatever space ``X`` lives in — unlike
    the previous codebooks themselves, which only fit if the embeddings did not move
    (a retrained aligner moves them).
    """
    X = np.asarray(X, dtype=np.float32)
    previous_codes = np.asarray(previous_codes)
    known = np.all(previous_codes >= 0, axis=1)
    if previous_codes.shape[0] != X.shape[0]:
        raise ValueError(f"previous_codes has {previous_codes.shape[0]} rows but X {X.shape[0]}")
    if not known.any():
        raise ValueError("no item of X has codes in the previous version; nothing to carry over")
    rng = np.random.default_rng(seed)
    residual = X[known].astype(np.float64)
    codes = previous_codes[known].astype(np.int64)
    levels, d = codes.shape[1], X.shape[1]
    init = np.empty((levels, codebook_size, d), dtype=np.float32)
    for level in range(levels):
        sums = np.zeros((codebook_size, d))
        np.add.at(sums, codes[:, level], residual)
        counts = np.bincount(codes[:, level], minlength=codebook_size)[:, None]
        centroids = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        empty = np.flatnonzero(counts[:, 0] == 0)
        if len(empty):
            centroids[empty] = residual[rng.choice(len(residual), size=len(empty), replace=len(empty) > len(residual))]
        init[level] = centroids
        residual -= centroids[codes[:, level]]
    return init


def anchored_fit_encode(model: Any, X: np.ndarray, previous: Any, previous_codes: np.ndarray | None = None,
                        progress: Callable[[str], None] | None = None,
                        iterations: int | None = None, epochs: int | None = None,
                        **side: Any) -> tuple[np.ndarray, dict]:
    """Fit ``model`` on ``X`` anchored to the fitted ``previous`` version; return codes and a summary.

    ``previous_codes`` [n, L]: the codes the previous version gave ``X``'s items (its stored
    semantic IDs; -1 rows for items it never saw). With them, the warm start carries the
    previous partition into this space (:func:`carried_over_codebooks`) and the relabelling
    matches on the items both versions know. Without them the embeddings are assumed not to
    have moved: the previous version's catalogue codes of ``X`` (``encode_catalogue`` for a
    balanced model, else ``encode``) and its codebooks are the warm start.
    ``model`` must support ``init_codebooks`` (see :func:`supports_anchoring`) and have the
    previous version's shape; its codebooks are relabelled in place. ``iterations``: Lloyd
    iterations after the warm start (default: the model's own ``n_iter``); each one lets more
    border items change code. A model with ``encode_catalogue`` (balanced RQ-Kmeans) returns its
    catalogue codes recomputed after the relabelling, so they are what its semantic IDs will be.

    A model that takes ``warm_start`` (RQ-VAE, LETTER) is instead trained from ``previous``
    as a whole (:func:`warm_starts_whole_model`); ``epochs`` is then its ``warm_epochs``
    (default: as many as from scratch), ``iterations`` is refused, and ``side`` inputs
    (LETTER's ``collaborative=``) reach its ``fit_encode``.
    """
    if warm_starts_whole_model(model):
        return _anchored_warm_start(model, X, previous, previous_codes, progress, iterations, epochs, side)
    if side or epochs is not None:
        raise ValueError(f"{type(model).__name__} takes neither side inputs nor epochs, got "
                         f"{sorted([*side, *(['epochs'] if epochs is not None else [])])}")
    if not supports_anchoring(model):
        raise ValueError(f"{type(model).__name__} cannot warm-start from codebooks; train it unanchored")
    if previous_codes is None:
        previous_codes = encode_catalogue(previous, X)
        init = previous.codebooks
        warm_start = "previous codebooks"
    else:
        previous_codes = np.asarray(previous_codes)
        if previous_codes.shape != (len(X), model.levels):
            raise ValueError(f"previous_codes has shape {previous_codes.shape}, expected {(len(X), model.levels)}")
        init = carried_over_codebooks(X, previous_codes, model.codebook_size, seed=model.seed)
        warm_start = "previous partition carried over"
    fit_options = {"warm_iterations": iterations} if iterations is not None else {}
    codes = model.fit_encode(X, progress=progress, init_codebooks=init, **fit_options)
    codes, relabelled = _relabel(model, codes, previous_codes)
    ties_moved = 0
    if hasattr(model, "encode_catalogue"):
        # A catalogue-wide (balanced) assignment breaks exact distance ties — duplicate centroids,
        # e.g. codes whose members all have zero residual — by centroid order, which the
        # permutation just changed; re-encoding makes the returned codes exactly those the
        # semantic_ids asset will store. Away from such ties it changes nothing.
        permuted = codes
        codes = model.encode_catalogue(X)
        ties_moved = int(np.any(codes != permuted, axis=1).sum())
    return codes, _summary(model, codes, previous_codes, relabelled, {
        "warm_start": warm_start, "iterations": int(iterations or model.n_iter),
        "items_moved_by_tie_reencoding": ties_moved})


def _relabel(model: Any, codes: np.ndarray, previous_codes: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Rename each level's codes to the previous version's by optimal matching on the items both know,
    permuting the model's codebook rows to match; returns the codes and how many labels moved per level."""
    known = np.all(previous_codes >= 0, axis=1)
    K = model.codebook_size
    relabelled = []
    codebooks = np.empty_like(model.codebooks)
    for level in range(codes.shape[1]):
        perm = match_level_codes(previous_codes[known, level], codes[known, level], K)
        codebooks[level][perm] = model.codebooks[level]
        codes[:, level] = perm[codes[:, level]]
        relabelled.append(int((perm != np.arange(K)).sum()))
    model.codebooks = codebooks
    return codes, relabelled


def _summary(model: Any, codes: np.ndarray, previous_codes: np.ndarray, relabelled: list[int],
             head: dict[str, Any]) -> dict[str, Any]:
    known = np.all(previous_codes >= 0, axis=1)
    same = codes[known] == previous_codes[known]
    info = {
        **head,
        "items_known_before": int(known.sum()),
        "codes_relabelled_per_level": relabelled,
        "full_sid_unchanged": float(np.all(same, axis=1).mean()) if known.any() else 0.0,
        "prefix_unchanged": [float(np.all(same[:, : lvl + 1], axis=1).mean()) if known.any() else 0.0
                             for lvl in range(codes.shape[1])],
    }
    model.fit_info["anchoring"] = info
    return info


def _anchored_warm_start(model: Any, X: np.ndarray, previous: Any, previous_codes: np.ndarray | None,
                         progress: Callable[[str], None] | None, iterations: int | None, epochs: int | None,
                         side: dict[str, Any]) -> tuple[np.ndarray, dict]:
    if iterations is not None:
        raise ValueError(f"iterations are the k-means family's Lloyd iterations after a warm start; "
                         f"{type(model).__name__} warm-starts the whole model: pass epochs= instead")
    X = np.asarray(X, dtype=np.float32)
    mismatch = model.warm_start_mismatch(previous, X.shape[1])
    if mismatch is not None:
        raise ValueError(mismatch)
    if previous_codes is None:
        previous_codes = encode_catalogue(previous, X)
    else:
        previous_codes = np.asarray(previous_codes)
        if previous_codes.shape != (len(X), model.levels):
            raise ValueError(f"previous_codes has shape {previous_codes.shape}, expected {(len(X), model.levels)}")
    codes = model.fit_encode(X, progress=progress, warm_start=previous, warm_epochs=epochs, **side)
    codes, relabelled = _relabel(model, codes, previous_codes)
    return codes, _summary(model, codes, previous_codes, relabelled, {
        "warm_start": "previous model", "epochs": len(model.fit_info.get("epochs", []))})
