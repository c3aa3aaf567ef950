"""How well an item representation aligns: held-out pair retrieval and kept content similarity.

* :func:`split_pairs` — a deterministic split *by pair*: a pair's side depends only on its
  two item ids and the seed (a stable hash), so the same pair is held out in every month;
  :func:`held_out_pairs` also gives the held-out pairs an aligner is judged on: all of them, or a
  stable sample when they are many.
* :func:`pair_recall` — for each held-out pair (a, b), is b among the K nearest items of a
  by inner product (exact), a itself excluded? And symmetrically a for b.
* :func:`content_similarity` — mean cosine of pairs of items with the same fine topic vs
  random pairs (evaluation labels only, e.g. the synthetic ``truth_topic``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from semid_assets.core.alignment.partner_rank import items_ahead


def unique_pairs(pairs: pd.DataFrame, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Catalogue positions ``(a, b)`` of each distinct unordered pair, and its item ids as strings for hashing.

    Pairs naming an item outside ``item_ids`` are refused.
    """
    index = pd.Index(item_ids)
    a = index.get_indexer(pairs["item_a"])
    b = index.get_indexer(pairs["item_b"])
    bad = (a < 0) | (b < 0)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} item pair(s) name items missing from the catalogue "
                         f"(e.g. {pairs.loc[bad, ['item_a', 'item_b']].head(3).values.tolist()}); "
                         f"item_pairs and multimodal_features must be of the same month.")
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keys = np.unique(lo.astype(np.int64) * len(item_ids) + hi)
    return keys // len(item_ids), keys % len(item_ids), keys


def _unit_hashes(frame: pd.DataFrame) -> np.ndarray:
    """Per row a number in [0, 1) that depends only on the row's values."""
    h = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return (h % np.uint64(1_000_003)).astype(np.float64) / 1_000_003


def _pair_hashes(a: np.ndarray, b: np.ndarray, item_ids: np.ndarray, seed: int) -> np.ndarray:
    ids = np.asarray(item_ids).astype(str)
    return _unit_hashes(pd.DataFrame({"a": ids[a], "b": ids[b], "seed": str(seed)}))


def _item_hashes(item_ids: np.ndarray, seed: int) -> np.ndarray:
    return _unit_hashes(pd.DataFrame({"id": np.asarray(item_ids).astype(str), "seed": f"items-{seed}"}))


def _lowest(chosen: np.ndarray, hashes: np.ndarray, sample: int | None, *ties: np.ndarray) -> np.ndarray:
    """``chosen`` (ascending positions), or with ``sample`` the ``sample`` of them with the lowest hash,
    ties broken by ``ties`` (ids, not catalogue positions), back in ascending order."""
    if sample is not None and sample < 1:
        raise ValueError(f"the held-out sample must be >= 1 or None, got {sample!r}.")
    if sample is None or len(chosen) <= sample:
        return chosen
    order = np.lexsort((*(t[chosen] for t in reversed(ties)), hashes[chosen]))
    return np.sort(chosen[order[:sample]])


def held_out_pairs(a: np.ndarray, b: np.ndarray, item_ids: np.ndarray, holdout: float, seed: int = 0,
                   sample: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(held, judged)``: the bool mask of :func:`split_pairs` and the indices (ascending) of the
    held-out pairs an aligner is judged on: all of them, or with ``sample`` the ``sample`` with the
    lowest hash. A pair's hash depends only on its two ids, so a pair judged in one month is judged in
    the next while it is still among the lowest ``sample``; the choice ignores the catalogue's order."""
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout!r}.")
    hashes = _pair_hashes(a, b, item_ids, seed)
    held = hashes < holdout
    if sample is None:
        return held, np.flatnonzero(held)
    ids = np.asarray(item_ids).astype(str)
    return held, _lowest(np.flatnonzero(held), hashes, sample, ids[a], ids[b])


def split_pairs(a: np.ndarray, b: np.ndarray, item_ids: np.ndarray, holdout: float,
                seed: int = 0) -> np.ndarray:
    """Bool mask over pairs: True = held out. Depends only on the two ids and ``seed``."""
    return held_out_pairs(a, b, item_ids, holdout, seed)[0]


def judged_pairs(a: np.ndarray, b: np.ndarray, item_ids: np.ndarray, holdout: float, seed: int = 0,
                 sample: int | None = None) -> np.ndarray:
    """The ``judged`` indices of :func:`held_out_pairs`."""
    return held_out_pairs(a, b, item_ids, holdout, seed, sample)[1]


def hash_fraction(item_ids: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Bool mask: a stable ``fraction`` of the items, chosen by hashing each id with ``seed``."""
    return _item_hashes(item_ids, seed) < fraction


def judged_items(item_ids: np.ndarray, fraction: float, seed: int = 0, sample: int | None = None) -> np.ndarray:
    """Positions (ascending) of :func:`hash_fraction`'s items, or with ``sample`` the ``sample`` of them
    with the lowest hash (ties broken by id): the same items every month while they stay among them."""
    hashes = _item_hashes(item_ids, seed)
    return _lowest(np.flatnonzero(hashes < fraction), hashes, sample, np.asarray(item_ids).astype(str))


def pair_hits(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, ks: tuple[int, ...] = (10, 50),
              threads: int | None = None) -> dict[int, np.ndarray]:
    """Per pair and K, the share of its two directions (a finds b, b finds a) whose partner is among
    the K nearest items by inner product, the query item itself excluded: 0, 0.5 or 1.

    A direction hits when fewer than K other items score at least the partner's score (an item tied
    with the partner counts as ahead of it). The counts are exact (``partner_rank.items_ahead``:
    low-precision products as a filter, float64 for the close calls) and the same at any ``threads``
    (None: 1)."""
    if len(a) == 0:
        return {k: np.zeros(0) for k in ks}
    ahead = items_ahead(vectors, np.concatenate([a, b]), np.concatenate([b, a]), max(ks), threads=threads)
    out = {}
    for k in ks:
        hits = (ahead < k).astype(np.float64)
        out[k] = (hits[: len(a)] + hits[len(a):]) / 2.0
    return out


def pair_recall(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, ks: tuple[int, ...] = (10, 50),
                threads: int | None = None) -> dict[int, float]:
    """Recall@K of retrieving each pair's partner among all items, both directions averaged."""
    if len(a) == 0:
        return {k: float("nan") for k in ks}
    return {k: float(hits.mean()) for k, hits in pair_hits(vectors, a, b, ks, threads).items()}


def content_similarity(vectors: np.ndarray, labels: np.ndarray, n_pairs: int = 20_000,
                       seed: int = 0) -> dict[str, float]:
    """Mean cosine of same-label pairs vs random pairs (both sampled, distinct items)."""
    labels = np.asarray(labels).astype(str)
    rng = np.random.default_rng(seed)
    n = len(vectors)
    i, j = rng.integers(0, n, n_pairs), rng.integers(0, n, n_pairs)
    keep = i != j
    random_cos = float(np.einsum("ij,ij->i", _unit_rows(vectors, i[keep]), _unit_rows(vectors, j[keep])).mean())
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sizes = np.diff(np.r_[starts, n])
    group = np.repeat(np.arange(len(starts)), sizes)
    # Same-label pairs: a random item, then a random other member of its group.
    pick = rng.integers(0, n, n_pairs)
    g = group[pick]
    other = starts[g] + rng.integers(0, np.maximum(sizes[g], 1))
    keep = (sizes[g] > 1) & (order[other] != order[pick])
    same_cos = float(np.einsum("ij,ij->i", _unit_rows(vectors, order[pick[keep]]),
                               _unit_rows(vectors, order[other[keep]])).mean()) if keep.any() else float("nan")
    return {"same_topic_cos": same_cos, "random_cos": random_cos, "gap": same_cos - random_cos}


def _unit_rows(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``rows`` of ``vectors`` in float64, scaled to unit length (zero rows stay zero); only the sampled rows
    are converted, never the whole matrix (a float64 copy of a million items is gigabytes)."""
    x = np.asarray(vectors[rows], np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
