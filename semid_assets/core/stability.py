"""How much two tokenizer versions agree on the items both encode.

Version ``a`` is the earlier one, ``b`` this one. For each prefix length ``l = 1..L``
every version partitions the common items into groups sharing a length-``l`` prefix;
the measures below compare those partitions:

- ``ari``: adjusted Rand index of the two partitions (1 identical, ~0 for independent
  labelings, chance-corrected);
- ``nmi``: normalised mutual information, ``I(A;B) / mean(H(A), H(B))`` (sklearn's
  "arithmetic" normalisation). Not chance-corrected: with thousands of small groups it
  stays high even between unrelated partitions, so read it next to ``ari``;
- ``matched_kept``: share of items whose length-``l`` prefix in ``a``, translated by the
  optimal trie matching (``core/matching.py``), is their prefix in ``b``;
- ``prefix_jaccard``: mean over items of ``|S_a ∩ S_b| / |S_a ∪ S_b|`` where ``S_v`` is
  the set of *other* items sharing the item's length-``l`` prefix in version ``v`` — do
  an item's prefix neighbours stay its neighbours. Items alone under their prefix in
  both versions have no neighbours to keep and are left out (NaN when every item is);
  ``jaccard_items`` says how many counted. It follows from the contingency table, so it
  is exact over every common item rather than estimated on a sample;
- ``usage_jsd``: Jensen–Shannon divergence (bits, in [0, 1]) between ``b``'s prefix
  frequencies and ``a``'s after translating ``a``'s prefixes by the matching (unmatched
  prefixes keep their own bins, so they count as drift);
- ``raw_unchanged``: share of items whose length-``l`` prefix is literally the same
  numbers in both versions — meaningful only when ``b`` was anchored to ``a``, otherwise
  code numbers are arbitrary and this is ~0.

Plus one figure independent of SIDs: ``knn_overlap``, the mean overlap of an item's
``k`` nearest neighbours (among the common items, by the versions' own aligned
embeddings) — how much the embedding space the tokenizers saw moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faiss
import numpy as np
import pandas as pd

from semid_assets.core.matching import PrefixMatching, cell_counts, match_prefixes

__all__ = [
    "adjusted_rand_index",
    "normalized_mutual_info",
    "jensen_shannon",
    "align_common",
    "compare_codes",
    "compare_versions",
    "knn_overlap",
    "StabilityReport",
]


def _comb2(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float((x * (x - 1.0) / 2.0).sum())


def _labels(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a).reshape(-1)
    b = np.asarray(b).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"the two labelings have {a.size} and {b.size} items; pass the same items")
    if a.size == 0:
        raise ValueError("cannot compare empty labelings")
    # Dense relabelling keeps cell_counts' keys small whatever the label values.
    return np.unique(a, return_inverse=True)[1].reshape(-1), np.unique(b, return_inverse=True)[1].reshape(-1)


def _marginals(counts: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.bincount(rows, weights=counts), np.bincount(cols, weights=counts)


def adjusted_rand_index(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index (Hubert & Arabie) of two labelings of the same items."""
    a, b = _labels(a, b)
    rows, cols, counts, _ = cell_counts(a, b)
    return _ari(counts, rows, cols, a.size)


def _ari(counts, rows, cols, n) -> float:
    size_a, size_b = _marginals(counts, rows, cols)
    index = _comb2(counts)
    sum_a, sum_b = _comb2(size_a), _comb2(size_b)
    total = n * (n - 1) / 2.0
    expected = sum_a * sum_b / total if total else 0.0
    maximum = (sum_a + sum_b) / 2.0
    if maximum == expected:
        # Both partitions trivial (all singletons, or one group each): they agree perfectly.
        return 1.0
    # Float rounding can leave identical partitions a hair above 1.
    return float(min((index - expected) / (maximum - expected), 1.0))


def _entropy(sizes: np.ndarray, n: int) -> float:
    p = sizes[sizes > 0] / n
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information over the arithmetic mean of the two entropies (1 = identical partitions)."""
    a, b = _labels(a, b)
    rows, cols, counts, _ = cell_counts(a, b)
    return _nmi(counts, rows, cols, a.size)


def _nmi(counts, rows, cols, n) -> float:
    size_a, size_b = _marginals(counts, rows, cols)
    h_a, h_b = _entropy(size_a, n), _entropy(size_b, n)
    if h_a == 0.0 and h_b == 0.0:
        return 1.0
    c = counts.astype(np.float64)
    mi = float((c / n * (np.log(c * n) - np.log(size_a[rows]) - np.log(size_b[cols]))).sum())
    return float(min(max(mi, 0.0) / ((h_a + h_b) / 2.0), 1.0))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence in bits (0 equal, 1 disjoint) of two count or probability vectors."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("jensen_shannon needs two non-empty distributions over the same bins")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2.0

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / m[nz])).sum())

    return max(0.5 * kl(p) + 0.5 * kl(q), 0.0)


def align_common(ids_a, ids_b) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(rows_a, rows_b)`` of the items both versions have, in ``ids_b``'s order."""
    index_a = pd.Index(np.asarray(ids_a))
    if not index_a.is_unique:
        raise ValueError("the earlier version lists an item_id more than once; item ids must be unique")
    ids_b = np.asarray(ids_b)
    if not pd.Index(ids_b).is_unique:
        raise ValueError("this version lists an item_id more than once; item ids must be unique")
    rows_a = index_a.get_indexer(ids_b)
    rows_b = np.flatnonzero(rows_a >= 0)
    return rows_a[rows_b], rows_b


def knn_overlap(emb_a: np.ndarray, emb_b: np.ndarray, sample: int = 1000, k: int = 10, seed: int = 0) -> float:
    """Mean share of a sampled item's ``k`` nearest neighbours (L2) that both embeddings agree on.

    Rows of ``emb_a`` and ``emb_b`` are the same items (the dimensions may differ); the
    item itself is excluded from its neighbours; ``sample`` items are drawn with ``seed``.
    """
    emb_a = np.ascontiguousarray(emb_a, dtype=np.float32)
    emb_b = np.ascontiguousarray(emb_b, dtype=np.float32)
    n = emb_a.shape[0]
    if emb_b.shape[0] != n:
        raise ValueError(f"the embeddings give {n} and {emb_b.shape[0]} items; pass the same items")
    if n <= k:
        raise ValueError(f"knn_overlap needs more than k={k} items, got {n}")
    if emb_a.shape == emb_b.shape and np.array_equal(emb_a, emb_b):
        # The same vectors give the same (deterministic) search results: skip two exact
        # searches over every item, the bulk of the cost at 1M items (aligner="none").
        return 1.0
    queries = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    neighbours = []
    for emb in (emb_a, emb_b):
        index = faiss.IndexFlatL2(emb.shape[1])
        index.add(emb)
        _, found = index.search(emb[queries], k + 1)
        neighbours.append(found)
    overlap = 0.0
    for q, na, nb in zip(queries, *neighbours):
        # Drop the query itself (and, at exact ties, keep the first k others).
        sa = [x for x in na if x != q][:k]
        sb = [x for x in nb if x != q][:k]
        overlap += len(set(sa) & set(sb)) / k
    return overlap / len(queries)


@dataclass
class StabilityReport:
    """Per-prefix-length agreement of two versions (``table``) and the matching behind it."""

    table: pd.DataFrame
    n_common: int
    matching: PrefixMatching = field(repr=False)

    def figure(self, column: str, length: int) -> float:
        return float(self.table.loc[self.table["prefix_length"] == length, column].iloc[0])


def compare_codes(codes_a: np.ndarray, codes_b: np.ndarray) -> StabilityReport:
    """Every SID measure of the module docstring for the same items' codes in two versions."""
    matching = match_prefixes(codes_a, codes_b)
    codes_a, codes_b = np.asarray(codes_a), np.asarray(codes_b)
    n, levels = codes_a.shape
    rows = []
    for level in range(levels):
        ga, gb = matching.groups_a[level], matching.groups_b[level]
        cell_a, cell_b, counts, cell_of_item = cell_counts(ga, gb)
        size_a = np.bincount(ga).astype(np.float64)
        size_b = np.bincount(gb).astype(np.float64)
        both = counts[cell_of_item].astype(np.float64) - 1.0
        union = size_a[ga] + size_b[gb] - 2.0 - both
        counted = union > 0
        jaccard = both[counted] / union[counted]
        rows.append({
            "prefix_length": level + 1,
            "prefixes_earlier": int(size_a.size),
            "prefixes_this": int(size_b.size),
            "ari": _ari(counts, cell_a, cell_b, n),
            "nmi": _nmi(counts, cell_a, cell_b, n),
            "matched_kept": float(matching.kept[level].mean()),
            "prefix_jaccard": float(jaccard.mean()) if jaccard.size else float("nan"),
            "jaccard_items": int(counted.sum()),
            "usage_jsd": _usage_jsd(size_a, size_b, matching.mapping[level]),
            "raw_unchanged": float(np.all(codes_a[:, : level + 1] == codes_b[:, : level + 1], axis=1).mean()),
        })
    return StabilityReport(pd.DataFrame(rows), n, matching)


def _usage_jsd(size_a: np.ndarray, size_b: np.ndarray, mapping: np.ndarray) -> float:
    matched = mapping >= 0
    # b's groups first, then one bin per unmatched a group.
    p_a = np.zeros(size_b.size + int((~matched).sum()))
    np.add.at(p_a, mapping[matched], size_a[matched])
    p_a[size_b.size:] = size_a[~matched]
    p_b = np.zeros_like(p_a)
    p_b[: size_b.size] = size_b
    return jensen_shannon(p_a, p_b)


def compare_versions(ids_a, codes_a: np.ndarray, ids_b, codes_b: np.ndarray, *,
                     emb_a: np.ndarray | None = None, emb_b: np.ndarray | None = None,
                     knn_sample: int = 1000, knn_k: int = 10, seed: int = 0) -> tuple[StabilityReport, dict]:
    """Compare version ``a`` (earlier) with ``b`` on the items both encode.

    ``ids_*`` are the versions' item ids (rows of ``codes_*`` and ``emb_*``). Returns the
    report and a dict of scalar figures: item counts, and ``knn_overlap`` when both
    embeddings are given.
    """
    rows_a, rows_b = align_common(ids_a, ids_b)
    if rows_a.size == 0:
        raise ValueError("the two versions share no item_id: nothing to compare (are they the same dataset?)")
    codes_a, codes_b = np.asarray(codes_a), np.asarray(codes_b)
    if codes_a.shape[1] != codes_b.shape[1]:
        raise ValueError(f"the versions have {codes_a.shape[1]} and {codes_b.shape[1]} levels; "
                         "compare versions of the same shape")
    report = compare_codes(codes_a[rows_a], codes_b[rows_b])
    figures = {"items_earlier": int(len(codes_a)), "items_this": int(len(codes_b)), "items_common": int(rows_a.size)}
    if emb_a is not None and emb_b is not None and rows_a.size > knn_k:
        figures["knn_overlap"] = knn_overlap(np.asarray(emb_a)[rows_a], np.asarray(emb_b)[rows_b],
                                             sample=knn_sample, k=knn_k, seed=seed)
        figures["knn_sample"] = int(min(knn_sample, rows_a.size))
        figures["knn_k"] = int(knn_k)
    return report, figures
