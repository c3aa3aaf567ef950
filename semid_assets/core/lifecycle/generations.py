"""Generations: published semantic IDs that never change, and the rules for adding to them.

A *generation* pairs one aligner version with one tokenizer version. Once an item's SID is
published in a generation, every later month of that generation gives it the same SID,
literally (codes and suffix). Each month:

- items already published keep their row as it is (:func:`extend_generation`);
- new items are embedded by the generation's aligner, encoded by its tokenizer, and placed:
  a new item whose code tuple is free takes suffix 0, one whose tuple is taken takes the
  lowest free suffix of that tuple (or, with ``reassign``, first a free last-level code);
- a new generation (:func:`cut_generation`) takes a freshly fitted tokenizer's codes, but an
  item whose code tuple did not change keeps its suffix and its ``first_month``, so an
  anchored refit changes as few literal IDs as it can.

A published table has the columns ``item_id, c1 … cL, suffix, generation, first_month``
(``first_month``: the month the item got the SID it holds), rows in catalogue order.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from semid_assets.core.data.schema import ITEM_ID
from semid_assets.core.lifecycle.versions import check_month
from semid_assets.core.tokenizers.metrics import prefix_group_ids
from semid_assets.core.tokenizers.sids import SUFFIX, code_columns

__all__ = ["GENERATION", "FIRST_MONTH", "Generation", "PublishedIds", "published", "new_item_mask",
           "place_items", "first_generation", "extend_generation", "cut_generation"]

GENERATION = "generation"
FIRST_MONTH = "first_month"


@dataclass(frozen=True)
class Generation:
    """What a generation is made of; written once when it is cut, never changed."""

    number: int
    method: str
    origin_month: str
    """The month whose fitted tokenizer (and serving aligner) the generation froze."""
    aligner_month: str | None
    """The month of the aligner whose space the generation's vectors live in (None: the content embedding)."""
    reason: str
    """Why it was cut: the first version, an explicit request, or the staleness figures that passed."""
    previous: int | None = None

    def __post_init__(self) -> None:
        check_month(self.origin_month)
        if self.number < 1:
            raise ValueError(f"generations are numbered from 1, got {self.number}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Generation:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class PublishedIds:
    """A published table taken apart: ids, codes [n, L], suffixes, generation numbers, first months."""

    item_ids: np.ndarray
    codes: np.ndarray
    suffix: np.ndarray
    generation: np.ndarray
    first_month: np.ndarray

    @property
    def levels(self) -> int:
        return self.codes.shape[1]


def published(table: pd.DataFrame) -> PublishedIds:
    """The parts of a published ``semantic_ids`` table (codes as int64)."""
    levels = sum(1 for c in table.columns if c[:1] == "c" and c[1:].isdigit())
    missing = [c for c in (ITEM_ID, *code_columns(levels), SUFFIX, GENERATION, FIRST_MONTH) if c not in table.columns]
    if missing or levels == 0:
        raise ValueError(f"not a published semantic-ID table: missing column(s) {missing or ['c1']}; "
                         "re-materialise semantic_ids of that month")
    return PublishedIds(table[ITEM_ID].to_numpy(), table[code_columns(levels)].to_numpy(np.int64),
                        table[SUFFIX].to_numpy(np.int64), table[GENERATION].to_numpy(np.int64),
                        table[FIRST_MONTH].astype(str).to_numpy())


def new_item_mask(previous: PublishedIds, item_ids: np.ndarray) -> np.ndarray:
    """Bool over ``item_ids``: items the previous table does not hold. Refuses a catalogue that lost items.

    A published ID stays taken for good, so the month's catalogue must still hold every item
    published before (semid's catalogue snapshots only grow: an item is in every month after
    the one it was created in).
    """
    known = pd.Index(pd.Series(previous.item_ids).astype(str))
    current = pd.Index(pd.Series(np.asarray(item_ids)).astype(str))
    lost = known.difference(current)
    if len(lost):
        raise ValueError(f"{len(lost)} item(s) published earlier are missing from this month's catalogue "
                         f"(e.g. {list(lost[:5])}); a month's catalogue must hold every item created before "
                         "its end. Restore those rows (with their original created_at) in the items file.")
    return known.get_indexer(current) < 0


def _tuple_groups(*code_blocks: np.ndarray) -> list[np.ndarray]:
    stacked = np.concatenate([np.asarray(c, dtype=np.int64) for c in code_blocks], axis=0)
    groups = prefix_group_ids(stacked)[-1] if len(stacked) else np.zeros(0, dtype=np.int64)
    out, start = [], 0
    for block in code_blocks:
        out.append(groups[start : start + len(block)])
        start += len(block)
    return out


def _lowest_free(used: set[int]) -> int:
    suffix = 0
    while suffix in used:
        suffix += 1
    return suffix


def place_items(fixed_codes: np.ndarray, fixed_suffix: np.ndarray, proposed: np.ndarray,
                candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """IDs for items that need one, next to items whose IDs are fixed.

    ``proposed`` [p, L]: the codes each placed item would take, in placing order. An item whose
    tuple nobody holds yet takes it with suffix 0. An item whose tuple is taken (by a fixed
    item, or by an item placed before it) takes, with ``candidates`` [p, k] (its nearest
    last-level codes, nearest first), the first candidate whose whole tuple is free; otherwise
    the lowest suffix its tuple has free. Returns ``(codes [p, L], suffix [p], moved)``.
    """
    fixed_codes = np.asarray(fixed_codes, dtype=np.int64).reshape(-1, np.asarray(proposed).shape[1])
    proposed = np.asarray(proposed, dtype=np.int64)
    codes = proposed.copy()
    suffix = np.zeros(len(proposed), dtype=np.int64)
    if not len(proposed):
        return codes, suffix, 0
    fixed_groups, placed_groups = _tuple_groups(fixed_codes, proposed)
    occupied = np.zeros(int(max(fixed_groups.max(initial=-1), placed_groups.max(initial=-1))) + 1, dtype=bool)
    occupied[fixed_groups] = True
    first_in_group = np.zeros(len(proposed), dtype=bool)
    first_in_group[np.unique(placed_groups, return_index=True)[1]] = True
    clash = np.flatnonzero(occupied[placed_groups] | ~first_in_group)
    if not len(clash):
        return codes, suffix, 0
    return _place_clashes(fixed_codes, np.asarray(fixed_suffix, dtype=np.int64), codes, suffix, clash, candidates)


def _place_clashes(fixed_codes, fixed_suffix, codes, suffix, clash, candidates):
    """The slow path of :func:`place_items`, item by item, only for items whose tuple is taken."""
    used: dict[tuple, set[int]] = {}
    for row, s in zip(map(tuple, fixed_codes.tolist()), fixed_suffix.tolist()):
        used.setdefault(row, set()).add(s)
    clashing = set(clash.tolist())
    for i, row in enumerate(map(tuple, codes.tolist())):
        if i not in clashing:
            used.setdefault(row, set()).add(0)
    moved = 0
    for i in clash.tolist():
        key = tuple(codes[i].tolist())
        if candidates is not None:
            free = next((c for c in candidates[i].tolist() if (*key[:-1], int(c)) not in used), None)
            if free is not None:
                key = (*key[:-1], int(free))
                codes[i, -1] = free
                moved += 1
        taken = used.setdefault(key, set())
        suffix[i] = _lowest_free(taken)
        taken.add(int(suffix[i]))
    return codes, suffix, moved


def _table(item_ids, codes, suffix, generation, first_month) -> pd.DataFrame:
    table = pd.DataFrame({ITEM_ID: pd.Series(np.asarray(item_ids)).array})
    for name, column in zip(code_columns(codes.shape[1]), np.asarray(codes).T):
        table[name] = column.astype(np.int32)
    table[SUFFIX] = np.asarray(suffix).astype(np.int32)
    table[GENERATION] = np.asarray(generation).astype(np.int32)
    table[FIRST_MONTH] = pd.Series(np.asarray(first_month).astype(str)).astype("string").array
    return table


def first_generation(item_ids: np.ndarray, codes: np.ndarray, month: str, *, number: int = 1,
                     candidates: np.ndarray | None = None) -> tuple[pd.DataFrame, int]:
    """The published table of a generation with no predecessor: every item placed in catalogue order."""
    check_month(month)
    placed, suffix, moved = place_items(np.zeros((0, codes.shape[1])), np.zeros(0), codes, candidates)
    n = len(item_ids)
    return _table(item_ids, placed, suffix, np.full(n, number), np.full(n, month)), moved


def extend_generation(previous: pd.DataFrame, item_ids: np.ndarray, new_codes: np.ndarray, month: str,
                      *, candidates: np.ndarray | None = None) -> tuple[pd.DataFrame, int]:
    """This month's table in the previous table's generation: published rows literally, new items placed.

    ``new_codes`` [p, L]: the generation tokenizer's codes of the new items (``new_item_mask``), in
    catalogue order. Returns the table (catalogue order) and how many new items moved to a free code.
    """
    check_month(month)
    before = published(previous)
    is_new = new_item_mask(before, item_ids)
    if int(is_new.sum()) != len(new_codes):
        raise ValueError(f"{int(is_new.sum())} new item(s) but {len(new_codes)} rows of new codes")
    codes, suffix, moved = place_items(before.codes, before.suffix, new_codes, candidates)
    generation = int(before.generation.max()) if len(before.generation) else 1
    rows = pd.Index(pd.Series(before.item_ids).astype(str)).get_indexer(pd.Series(np.asarray(item_ids)).astype(str))
    n, levels = len(item_ids), before.levels
    all_codes = np.empty((n, levels), dtype=np.int64)
    all_suffix = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=object)
    old = ~is_new
    all_codes[old], all_suffix[old], first[old] = before.codes[rows[old]], before.suffix[rows[old]], \
        before.first_month[rows[old]]
    all_codes[is_new], all_suffix[is_new], first[is_new] = codes, suffix, month
    return _table(item_ids, all_codes, all_suffix, np.full(n, generation), first), moved


def cut_generation(previous: pd.DataFrame | None, item_ids: np.ndarray, codes: np.ndarray, month: str,
                   number: int, *, candidates: np.ndarray | None = None) -> tuple[pd.DataFrame, int]:
    """The first table of generation ``number``: the new tokenizer's ``codes`` for every item.

    Items whose code tuple is the one they held keep their suffix and ``first_month``; every other
    item is placed after them, in catalogue order (:func:`place_items`).
    """
    check_month(month)
    if previous is None:
        return first_generation(item_ids, codes, month, number=number, candidates=candidates)
    before = published(previous)
    codes = np.asarray(codes, dtype=np.int64)
    if codes.shape[1] != before.levels:
        raise ValueError(f"the new tokenizer gives {codes.shape[1]} levels, the published IDs have {before.levels}")
    rows = pd.Index(pd.Series(before.item_ids).astype(str)).get_indexer(pd.Series(np.asarray(item_ids)).astype(str))
    known = rows >= 0
    same = np.zeros(len(item_ids), dtype=bool)
    same[known] = np.all(codes[known] == before.codes[rows[known]], axis=1)
    placed, placed_suffix, moved = place_items(
        codes[same], before.suffix[rows[same]], codes[~same],
        None if candidates is None else np.asarray(candidates)[~same])
    out_codes, suffix = codes.copy(), np.empty(len(item_ids), dtype=np.int64)
    suffix[same] = before.suffix[rows[same]]
    out_codes[~same], suffix[~same] = placed, placed_suffix
    # An item keeps the month it got its SID whenever the SID it ends with is the one it held.
    first = np.full(len(item_ids), month, dtype=object)
    kept = known.copy()
    kept[known] = np.all(out_codes[known] == before.codes[rows[known]], axis=1) & \
        (suffix[known] == before.suffix[rows[known]])
    first[kept] = before.first_month[rows[kept]]
    return _table(item_ids, out_codes, suffix, np.full(len(item_ids), number), first), moved
