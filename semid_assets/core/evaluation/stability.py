"""How much two tokenizer versions agree on the items both encode.

Version ``a`` is the earlier one, ``b`` this one. For each prefix length ``l = 1..L``
every version partitions the common items into groups sharing a length-``l`` prefix;
the measures below compare those partitions:

- ``ari``: adjusted Rand index of the two partitions (1 identical, ~0 for independent
  labelings, chance-corrected);
- ``nmi``: normalised mutual information, ``I(A;B) / mean(H(A), H(B))`` (sklearn's
  "arithmetic" normalisation). Kept for comparison with published figures, but not
  chance-corrected: with thousands of small groups it stays high even between unrelated
  partitions (0.95 at 700k groups of 1M items), so read ``ami`` instead;
- ``ami``: adjusted mutual information (Vinh, Epps & Bailey 2010, arithmetic
  normalisation as sklearn's ``adjusted_mutual_info_score``),
  ``(I − E[I]) / (mean(H(A), H(B)) − E[I])`` with ``E[I]`` the mutual information expected
  when the items are dealt to the groups at random (sizes kept): 1 identical, ~0 for
  independent labelings at any number of groups — the chance-corrected information figure;
- ``matched_kept``: share of items whose length-``l`` prefix in ``a``, translated by the
  optimal trie matching (``core/tokenizers/matching.py``), is their prefix in ``b``;
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

from collections.abc import Callable
from dataclasses import dataclass, field

import faiss
import numpy as np
import pandas as pd
from scipy.special import gammaln

from semid_assets.core.threads import compute_threads
from semid_assets.core.tokenizers.matching import PrefixMatching, cell_counts, match_prefixes

__all__ = [
    "adjusted_rand_index",
    "normalized_mutual_info",
    "adjusted_mutual_info",
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


def _mutual_info(counts, rows, cols, n, size_a, size_b) -> float:
    c = counts.astype(np.float64)
    return float((c / n * (np.log(c * n) - np.log(size_a[rows]) - np.log(size_b[cols]))).sum())


def _nmi(counts, rows, cols, n) -> float:
    size_a, size_b = _marginals(counts, rows, cols)
    h_a, h_b = _entropy(size_a, n), _entropy(size_b, n)
    if h_a == 0.0 and h_b == 0.0:
        return 1.0
    mi = _mutual_info(counts, rows, cols, n, size_a, size_b)
    return float(min(max(mi, 0.0) / ((h_a + h_b) / 2.0), 1.0))


def adjusted_mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted mutual information (arithmetic normaliser) of two labelings of the same items.

    1 for identical partitions, ~0 (either sign) for independent ones whatever their
    number of groups; equal to scikit-learn's ``adjusted_mutual_info_score`` with
    ``average_method="arithmetic"``. See ``_expected_mutual_info`` for how the
    chance term is computed at a million items.
    """
    a, b = _labels(a, b)
    rows, cols, counts, _ = cell_counts(a, b)
    return _ami(counts, rows, cols, a.size)


def _ami(counts, rows, cols, n) -> float:
    size_a, size_b = _marginals(counts, rows, cols)
    if (size_a.size == 1 and size_b.size == 1) or (size_a.size == n and size_b.size == n):
        # One group each, or singletons each: the same partition, and the only cases where
        # the denominator below is exactly 0 (every shuffle gives the maximal information).
        return 1.0
    h_a, h_b = _entropy(size_a, n), _entropy(size_b, n)
    mi = _mutual_info(counts, rows, cols, n, size_a, size_b)
    expected = _expected_mutual_info(size_a, size_b, n)
    denominator = (h_a + h_b) / 2.0 - expected
    # Rounding can leave a near-0 denominator on the wrong side; keep its sign (as sklearn does).
    eps = np.finfo(np.float64).eps
    denominator = min(denominator, -eps) if denominator < 0 else max(denominator, eps)
    return float(min((mi - expected) / denominator, 1.0))


# Each group-size pair's sum skips at most 2·exp(-_TAIL_LOG) of the pmf's mass.
_TAIL_LOG = 50.0
# Terms evaluated at once: bounds the memory of the expanded (pair, n_ij) arrays (~200 MB).
_CHUNK_TERMS = 1 << 22


def _expected_mutual_info(size_a: np.ndarray, size_b: np.ndarray, n: int) -> float:
    """``E[I(A;B)]`` (nats) over random assignments of ``n`` items to groups of the given sizes.

    Under the permutation model the cell count ``n_ij`` of groups of sizes ``s = a_i`` and
    ``t = b_j`` is hypergeometric, ``P(k) = C(s, k) C(n−s, t−k) / C(n, t)``, and

        E[I] = Σ_i Σ_j Σ_k (k/n) ln(n k / (s t)) P(k).

    The inner sum depends only on ``(s, t)``, so it runs once per pair of *distinct* sizes,
    weighted by how many groups have each size (a few hundred distinct sizes against
    700k groups at 1M items). ``ln k!`` comes from one ``gammaln`` table over ``0..n``.

    Truncation: for each ``(s, t)`` only ``k`` within ``d = L/3 + sqrt(L²/9 + 2 L v)`` of
    the mean ``s t / n`` are summed (clipped to the support ``max(1, s+t−n)..min(s, t)``),
    with ``L = _TAIL_LOG = 50`` and ``v = m p (1 − p)``, ``m = min(s, t)``,
    ``p = max(s, t) / n``: ``max(10σ, 33) ≤ d ≤ 10σ + 34`` with ``σ = √v``. The hypergeometric is
    dominated in convex order by the binomial ``Bin(m, p)`` (Hoeffding 1963, thm 4), so
    Bernstein's inequality bounds the mass left out by ``2 e^{−L}`` (< 4e-22) per pair.
    A left-out term is at most ``(m/n) ln n`` in size (``1/n ≤ n k/(s t) ≤ n``) and the
    weights satisfy ``Σ count_a(s) count_b(t) m / n ≤ min(#groups_a, #groups_b)``, so
    the error in ``E[I]`` is at most ``2 e^{−L} · min(#groups) · ln n`` — below 1e-14
    nats at 1M items, under the float64 rounding of the log-space pmf itself
    (≈ ``ln n! · 2⁻⁵³``, relative; as in scikit-learn).

    Cost: ``bench/bench_stability.py`` (950k items; 256 / 30k / 700k groups) spends 0.3 s in
    the AMI of its three prefix lengths. Fewer than ``√(2n)`` sizes can be distinct, so at
    most ``2n`` size pairs: the worst partition of 1M items (one group of each size
    1..1413, on both sides) takes ~6 s (both measured on the shared 2-core machine).
    """
    sizes_a, count_a = np.unique(np.rint(size_a).astype(np.int64), return_counts=True)
    sizes_b, count_b = np.unique(np.rint(size_b).astype(np.int64), return_counts=True)
    s = np.repeat(sizes_a, sizes_b.size)
    t = np.tile(sizes_b, sizes_a.size)
    weight = np.repeat(count_a, sizes_b.size).astype(np.float64) * np.tile(count_b, sizes_a.size)
    small, large = np.minimum(s, t), np.maximum(s, t)
    p = large / n
    variance = small * p * (1.0 - p)
    half_width = _TAIL_LOG / 3.0 + np.sqrt(_TAIL_LOG ** 2 / 9.0 + 2.0 * _TAIL_LOG * variance)
    mean = s.astype(np.float64) * t / n
    low = np.maximum(np.maximum(s + t - n, 1), np.ceil(mean - half_width).astype(np.int64))
    high = np.minimum(small, np.floor(mean + half_width).astype(np.int64))
    length = np.maximum(high - low + 1, 0)

    log_fact = gammaln(np.arange(n + 1, dtype=np.float64) + 1.0)
    log_const = log_fact[s] + log_fact[t] + log_fact[n - s] + log_fact[n - t] - log_fact[n]
    log_st = np.log(s.astype(np.float64)) + np.log(t.astype(np.float64))
    ends = np.cumsum(length)
    total, start = 0.0, 0
    while start < s.size:
        before = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, before + _CHUNK_TERMS, side="right")), start + 1)
        reps = length[start:stop]
        pair = np.repeat(np.arange(start, stop), reps)
        first = np.cumsum(reps) - reps
        k = low[pair] + (np.arange(pair.size) - np.repeat(first, reps))
        sp, tp = s[pair], t[pair]
        log_p = log_const[pair] - log_fact[k] - log_fact[sp - k] - log_fact[tp - k] - log_fact[n - sp - tp + k]
        kf = k.astype(np.float64)
        term = kf / n * (np.log(n * kf) - log_st[pair]) * np.exp(log_p)
        per_pair = np.bincount(pair - start, weights=term, minlength=stop - start)
        total += float(per_pair @ weight[start:stop])
        start = stop
    return total


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


def knn_overlap(emb_a: np.ndarray, emb_b: np.ndarray, sample: int = 1000, k: int = 10, seed: int = 0,
                threads: int | None = None) -> float:
    """Mean share of a sampled item's ``k`` nearest neighbours (L2) that both embeddings agree on.

    Rows of ``emb_a`` and ``emb_b`` are the same items (the dimensions may differ); the
    item itself is excluded from its neighbours; ``sample`` items are drawn with ``seed``.
    The searches run with ``threads`` faiss threads (None: 1).
    """
    emb_a, emb_b = knn_inputs(emb_a, emb_b, k)
    if emb_a.shape == emb_b.shape and np.array_equal(emb_a, emb_b):
        # The same vectors give the same (deterministic) search results: skip two exact
        # searches over every item, the bulk of the cost at 1M items (aligner="none").
        return 1.0
    queries = knn_queries(emb_a.shape[0], sample, seed)
    with compute_threads(threads):
        found_a, found_b = (nearest_neighbours(queries, emb, k) for emb in (emb_a, emb_b))
    return neighbour_overlap(queries, found_a, found_b, k)


def knn_inputs(emb_a: np.ndarray, emb_b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The two embeddings as contiguous float32, checked to hold the same items, more than ``k``."""
    emb_a = np.ascontiguousarray(emb_a, dtype=np.float32)
    emb_b = np.ascontiguousarray(emb_b, dtype=np.float32)
    n = emb_a.shape[0]
    if emb_b.shape[0] != n:
        raise ValueError(f"the embeddings give {n} and {emb_b.shape[0]} items; pass the same items")
    if n <= k:
        raise ValueError(f"knn_overlap needs more than k={k} items, got {n}")
    return emb_a, emb_b


def knn_queries(n: int, sample: int, seed: int) -> np.ndarray:
    """The sorted rows whose neighbourhoods :func:`knn_overlap` compares: ``sample`` of ``n``, drawn with ``seed``."""
    return np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))


def nearest_neighbours(queries: np.ndarray, emb: np.ndarray, k: int) -> np.ndarray:
    """int64 [len(queries), k + 1]: the rows of ``emb`` nearest (exact L2) to the rows ``queries``,
    nearest first (the query itself usually among them). Each query's row depends only on that
    query and ``emb``, so the queries can be searched in chunks. Runs with the caller's thread
    settings (:func:`knn_overlap` and ``core/engine.run_chunk`` set them)."""
    # faiss.knn is IndexFlatL2's search without the index's copy of every vector.
    _, found = faiss.knn(np.ascontiguousarray(emb[queries]), emb, k + 1)
    return found


def neighbour_overlap(queries: np.ndarray, found_a: np.ndarray, found_b: np.ndarray, k: int) -> float:
    """Mean share of the ``k`` neighbours other than itself that a query has in both ``found_*``."""
    overlap = 0.0
    for q, na, nb in zip(queries, found_a, found_b):
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
            "ami": _ami(counts, cell_a, cell_b, n),
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
                     knn_sample: int = 1000, knn_k: int = 10, seed: int = 0,
                     knn: Callable[..., float] | None = None) -> tuple[StabilityReport, dict]:
    """Compare version ``a`` (earlier) with ``b`` on the items both encode.

    ``ids_*`` are the versions' item ids (rows of ``codes_*`` and ``emb_*``). Returns the
    report and a dict of scalar figures: item counts, and ``knn_overlap`` when both
    embeddings are given, computed by ``knn`` (default :func:`knn_overlap`; e.g.
    ``functools.partial(core.fanout.knn_overlap, engine, chunk_rows=…)`` to fan it out).
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
    if emb_a is not None and emb_b is not None:
        figures.update(knn_figures(np.asarray(emb_a)[rows_a], np.asarray(emb_b)[rows_b], knn_sample=knn_sample,
                                   knn_k=knn_k, seed=seed, knn=knn))
    return report, figures


def common_item_ids(ids_a, ids_b) -> np.ndarray:
    """The items both versions hold, in the order :func:`compare_versions` compares them (``ids_b``'s)."""
    return np.asarray(ids_b)[align_common(ids_a, ids_b)[1]]


def knn_figures(emb_a: np.ndarray, emb_b: np.ndarray, *, knn_sample: int = 1000, knn_k: int = 10, seed: int = 0,
                knn: Callable[..., float] | None = None) -> dict:
    """``knn_overlap`` and what it was drawn from, for the embeddings of the common items (rows of
    :func:`common_item_ids`, in that order): what :func:`compare_versions` adds when given both
    embeddings. For a caller that gathers only those rows instead of holding each whole catalogue's.
    Empty when there are too few items for ``knn_k`` neighbours."""
    if len(emb_a) <= knn_k:
        return {}
    return {"knn_overlap": (knn or knn_overlap)(emb_a, emb_b, sample=knn_sample, k=knn_k, seed=seed),
            "knn_sample": int(min(knn_sample, len(emb_a))), "knn_k": int(knn_k)}
