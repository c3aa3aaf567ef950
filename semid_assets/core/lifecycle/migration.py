"""Migration between two generations: every item's old SID and new SID, and where each old prefix went.

Downstream models are keyed by SIDs or SID prefixes. When a new generation is cut they need,
per item, the old and the new SID (to remap a table keyed by item, or to retrain), and per
old prefix the new prefixes its items went to with their counts (to warm-start an embedding
table keyed by prefix: a new prefix row can start from the weighted mean of the old rows its
items came from).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from semid_assets.core.data.schema import ITEM_ID
from semid_assets.core.lifecycle.generations import GENERATION, published
from semid_assets.core.tokenizers.sids import SUFFIX, code_columns

__all__ = ["migration_table", "prefix_flows", "prefix_key", "migration_summary"]


def prefix_key(codes: np.ndarray, length: int) -> np.ndarray:
    """One string per row naming its first ``length`` codes, ``"12-5-7"``."""
    codes = np.asarray(codes)[:, :length].astype(np.int64)
    if not len(codes):
        return np.zeros(0, dtype=object)
    # Each distinct prefix is named once: a catalogue has far fewer prefixes than items, and a
    # row-by-row join takes minutes at a million items.
    distinct, row_of = np.unique(codes, axis=0, return_inverse=True)
    names = np.array(["-".join(map(str, prefix)) for prefix in distinct.tolist()], dtype=object)
    return names[row_of.reshape(-1)]


def migration_table(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Per item both tables hold: ``item_id``, ``old_c1 … old_cL``, ``old_suffix``, ``new_c1 …``,
    ``new_suffix``, the generations, ``sid_changed`` and ``prefix_kept`` (how many leading codes
    are unchanged; L when all codes are, whatever the suffix). Rows in the new table's order."""
    before, after = published(old), published(new)
    if before.levels != after.levels:
        raise ValueError(f"the generations have {before.levels} and {after.levels} levels; a migration maps "
                         "IDs of one shape to the other, so both must have the same number of levels")
    rows = pd.Index(pd.Series(before.item_ids).astype(str)).get_indexer(pd.Series(after.item_ids).astype(str))
    both = np.flatnonzero(rows >= 0)
    old_codes, new_codes = before.codes[rows[both]], after.codes[both]
    equal = old_codes == new_codes
    prefix_kept = np.cumprod(equal, axis=1).sum(axis=1)
    table = pd.DataFrame({ITEM_ID: pd.Series(after.item_ids[both]).array})
    levels = before.levels
    for name, column in zip(code_columns(levels), old_codes.T):
        table[f"old_{name}"] = column.astype(np.int32)
    table[f"old_{SUFFIX}"] = before.suffix[rows[both]].astype(np.int32)
    for name, column in zip(code_columns(levels), new_codes.T):
        table[f"new_{name}"] = column.astype(np.int32)
    table[f"new_{SUFFIX}"] = after.suffix[both].astype(np.int32)
    table[f"old_{GENERATION}"] = before.generation[rows[both]].astype(np.int32)
    table[f"new_{GENERATION}"] = after.generation[both].astype(np.int32)
    table["sid_changed"] = ~(equal.all(axis=1) & (before.suffix[rows[both]] == after.suffix[both]))
    table["prefix_kept"] = prefix_kept.astype(np.int32)
    return table


def _codes(migration: pd.DataFrame, side: str) -> np.ndarray:
    columns = sorted((c for c in migration.columns if c.startswith(f"{side}_c") and c[len(side) + 2:].isdigit()),
                     key=lambda c: int(c[len(side) + 2:]))
    return migration[columns].to_numpy(np.int64)


def prefix_flows(migration: pd.DataFrame, lengths: list[int] | None = None) -> pd.DataFrame:
    """Per prefix length and old prefix: each new prefix its items went to, with the count and the
    share of the old prefix's items. Columns ``length, old_prefix, new_prefix, items, share``,
    largest flows first within each old prefix."""
    old, new = _codes(migration, "old"), _codes(migration, "new")
    frames = []
    for length in lengths or range(1, old.shape[1] + 1):
        flows = pd.DataFrame({"old_prefix": prefix_key(old, length), "new_prefix": prefix_key(new, length)})
        counts = flows.groupby(["old_prefix", "new_prefix"], sort=True).size().rename("items").reset_index()
        totals = counts.groupby("old_prefix")["items"].transform("sum")
        counts["share"] = counts["items"] / totals
        counts.insert(0, "length", length)
        frames.append(counts.sort_values(["old_prefix", "items", "new_prefix"], ascending=[True, False, True],
                                         kind="stable"))
    columns = ["length", "old_prefix", "new_prefix", "items", "share"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def migration_summary(migration: pd.DataFrame) -> dict[str, float]:
    """Items mapped, and the shares whose full SID and whose prefix of each length survived literally."""
    n = len(migration)
    old, new = _codes(migration, "old"), _codes(migration, "new")
    summary = {"items": float(n),
               "sid_unchanged": float((~migration["sid_changed"]).mean()) if n else float("nan")}
    for length in range(1, old.shape[1] + 1):
        same = np.all(old[:, :length] == new[:, :length], axis=1)
        summary[f"prefix_{length}_unchanged"] = float(same.mean()) if n else float("nan")
    return summary
