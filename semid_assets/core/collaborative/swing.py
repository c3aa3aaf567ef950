"""Swing item-to-item similarity (Yang et al., 2020), sparse and vectorised.

Definition used here, over a bipartite graph of *positive* (user, item) edges::

    s(i, j) = sum_{u in U_i ∩ U_j} sum_{v in U_i ∩ U_j, v != u}  w_u * w_v / (alpha + |I_u ∩ I_v|)

    w_u = |I_u| ** (-user_weight_power)

The double sum runs over **ordered** pairs ``(u, v)``: every unordered pair of users
``{u, v}`` contributes **twice**. Halve the scores if you want the "each pair once"
convention; rankings are unaffected.

The per-item user cap is applied first: an item with more than ``max_users_per_item``
distinct positive users keeps only its most recent ones (latest ``recency`` of their
interactions with that item; ties keep the lower user index). Everything afterwards —
``U_i``, ``I_u``, ``|I_u ∩ I_v|`` and the activity weights — is computed on that capped
graph, so the result is exactly Swing on the capped graph. Capping bounds the work at
``O(cap**2)`` user pairs per item; the recency rule keeps the signal current.

Algorithm. Writing ``C_uv = I_u ∩ I_v`` and ``x_uv`` for its indicator over items,
``S = sum_{u<v} 2 w_u w_v / (alpha + |C_uv|) * x_uv x_uv^T`` minus its diagonal.
Pairs with a single common item only touch the diagonal and are skipped, so ``S`` is
``X^T diag(W) X`` with ``X`` the (user pair × item) indicator of pairs sharing ≥ 2 items.
The user pairs are enumerated per item from the (item, user)-sorted edge list and counted
with one sort; work is partitioned into contiguous ranges of the lower user so that the
transient pair list never exceeds a fixed budget, whatever the input size.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["swing_similarity", "top_k_neighbours"]

# Pair entries (one per (user pair, common item)) materialised at once. About 40 bytes of
# transient memory each, so ~1.3 GB at this budget; beyond it the work is chunked.
_PAIR_ENTRY_BUDGET = 1 << 25


def _as_index_array(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}; pass a flat array.")
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(
            f"{name} must hold integer indices, got dtype {arr.dtype}; "
            f"map ids to 0-based positions first (e.g. pd.factorize)."
        )
    return arr.astype(np.int64, copy=False)


def _check_range(arr: np.ndarray, upper: int, name: str, size_name: str) -> None:
    if arr.size == 0:
        return
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= upper:
        bad = arr[(arr < 0) | (arr >= upper)]
        raise ValueError(
            f"{name} has {bad.size} value(s) outside [0, {size_name}={upper}) "
            f"(e.g. {bad[:5].tolist()}); indices must be 0-based positions below {size_name}."
        )


def _recency_ranks(recency: np.ndarray, n: int) -> np.ndarray:
    """Recency as something ``np.lexsort`` accepts, refusing values with no order."""
    rec = np.asarray(recency)
    if rec.ndim != 1 or rec.shape[0] != n:
        raise ValueError(
            f"recency must be a 1-D array parallel to user_index (length {n}), got shape "
            f"{rec.shape}; pass one timestamp per interaction or recency=None."
        )
    if np.issubdtype(rec.dtype, np.datetime64):
        if np.isnat(rec).any():
            raise ValueError("recency has missing (NaT) timestamps; fill or drop those interactions.")
        return rec.view(np.int64)
    if np.issubdtype(rec.dtype, np.floating):
        if not np.all(np.isfinite(rec)):
            raise ValueError("recency has NaN/inf values; fill or drop those interactions.")
        return rec
    if np.issubdtype(rec.dtype, np.integer) or rec.dtype == np.bool_:
        return rec.astype(np.int64, copy=False)
    # Anything else sortable (strings, objects): dense ranks keep its order.
    try:
        return np.unique(rec, return_inverse=True)[1].reshape(-1).astype(np.int64)
    except TypeError as exc:
        raise ValueError(
            f"recency of dtype {rec.dtype} cannot be sorted ({exc}); pass timestamps as int64 or datetime64."
        ) from exc


def _capped_edges(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                  cap: int, recency: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (item, user) edges after the per-item cap, sorted by item then user."""
    if users.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    key = items * n_users + users
    if recency is None:
        # Logs are appended in time order, so without timestamps a later row is more recent.
        recency = np.arange(users.size, dtype=np.int64)
    # Sort by (edge, recency); the last row of each edge carries its latest interaction.
    order = np.lexsort((recency, key))
    key_sorted = key[order]
    last = np.empty(key_sorted.size, dtype=bool)
    last[-1] = True
    np.not_equal(key_sorted[1:], key_sorted[:-1], out=last[:-1])
    edge_key = key_sorted[last]
    edge_items, edge_users = np.divmod(edge_key, n_users)
    counts = np.bincount(edge_items, minlength=n_items)
    if counts.max() <= cap:
        return edge_items, edge_users
    edge_rec = recency[order[last]]
    # Within each item: ascending recency, ties with the higher user first, so the last
    # ``cap`` rows are the most recent ones (ties resolved towards the lower user index).
    by_recency = np.lexsort((-edge_users, edge_rec, edge_items))
    group_end = np.cumsum(counts)
    pos = np.arange(by_recency.size)
    keep = by_recency[group_end[edge_items[by_recency]] - pos <= cap]
    keep.sort()  # back to (item, user) order, as edge_key was sorted
    return edge_items[keep], edge_users[keep]


def swing_similarity(user_index: np.ndarray, item_index: np.ndarray, n_users: int, n_items: int, *,
                     alpha: float = 1.0, user_weight_power: float = 0.5, max_users_per_item: int = 200,
                     recency: np.ndarray | None = None) -> sp.csr_matrix:
    """Swing similarity between items from positive (user, item) interactions.

    Args:
        user_index, item_index: parallel 0-based integer arrays of *positive* interactions.
            Repeated (user, item) rows count once.
        n_users, n_items: sizes of the index spaces.
        alpha: smoothing in ``1 / (alpha + |I_u ∩ I_v|)``; must be > 0.
        user_weight_power: ``w_u = |I_u| ** -power``; 0 gives every user weight 1.
        max_users_per_item: per-item cap on distinct users; the most recent are kept.
        recency: optional sortable array parallel to the inputs (e.g. ``ts`` as int64 or
            datetime64) used by the cap. Without it, row order is taken as time order
            (later rows are more recent).

    Returns:
        Symmetric ``[n_items, n_items]`` float64 CSR with zero diagonal, no explicit zeros
        and sorted indices. Each unordered user pair counts twice (ordered-pair sum, see
        module docstring). Entries are bitwise symmetric.
    """
    users = _as_index_array(user_index, "user_index")
    items = _as_index_array(item_index, "item_index")
    if users.size != items.size:
        raise ValueError(
            f"user_index and item_index must have the same length, got {users.size} and {items.size}; "
            f"pass parallel arrays, one entry per interaction."
        )
    for name, value in (("n_users", n_users), ("n_items", n_items)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    n_users, n_items = int(n_users), int(n_items)
    _check_range(users, n_users, "user_index", "n_users")
    _check_range(items, n_items, "item_index", "n_items")
    if not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}; the default is 1.0.")
    if not np.isfinite(user_weight_power) or user_weight_power < 0:
        raise ValueError(
            f"user_weight_power must be finite and >= 0 (0 disables user weighting), got {user_weight_power!r}."
        )
    if isinstance(max_users_per_item, bool) or not isinstance(max_users_per_item, (int, np.integer)) \
            or max_users_per_item < 1:
        raise ValueError(
            f"max_users_per_item must be an integer >= 1, got {max_users_per_item!r}; the default is 200."
        )
    rec = None if recency is None else _recency_ranks(recency, users.size)

    empty = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    e_items, e_users = _capped_edges(users, items, n_users, n_items, int(max_users_per_item), rec)
    if e_items.size == 0:
        return empty

    counts = np.bincount(e_items, minlength=n_items)
    item_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(e_items.size) - item_start[e_items]
    # Edge e pairs its user with the k_e users listed after it under the same item, so each
    # unordered pair appears once per common item, with the lower user index first.
    k_e = counts[e_items] - 1 - rank

    degree = np.bincount(e_users, minlength=n_users).astype(np.float64)
    weight = np.zeros(n_users, dtype=np.float64)
    active = degree > 0
    weight[active] = degree[active] ** (-float(user_weight_power))

    load = np.bincount(e_users, weights=k_e, minlength=n_users)
    chunk_of_user = ((np.cumsum(load) - load) // _PAIR_ENTRY_BUDGET).astype(np.int64)
    edge_chunk = chunk_of_user[e_users]

    result = empty
    for chunk in np.unique(edge_chunk[k_e > 0]):
        sel = np.flatnonzero((edge_chunk == chunk) & (k_e > 0))
        part = _swing_chunk(sel, k_e[sel], e_items, e_users, weight, n_users, n_items, float(alpha))
        result = part if result.nnz == 0 else result + part
    result = result.tocsr()
    result.sum_duplicates()
    result.sort_indices()
    return result


def _swing_chunk(sel: np.ndarray, k_sel: np.ndarray, e_items: np.ndarray, e_users: np.ndarray,
                 weight: np.ndarray, n_users: int, n_items: int, alpha: float) -> sp.csr_matrix:
    """Swing contribution of the user pairs whose lower user's edges are ``sel``."""
    total = int(k_sel.sum())
    src = np.repeat(sel, k_sel)
    offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(k_sel) - k_sel, k_sel)
    code = e_users[src] * n_users + e_users[src + 1 + offset]
    del offset
    # Stable: within a pair, entries stay in edge order, i.e. ascending item.
    order = np.argsort(code, kind="stable")
    code_sorted = code[order]
    del code
    new = np.empty(total, dtype=bool)
    new[0] = True
    np.not_equal(code_sorted[1:], code_sorted[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    common = np.diff(np.append(starts, total))
    shared = common >= 2  # one common item only feeds the diagonal
    if not shared.any():
        return sp.csr_matrix((n_items, n_items), dtype=np.float64)
    entry_keep = np.repeat(shared, common)
    pair_items = e_items[src[order[entry_keep]]]
    del src, order, entry_keep
    pair_code = code_sorted[starts[shared]]
    n_common = common[shared]
    u, v = np.divmod(pair_code, n_users)
    # Factor 2: the ordered-pair sum visits (u, v) and (v, u).
    pair_weight = 2.0 * weight[u] * weight[v] / (alpha + n_common)

    indptr = np.concatenate(([0], np.cumsum(n_common)))
    x = sp.csr_matrix((np.ones(pair_items.size), pair_items, indptr), shape=(n_common.size, n_items))
    xw = sp.csr_matrix((np.repeat(pair_weight, n_common), pair_items, indptr), shape=x.shape)
    s = (x.T.tocsr() @ xw).tocsr()
    return _drop_diagonal(s)


def _drop_diagonal(s: sp.csr_matrix) -> sp.csr_matrix:
    rows = np.repeat(np.arange(s.shape[0]), np.diff(s.indptr))
    off = (rows != s.indices) & (s.data != 0)
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rows[off], minlength=s.shape[0]))))
    return sp.csr_matrix((s.data[off], s.indices[off], indptr), shape=s.shape)


def top_k_neighbours(similarity: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` highest-scoring stored entries of each row.

    Returns ``(rows, cols, scores)`` grouped by ascending row; within a row, highest score
    first, ties broken by lower column index. Explicit zeros are not neighbours.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}.")
    if not sp.issparse(similarity):
        raise ValueError(
            f"similarity must be a scipy sparse matrix, got {type(similarity).__name__}; "
            f"wrap dense arrays with scipy.sparse.csr_matrix."
        )
    s = sp.csr_matrix(similarity, dtype=np.float64, copy=True)
    s.sum_duplicates()
    s.eliminate_zeros()
    if k == 0 or s.nnz == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    rows = np.repeat(np.arange(s.shape[0], dtype=np.int64), np.diff(s.indptr))
    indices = s.indices.astype(np.int64)
    order = _row_major_descending(rows, indices, s.data, s.shape[0])
    # Sorting keeps each row's block in place, so a position's row is unchanged.
    rank = np.arange(s.nnz) - s.indptr[rows]
    keep = order[rank < k]
    return rows[keep], indices[keep], s.data[keep]


def _row_major_descending(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, n_rows: int) -> np.ndarray:
    """Permutation ordering entries by (row, score descending, col), assuming cols ascend within rows."""
    distinct, inverse = np.unique(data, return_inverse=True)
    n_distinct = distinct.size
    if n_rows * n_distinct < 2**62:
        # One integer key and a stable sort beat a three-key lexsort several times over;
        # stability keeps the canonical column order among equal scores.
        key = rows * n_distinct + (n_distinct - 1 - inverse.reshape(-1))
        return np.argsort(key, kind="stable")
    return np.lexsort((cols, -data, rows))
