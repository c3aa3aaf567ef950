"""Optimal one-to-one matching of the codes of two tokenizer versions.

Code numbers are arbitrary labels: code 17 of one version has nothing to do with code
17 of another unless someone made it so. Matching finds, from the items both versions
encode, the correspondence that keeps the most items together (the Hungarian algorithm
on the co-assignment contingency table, ``scipy.optimize.linear_sum_assignment``).

Two flavours:

- :func:`match_level_codes` matches the codes of one level globally (K x K, a full
  permutation). This is what relabelling a residual quantiser needs: a level's codebook
  is shared by every prefix, so its rows can only be permuted as a whole.
- :func:`match_prefixes` matches the trie: level 1 globally, then at each level the
  children of every matched pair of parents among themselves (level ``l`` conditioned on
  the matched length ``l-1`` prefix). It says which of the earlier version's prefixes
  became which of this version's, and how many items kept their matched prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from semid_assets.core.tokenizers.codes import check_codes
from semid_assets.core.tokenizers.metrics import prefix_group_ids

__all__ = ["match_level_codes", "match_prefixes", "PrefixMatching", "cell_counts"]


def _check_pair(codes_a: np.ndarray, codes_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes_a, codes_b = check_codes(codes_a, what="codes_a"), check_codes(codes_b, what="codes_b")
    if codes_a.shape != codes_b.shape:
        raise ValueError(
            f"codes_a has shape {codes_a.shape} but codes_b {codes_b.shape}: both must give the same "
            "items (rows aligned by item) the same number of levels")
    if codes_a.shape[0] == 0:
        raise ValueError("no items to match: the two versions share no item")
    return codes_a, codes_b


def cell_counts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The non-empty cells of the contingency table of two labelings of the same items.

    Returns ``(rows, cols, counts, cell_of_item)``: cell ``i`` holds ``counts[i]`` items
    labelled ``rows[i]`` by ``a`` and ``cols[i]`` by ``b``; ``cell_of_item[j]`` is item
    ``j``'s cell. Labels are non-negative integers; the table is never materialised densely.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    width = int(b.max()) + 1 if b.size else 1
    key = a * width + b
    cells, cell_of_item, counts = np.unique(key, return_inverse=True, return_counts=True)
    return cells // width, cells % width, counts, cell_of_item.reshape(-1)


def match_level_codes(codes_a: np.ndarray, codes_b: np.ndarray, codebook_size: int) -> np.ndarray:
    """The permutation ``perm`` of ``range(codebook_size)`` maximising ``#{i : perm[b_i] == a_i}``.

    ``codes_a``/``codes_b`` are one level's codes of the same items (1-D). ``perm[k]`` is
    the ``a`` label that ``b``'s code ``k`` should take; codes no item uses are paired
    arbitrarily but consistently (the result is always a full permutation).
    """
    a = np.asarray(codes_a, dtype=np.int64).reshape(-1)
    b = np.asarray(codes_b, dtype=np.int64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"codes_a has {a.size} items but codes_b {b.size}; pass the same items")
    if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= codebook_size):
        raise ValueError(f"codes out of range for codebook_size {codebook_size}")
    table = np.zeros((codebook_size, codebook_size), dtype=np.int64)
    np.add.at(table, (b, a), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    perm = np.empty(codebook_size, dtype=np.int64)
    perm[rows] = cols
    return perm


@dataclass(frozen=True)
class PrefixMatching:
    """Result of :func:`match_prefixes` for items with codes ``codes_a`` / ``codes_b``.

    ``groups_a[l]`` / ``groups_b[l]``: each item's length-``l+1`` prefix as a dense group id
    in its version. ``mapping[l]``: for each ``a`` group of that length, the ``b`` group it
    was matched to, or -1. ``kept[l]``: items whose ``a`` prefix maps to their own ``b``
    prefix — the items that kept their matched prefix of length ``l+1``.
    """

    groups_a: list[np.ndarray]
    groups_b: list[np.ndarray]
    mapping: list[np.ndarray]
    kept: list[np.ndarray]

    @property
    def kept_share(self) -> list[float]:
        return [float(k.mean()) for k in self.kept]

    def mapped_prefix(self, length: int, codes_a: np.ndarray, codes_b: np.ndarray) -> dict[tuple, tuple]:
        """``{a prefix tuple: b prefix tuple}`` of the matched prefixes of ``length``."""
        level = length - 1
        out = {}
        first_a = _first_member(self.groups_a[level])
        first_b = _first_member(self.groups_b[level])
        for group_a, group_b in enumerate(self.mapping[level]):
            if group_b >= 0:
                out[tuple(int(c) for c in codes_a[first_a[group_a], :length])] = tuple(
                    int(c) for c in codes_b[first_b[group_b], :length])
        return out


def _first_member(groups: np.ndarray) -> np.ndarray:
    first = np.full(int(groups.max()) + 1, -1, dtype=np.int64)
    # Reversed so the smallest index wins each slot.
    first[groups[::-1]] = np.arange(groups.size - 1, -1, -1)
    return first


def match_prefixes(codes_a: np.ndarray, codes_b: np.ndarray) -> PrefixMatching:
    """Match the earlier version's prefixes (``codes_a``) to this version's (``codes_b``), level by level.

    Level 1: Hungarian on the contingency of the first codes. Level ``l`` > 1: only the
    items that kept their matched length ``l-1`` prefix count, and the children of an
    ``a`` prefix may only match children of the ``b`` prefix it was matched to — one
    small Hungarian problem per matched parent. Rows of the two arrays are the same items.
    """
    codes_a, codes_b = _check_pair(codes_a, codes_b)
    groups_a, groups_b = prefix_group_ids(codes_a), prefix_group_ids(codes_b)
    n, levels = codes_a.shape
    mapping, kept = [], []
    parent_a = np.zeros(n, dtype=np.int64)
    parent_kept = np.ones(n, dtype=bool)
    for level in range(levels):
        ga, gb = groups_a[level], groups_b[level]
        rows, cols, counts, _ = cell_counts(ga[parent_kept], gb[parent_kept])
        # Every a group has one parent; cells come sorted by a group, hence by parent too
        # once we sort on it (stable, so cells of one parent stay in a-group order).
        parent_of_group = np.zeros(int(ga.max()) + 1, dtype=np.int64)
        parent_of_group[ga] = parent_a
        parent = parent_of_group[rows]
        order = np.argsort(parent, kind="stable")
        rows, cols, counts, parent = rows[order], cols[order], counts[order], parent[order]
        level_map = np.full(int(ga.max()) + 1, -1, dtype=np.int64)
        _solve_by_parent(parent, rows, cols, counts, level_map)
        now_kept = level_map[ga] == gb
        mapping.append(level_map)
        kept.append(now_kept)
        parent_a, parent_kept = ga, now_kept
    return PrefixMatching(groups_a, groups_b, mapping, kept)


def _solve_by_parent(parent: np.ndarray, rows: np.ndarray, cols: np.ndarray, counts: np.ndarray,
                     out: np.ndarray) -> None:
    if parent.size == 0:
        return
    starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
    ends = np.r_[starts[1:], parent.size]
    single = ends - starts == 1
    # A parent whose kept items fall in one cell matches that cell: no assignment to solve.
    out[rows[starts[single]]] = cols[starts[single]]
    for start, end in zip(starts[~single], ends[~single]):
        r, c, w = rows[start:end], cols[start:end], counts[start:end]
        ur, ri = np.unique(r, return_inverse=True)
        uc, ci = np.unique(c, return_inverse=True)
        table = np.zeros((ur.size, uc.size), dtype=np.int64)
        table[ri, ci] = w
        i, j = linear_sum_assignment(table, maximize=True)
        # A zero cell is no evidence: leave that a prefix unmatched rather than invent a pair.
        real = table[i, j] > 0
        out[ur[i[real]]] = uc[j[real]]
