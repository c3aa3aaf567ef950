"""The semantic-ID trie: does a longer shared prefix mean more similar items?

Singh et al. (Google, "Better Generalization with Semantic IDs", Table 1) report, per
shared prefix length, the mean pairwise cosine similarity of items sharing that prefix
and the typical sub-trie size. :func:`prefix_similarity` computes the same table for a
version: for each length ``l`` it samples pairs of distinct items uniformly among all
pairs that share a length-``l`` prefix (a group of ``s`` items holds ``s(s-1)/2`` of
them), and as the reference, pairs of distinct items drawn uniformly from the catalogue.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from semid_assets.core.tokenizers.metrics import prefix_group_ids

__all__ = ["prefix_similarity", "trie_stats", "example_subtrees", "render_subtree"]


def _unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{int((norms == 0).sum())} item vector(s) are all zeros; cosine similarity is undefined")
    return X / norms


def _check(codes: np.ndarray, X: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be a 2-D integer array [n_items, levels], got {codes.dtype} {codes.shape}")
    if X.shape[0] != codes.shape[0]:
        raise ValueError(f"codes give {codes.shape[0]} items but the vectors {X.shape[0]}")
    if codes.shape[0] < 2:
        raise ValueError("the hierarchy report needs at least two items")
    return codes


def _cosine(X: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", X[i], X[j])


def _centred_cosine(X: np.ndarray, centre: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cosine of rows ``i`` and ``j`` of ``X`` after subtracting ``centre`` (in float64, then unit float32 rows)."""
    return np.einsum("ij,ij->i", _unit_rows(np.asarray(X[i], np.float64) - centre),
                     _unit_rows(np.asarray(X[j], np.float64) - centre))


def prefix_similarity(codes: np.ndarray, X: np.ndarray, pairs: int = 20000, seed: int = 0) -> pd.DataFrame:
    """One row per prefix length: mean cosine of ``pairs`` sampled pairs sharing it, and sub-trie sizes.

    Columns: ``prefix_length``, ``mean_cosine`` (pairs sharing the prefix), ``random_cosine``
    (random pairs, the same sample for every row), ``lift`` (their difference), ``centred_cosine``
    and ``random_centred_cosine`` (the same pairs after subtracting the catalogue's mean vector:
    in an anisotropic space, where even random pairs have a high cosine, these still discriminate),
    ``pairs`` (sampled; fewer when fewer exist), ``prefixes`` (distinct), ``items_in_shared``
    (share of items whose prefix some other item has), and the sub-trie sizes over prefixes:
    ``size_p10``, ``size_median``, ``size_p90``, ``size_max``.
    """
    # Only sampled rows are ever centred (a float64 copy of a million vectors is gigabytes).
    centre = np.asarray(X).mean(axis=0, dtype=np.float64)
    unit = _unit_rows(X)
    codes = _check(codes, unit)
    n = codes.shape[0]
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, pairs)
    j = rng.integers(0, n - 1, pairs)
    j += j >= i
    random_cos = float(_cosine(unit, i, j).mean())
    random_centred = float(_centred_cosine(X, centre, i, j).mean())
    rows = []
    for level, group in enumerate(prefix_group_ids(codes)):
        sizes = np.bincount(group)
        order = np.argsort(group, kind="stable")
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        weight = sizes.astype(np.float64) * (sizes - 1)
        row = {"prefix_length": level + 1}
        if weight.sum() > 0:
            chosen = rng.choice(sizes.size, size=pairs, p=weight / weight.sum())
            s = sizes[chosen]
            a = rng.integers(0, s)
            b = rng.integers(0, s - 1)
            b += b >= a
            first, second = order[starts[chosen] + a], order[starts[chosen] + b]
            mean = float(_cosine(unit, first, second).mean())
            row.update(mean_cosine=mean, random_cosine=random_cos, lift=mean - random_cos,
                       centred_cosine=float(_centred_cosine(X, centre, first, second).mean()),
                       random_centred_cosine=random_centred, pairs=int(pairs))
        else:
            row.update(mean_cosine=float("nan"), random_cosine=random_cos, lift=float("nan"),
                       centred_cosine=float("nan"), random_centred_cosine=random_centred, pairs=0)
        row.update(
            prefixes=int(sizes.size),
            items_in_shared=float(sizes[sizes > 1].sum() / n),
            size_p10=float(np.percentile(sizes, 10)),
            size_median=float(np.median(sizes)),
            size_p90=float(np.percentile(sizes, 90)),
            size_max=int(sizes.max()),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def trie_stats(codes: np.ndarray) -> pd.DataFrame:
    """Per level of the trie: distinct prefixes, branching of the parents, singleton leaves.

    ``branching_mean`` / ``branching_max``: children per prefix of the level above (the
    root for level 1); ``singletons``: prefixes held by one item. The trie's depth is the
    number of levels; items sharing a full tuple sit one level deeper, under the suffix.
    """
    codes = np.asarray(codes)
    groups = prefix_group_ids(codes)
    rows = []
    parent = np.zeros(codes.shape[0], dtype=np.int64)
    for level, group in enumerate(groups):
        parent_of = np.zeros(int(group.max()) + 1, dtype=np.int64)
        parent_of[group] = parent
        children = np.bincount(parent_of)
        children = children[children > 0]
        sizes = np.bincount(group)
        rows.append({
            "level": level + 1,
            "prefixes": int(sizes.size),
            "branching_mean": float(children.mean()),
            "branching_max": int(children.max()),
            "singletons": int((sizes == 1).sum()),
        })
        parent = group
    return pd.DataFrame(rows)


def example_subtrees(codes: np.ndarray, count: int = 2, min_items: int = 4) -> list[tuple[int, ...]]:
    """Deterministic length-2 prefixes worth showing: the most populous one, then ones at the median size.

    Candidates are length-2 prefixes with at least ``min_items`` items (all, if none has);
    ties break on the prefix's codes, so the same version always shows the same sub-trees.
    """
    codes = np.asarray(codes)
    length = min(2, codes.shape[1])
    prefixes, sizes = np.unique(codes[:, :length], axis=0, return_counts=True)
    keep = sizes >= min_items
    if keep.any():
        prefixes, sizes = prefixes[keep], sizes[keep]
    # np.unique sorted the prefixes lexicographically; a stable sort on size keeps that for ties.
    order = np.argsort(-sizes, kind="stable")
    picks = [order[0]]
    by_size = np.argsort(sizes, kind="stable")
    for rank in (len(by_size) // 2, len(by_size) // 4, (3 * len(by_size)) // 4):
        if len(picks) >= count:
            break
        if by_size[rank] not in picks:
            picks.append(by_size[rank])
    return [tuple(int(c) for c in prefixes[p]) for p in picks[:count]]


def render_subtree(codes: np.ndarray, titles, prefix: tuple[int, ...], max_children: int = 8,
                   max_items: int = 4) -> str:
    """The sub-trie under ``prefix`` as indented markdown, leaves listing item titles.

    Shows at most ``max_children`` children per node (the most populous) and
    ``max_items`` titles per leaf, saying how many more there are.
    """
    codes = np.asarray(codes)
    titles = np.asarray(titles, dtype=object)
    mask = np.all(codes[:, : len(prefix)] == np.asarray(prefix), axis=1)
    lines = [f"- `{'-'.join(map(str, prefix))}` — {int(mask.sum())} items"]
    _render(codes[mask], titles[mask], prefix, 1, max_children, max_items, lines)
    return "\n".join(lines)


def _render(codes, titles, prefix, depth, max_children, max_items, lines) -> None:
    indent = "  " * depth
    level = len(prefix)
    if level == codes.shape[1]:
        for title in titles[:max_items]:
            lines.append(f"{indent}- {_one_line(title)}")
        if len(titles) > max_items:
            lines.append(f"{indent}- … {len(titles) - max_items} more")
        return
    children, counts = np.unique(codes[:, level], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    for child in children[order[:max_children]]:
        mask = codes[:, level] == child
        child_prefix = (*prefix, int(child))
        lines.append(f"{indent}- `{'-'.join(map(str, child_prefix))}` — {int(mask.sum())} items")
        _render(codes[mask], titles[mask], child_prefix, depth + 1, max_children, max_items, lines)
    if len(children) > max_children:
        rest = int(counts[order[max_children:]].sum())
        lines.append(f"{indent}- … {len(children) - max_children} more prefixes ({rest} items)")


def _one_line(title) -> str:
    text = " ".join(str(title).split())
    return (text[:77] + "…") if len(text) > 80 else text
