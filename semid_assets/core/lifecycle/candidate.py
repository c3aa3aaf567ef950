"""The month's candidate tokenizer: fitted on this month's embeddings, anchored to the published IDs.

Every month a fresh version of each method is fitted. It is what a new generation would be
cut from, so it is anchored to what downstream sees, the *published* IDs: the k-means family
starts from the published partition carried into this month's space, RQ-VAE and LETTER continue
the newest earlier model, and then every level's code numbers are matched to the published
ones (``core/tokenizers/anchoring.py``). Hysteresis (``core/lifecycle/hysteresis.py``) then keeps
an item's published code unless another is better by a margin.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from semid_assets.core.lifecycle.codes_cache import CodesCache, codes_digest
from semid_assets.core.lifecycle.generations import PublishedIds
from semid_assets.core.lifecycle.hysteresis import candidate_codes
from semid_assets.core.threads import compute_threads
from semid_assets.core.tokenizers.anchoring import anchored_fit_encode
from semid_assets.core.tokenizers.base import Anchoring, Tokenizer
from semid_assets.core.tokenizers.sizing import auto_codebook_size, size_warning

__all__ = ["published_codes_of", "fit_candidate", "choose_codebook_size"]


def published_codes_of(published: PublishedIds, item_ids: np.ndarray) -> np.ndarray:
    """int64 [len(item_ids), L]: each item's published codes, ``-1`` rows for items never published."""
    rows = pd.Index(pd.Series(published.item_ids).astype(str)).get_indexer(pd.Series(np.asarray(item_ids)).astype(str))
    codes = np.full((len(rows), published.levels), -1, dtype=np.int64)
    codes[rows >= 0] = published.codes[rows[rows >= 0]]
    return codes


def choose_codebook_size(requested: int | None, n_items: int, levels: int,
                         previous_size: int | None) -> tuple[int, str | None]:
    """``(codes per level, a warning or None)``: what the user set wins (warned when it fits the catalogue
    badly); else the size of the method's earlier version, so versions stay comparable and anchorable;
    else the size rule (``core/tokenizers/sizing.py``) on this month's catalogue."""
    if requested is not None:
        return requested, size_warning(n_items, requested, levels)
    if previous_size is not None:
        return previous_size, None
    return auto_codebook_size(n_items, levels), None


def fit_candidate(model: Tokenizer, X: np.ndarray, item_ids: np.ndarray, *, previous: Tokenizer | None,
                  published: PublishedIds | None, steps: int | None, hysteresis: float,
                  progress: Callable[[str], None] | None = None, encode_catalogue=None,
                  cache: CodesCache | None = None, **side) -> tuple[np.ndarray, dict]:
    """Fit ``model`` on ``X`` anchored to ``published`` (and ``previous``, the newest earlier model, which
    RQ-VAE/LETTER continue); return the candidate's catalogue codes and what the anchoring did.

    Not anchored (a plain fit) when there is no earlier version or it has another shape; the
    summary says why. ``steps``: Lloyd iterations (k-means family) or epochs (whole model) after
    the warm start; None = the method's default. ``encode_catalogue(tokenizer, X)``: where the
    catalogue's codes are computed (default: ``tokenizer.encode_catalogue``). ``cache``: where the codes
    are kept, keyed by what they depend on, for the month's later steps (``codes_cache.py``).

    Everything runs with the model's ``n_threads`` (faiss, torch and BLAS), the carried-over
    partition and the hysteresis included: never with the process's own thread counts."""
    with compute_threads(model.options.n_threads):
        codes, info, held_on = _fit_candidate(model, X, item_ids, previous, published, steps, hysteresis,
                                              progress, encode_catalogue, side)
    if cache is not None:
        # Keyed as month_view asks: candidate_codes(model, X, held_on, hysteresis) are these codes.
        cache.keep(codes_digest(model, item_ids, X, held_on, hysteresis), codes)
    return codes, info


def _fit_candidate(model, X, item_ids, previous, published, steps, hysteresis, progress, encode_catalogue,
                   side) -> tuple[np.ndarray, dict, np.ndarray | None]:
    """The codes, what the anchoring did, and the published codes the codes were held on (None: not held)."""
    reason = _why_not_anchored(model, X, previous, published)
    if reason is not None:
        model.fit_encode(X, progress=progress, **side)
        model.fit_info["hysteresis"] = float(hysteresis)
        codes = model.encode_catalogue(X) if encode_catalogue is None else encode_catalogue(model, X)
        return codes, {"anchored": False, "anchored_to": f"none ({reason})"}, None
    previous_codes = published_codes_of(published, item_ids)
    _, info = anchored_fit_encode(model, X, previous, previous_codes=previous_codes, progress=progress,
                                  steps=steps, **side)
    codes = candidate_codes(model, X, previous_codes, hysteresis, encode_catalogue)
    known = np.all(previous_codes >= 0, axis=1)
    kept = float(np.all(codes[known] == previous_codes[known], axis=1).mean()) if known.any() else float("nan")
    model.fit_info["hysteresis"] = float(hysteresis)
    model.fit_info["anchoring"] = {**info, "full_sid_unchanged_after_hysteresis": kept}
    return codes, {"anchored": True, "warm_start": info["warm_start"], "items_known_before": info["items_known_before"],
                   "literal_kept": kept, "literal_kept_before_hysteresis": info["full_sid_unchanged"],
                   "prefix_kept": info["prefix_unchanged"]}, previous_codes


def _why_not_anchored(model: Tokenizer, X: np.ndarray, previous: Tokenizer | None,
                      published: PublishedIds | None) -> str | None:
    if published is None:
        return "no IDs of this method are published before this month"
    if published.levels != model.levels:
        return f"the published IDs have {published.levels} levels, this version {model.levels}"
    if model.anchoring is Anchoring.WHOLE_MODEL:
        if previous is None:
            return "no earlier model of this method is stored to continue"
        return model.warm_start_mismatch(previous, X.shape[1])
    if previous is not None and previous.codebook_size != model.codebook_size:
        return f"the earlier version has {previous.codebook_size} codes per level, this one {model.codebook_size}"
    return None
