"""Anchored retraining: a new tokenizer version that keeps the previous version's code labels.

Retraining from scratch relabels everything: even when the clusters barely move,
k-means numbers them anew, and every embedding table keyed by SID downstream is
invalidated. Anchoring does two things:

1. warm start: each level's k-means starts from centroids that already hold the previous
   version's partition (``fit_encode(..., warm_start=WarmStart(previous, init_codebooks=...))``),
   so clusters that did not move stay where they were;
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
(a fresh encoder makes a new latent space). They declare ``Anchoring.WHOLE_MODEL``:
``fit_encode(..., warm_start=WarmStart(previous))`` copies encoder, decoder and codebooks and
training continues from them; the previous codes (stored, or the previous model's codes of
``X``) serve only the relabelling, which is the same as for the k-means family
(``Anchoring.CODEBOOKS``). Which of the two a model does is what its class declares.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semid_assets.core.tokenizers.base import Anchoring, Progress, Tokenizer, WarmStart
from semid_assets.core.tokenizers.matching import match_level_codes

__all__ = ["relabel_to_previous", "carried_over_codebooks", "anchored_fit_encode"]


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


_CARRY_BLOCK = 65536  # known items per block of carried_over_codebooks


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
    rows = np.flatnonzero(known)
    codes = previous_codes[known].astype(np.int64)
    levels, d = codes.shape[1], X.shape[1]
    init = np.empty((levels, codebook_size, d), dtype=np.float32)
    made: list[np.ndarray] = []  # each level's float64 centroids, which the residuals subtract

    def residual(at: np.ndarray, level: int) -> np.ndarray:
        """The float64 residual of the known items ``at`` (positions in ``rows``) before ``level``."""
        out = X[rows[at]].astype(np.float64)
        for earlier, centroids in enumerate(made[:level]):
            out -= centroids[codes[at, earlier]]
        return out

    for level in range(levels):
        sums = np.zeros((codebook_size, d))
        # In row blocks, in row order (the same sums): the catalogue's float64 residuals at once are
        # twice its size, and the centroids gathered per row as much again.
        for start in range(0, len(rows), _CARRY_BLOCK):
            block = np.arange(start, min(start + _CARRY_BLOCK, len(rows)))
            np.add.at(sums, codes[block, level], residual(block, level))
        counts = np.bincount(codes[:, level], minlength=codebook_size)[:, None]
        centroids = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        empty = np.flatnonzero(counts[:, 0] == 0)
        if len(empty):
            centroids[empty] = residual(rng.choice(len(rows), size=len(empty), replace=len(empty) > len(rows)), level)
        init[level] = centroids
        made.append(centroids)
    return init


def anchored_fit_encode(model: Tokenizer, X: np.ndarray, previous: Tokenizer | None, *,
                        previous_codes: np.ndarray | None = None, steps: int | None = None,
                        progress: Progress | None = None, **side: Any) -> tuple[np.ndarray, dict]:
    """Fit ``model`` on ``X`` anchored to the fitted ``previous`` version; return codes and a summary.

    ``previous_codes`` [n, L]: the codes the previous version gave ``X``'s items (its stored
    semantic IDs; -1 rows for items it never saw); the relabelling matches on the items both
    versions know. With them, the k-means family needs no ``previous`` model (None, or one of
    another space: the carried-over partition is the warm start). Without them the embeddings are assumed not to have moved, and the previous
    version's catalogue codes of ``X`` (``encode_catalogue``) stand in.

    The warm start follows ``model.anchoring``:

    - ``CODEBOOKS`` (the k-means family): with ``previous_codes`` each level starts from the previous
      partition carried into this space (:func:`carried_over_codebooks`), else from the previous
      codebooks; ``steps`` Lloyd iterations follow (default: the model's ``n_iter``), and each one
      lets more border items change code.
    - ``WHOLE_MODEL`` (RQ-VAE, LETTER): training continues from the previous model, ``steps`` epochs
      (default: as many as from scratch).

    ``side`` inputs (LETTER's ``collaborative=``) reach ``fit_encode``. ``model`` must have the
    previous version's shape (``warm_start_mismatch``); its codebooks are relabelled in place. A model
    with ``population_codes`` (balanced RQ-Kmeans) returns its catalogue codes recomputed after the
    relabelling, so they are what its semantic IDs will be.
    """
    X = np.asarray(X, dtype=np.float32)
    # A partition carried into this space needs no earlier model: the k-means family may anchor to
    # stored codes alone, even when the earlier version lived in another space.
    needs_previous = previous_codes is None or model.anchoring is Anchoring.WHOLE_MODEL
    if needs_previous or previous is not None:
        mismatch = model.warm_start_mismatch(previous, X.shape[1])
        if mismatch is not None and (needs_previous or model.anchoring is Anchoring.WHOLE_MODEL):
            raise ValueError(mismatch)
        if mismatch is not None:
            previous = None
    if previous_codes is None:
        previous_codes = previous.encode_catalogue(X)
        carried = False
    else:
        previous_codes = np.asarray(previous_codes)
        if previous_codes.shape != (len(X), model.levels):
            raise ValueError(f"previous_codes has shape {previous_codes.shape}, expected {(len(X), model.levels)}")
        carried = True
    if model.anchoring is Anchoring.CODEBOOKS:
        init = carried_over_codebooks(X, previous_codes, model.codebook_size, seed=model.options.seed) if carried \
            else None
        head = {"warm_start": "previous partition carried over" if carried else "previous codebooks"}
    else:
        init, head = None, {"warm_start": "previous model"}
    warm_start = WarmStart(previous, init_codebooks=init, steps=steps)
    codes = model.fit_encode(X, progress=progress, warm_start=warm_start, **side)
    codes, relabelled = _relabel(model, codes, previous_codes)
    ties_moved = 0
    if model.population_codes:
        # A catalogue-wide (balanced) assignment breaks exact distance ties — duplicate centroids,
        # e.g. codes whose members all have zero residual — by centroid order, which the
        # permutation just changed; re-encoding makes the returned codes exactly those the
        # semantic_ids asset will store. Away from such ties it changes nothing.
        permuted = codes
        codes = model.encode_catalogue(X)
        ties_moved = int(np.any(codes != permuted, axis=1).sum())
    if model.anchoring is Anchoring.CODEBOOKS:
        head["iterations"] = int(model.fit_info["warm_iterations"])
    else:
        head["epochs"] = len(model.fit_info.get("epochs", []))
    head["items_moved_by_tie_reencoding"] = ties_moved
    return codes, _summary(model, codes, previous_codes, relabelled, head)


def _relabel(model: Tokenizer, codes: np.ndarray, previous_codes: np.ndarray) -> tuple[np.ndarray, list[int]]:
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


def _summary(model: Tokenizer, codes: np.ndarray, previous_codes: np.ndarray, relabelled: list[int],
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
