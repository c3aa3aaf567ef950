"""Semantic IDs: code tuples made unique per item with a collision suffix.

Several items can land on the same code tuple (c1..cL). Appending a suffix, 0 for the
first item of the tuple, 1 for the next and so on, makes (c1..cL, suffix) a unique
address. "First" is row order, and callers pass rows in catalogue order (oldest item
first), so an item keeps suffix 0, and hence its ID, when newer items join its group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from semid_assets.core.data.schema import ITEM_ID
from semid_assets.core.tokenizers.codes import check_codes
from semid_assets.core.tokenizers.metrics import prefix_group_ids

__all__ = ["collision_suffix", "semantic_id_table", "SUFFIX", "code_columns", "codes_of_items"]

SUFFIX = "suffix"


def code_columns(levels: int) -> list[str]:
    """Names of the code columns of a table with ``levels`` levels: c1..cL."""
    return [f"c{lvl}" for lvl in range(1, levels + 1)]


def collision_suffix(codes: np.ndarray) -> np.ndarray:
    """int32 [n]: rank of each row among the rows sharing its full code tuple, in row order.

    The first row of a tuple gets 0, the next 1, ... Rows of other tuples in between
    do not matter.
    """
    codes = check_codes(codes)
    n = codes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    group = prefix_group_ids(codes)[-1]
    # A stable sort keeps row order inside each group, so a row's rank is its position
    # in the sorted order minus where its group starts.
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    suffix = np.empty(n, dtype=np.int32)
    suffix[order] = np.arange(n, dtype=np.int64) - group_start
    return suffix


def semantic_id_table(item_ids: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
    """Table ``item_id, c1..cL, suffix`` (codes and suffix int32), rows in input order.

    ``item_ids`` must be unique; pass rows oldest item first so that suffixes are stable
    as the catalogue grows. Every (c1..cL, suffix) of the result is unique.
    """
    codes = check_codes(codes)
    if isinstance(item_ids, (pd.Series, pd.Index)):
        # Keep the caller's dtype (e.g. pyarrow strings); only the positions matter here.
        ids = pd.Series(item_ids.to_numpy() if isinstance(item_ids, pd.Index) else item_ids.array)
    else:
        arr = np.asarray(item_ids)
        if arr.ndim != 1:
            raise ValueError(f"item_ids must be 1-D, got shape {arr.shape}")
        ids = pd.Series(arr)
    if len(ids) != codes.shape[0]:
        raise ValueError(f"item_ids has {len(ids)} entries but codes has {codes.shape[0]} rows")
    if ids.isna().any():
        raise ValueError(f"item_ids has {int(ids.isna().sum())} missing value(s)")
    dup = ids.duplicated(keep=False)
    if dup.any():
        dup_ids = ids[dup]
        n_ids = dup_ids.nunique()
        examples = dup_ids.drop_duplicates().head(5).tolist()
        raise ValueError(
            f"item_ids must be unique: {n_ids} id(s) occur more than once, "
            f"on {int(dup.sum())} rows (e.g. {examples})"
        )
    table = pd.DataFrame({ITEM_ID: ids.array})
    for name, col in zip(code_columns(codes.shape[1]), codes.T):
        table[name] = col.astype(np.int32)
    table[SUFFIX] = collision_suffix(codes)
    return table


def codes_of_items(table: pd.DataFrame, item_ids) -> np.ndarray:
    """The codes a stored semantic-ID table (:func:`semantic_id_table`) gives ``item_ids``, int64
    ``[len(item_ids), levels]``; ``-1`` rows for items the table does not hold (ids compared as text)."""
    columns = [c for c in table.columns if c.startswith("c") and c[1:].isdigit()]
    rows = pd.Index(table[ITEM_ID].astype(str)).get_indexer(pd.Index(np.asarray(item_ids).astype(str)))
    codes = np.full((len(rows), len(columns)), -1, dtype=np.int64)
    codes[rows >= 0] = table[columns].to_numpy()[rows[rows >= 0]]
    return codes
