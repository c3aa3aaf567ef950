"""Everything one month × method decision reads, gathered from the asset store in one place.

``sid_staleness`` (the figures and the verdict) and ``semantic_ids`` (the table) both start
from :func:`month_state`: the newest earlier publication, a later one when the month is a
backfill, the generation's frozen models and origin table, and the month's view.

Several processes may publish months of one method at once (a ``semid demo`` beside the
daemon's runs, or concurrent runs of a backfill). Publication holds :func:`publication_lock`
for the method from reading the history to the last write, and a verdict records the
publications it was judged against (:class:`Basis`): when they changed before the month is
published, the verdict is judged again, so the outcome is one that publishing the months one
after another gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from semid_assets.core.alignment.evaluation import judged_pairs, pair_recall, unique_pairs
from semid_assets.core.lifecycle.archive import GenerationArchive
from semid_assets.core.lifecycle.codes_cache import CodesCache
from semid_assets.core.lifecycle.gate import GenerationPolicy, older_verdict, own_generation_verdict
from semid_assets.core.lifecycle.generations import Generation, published
from semid_assets.core.lifecycle.history import MethodHistory, StoredTable
from semid_assets.core.lifecycle.publish import (GenerationModels, Judgement, MonthView, PublishOptions,
                                                 ids_from_later, judge_first, judge_month, month_view,
                                                 new_generation_record, publish_month)
from semid_assets.core.lifecycle.serving import serving_month
from semid_assets.core.durable import FileLock
from semid_assets.core.storage import AssetStore

__all__ = ["Basis", "MonthState", "month_state", "judge", "publish", "heldout_recall", "publication_lock"]

LOCKS = ".locks"


@dataclass(frozen=True)
class MonthState:
    month: str
    method: str
    previous: StoredTable | None
    later: StoredTable | None
    models: GenerationModels | None
    origin: pd.DataFrame | None
    view: MonthView
    serving_aligner: object


@dataclass(frozen=True)
class Basis:
    """The publications a month's verdict was judged against: the newest earlier one (its month and
    generation) and the oldest later one; ``""``/``0`` when there is none."""

    previous_month: str = ""
    previous_generation: int = 0
    later_month: str = ""

    COLUMNS = ("basis_previous_month", "basis_previous_generation", "basis_later_month")

    @classmethod
    def of(cls, state: MonthState) -> Basis:
        previous = state.previous
        return cls(previous_month="" if previous is None else previous.month,
                   previous_generation=0 if previous is None else int(published(previous.table).generation.max()),
                   later_month="" if state.later is None else state.later.month)

    def columns(self) -> dict[str, object]:
        """The basis as constant columns of the verdict's table."""
        return dict(zip(self.COLUMNS, (self.previous_month, self.previous_generation, self.later_month)))

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> Basis | None:
        """The basis recorded in a verdict's table; None for a table written before bases were recorded."""
        if not set(cls.COLUMNS) <= set(table.columns) or not len(table):
            return None
        row = table.iloc[0]
        return cls(str(row[cls.COLUMNS[0]]), int(row[cls.COLUMNS[1]]), str(row[cls.COLUMNS[2]]))

    def describe(self) -> str:
        earlier = (f"{self.previous_month} (generation {self.previous_generation})" if self.previous_month
                   else "no earlier publication")
        return f"{earlier}, {'later: ' + self.later_month if self.later_month else 'no later publication'}"


def publication_lock(store: AssetStore, method: str) -> FileLock:
    """The cross-process lock that publishing a month of ``method`` holds, from reading the method's
    history to writing its table, archive and aliases (re-entrant within a process)."""
    return FileLock.of(store.root / LOCKS / f"publication-{method}.lock")


def month_state(store: AssetStore, method: str, month: str, *, item_ids: np.ndarray, serving_vectors: np.ndarray,
                serving_aligner, candidate, options: PublishOptions,
                embed_in_generation: Callable[[object], np.ndarray], encode_catalogue=None) -> MonthState:
    """``embed_in_generation(aligner)``: that aligner's vectors of every item of the month (called only
    when the generation's aligner is not the one serving now)."""
    history = MethodHistory(store, method)
    previous, later = history.previous(month), history.later(month)
    models = origin = None
    if previous is not None:
        number = int(published(previous.table).generation.max())
        record = GenerationArchive(store).record(method, number, before=month)
        models = GenerationArchive(store).models(record)
        if record.origin_month in history.months():
            origin = history.table(record.origin_month).table
    view = month_view(month, item_ids, serving_vectors, serving_month(serving_aligner), candidate,
                      None if previous is None else previous.table, models, options,
                      lambda: embed_in_generation(models.aligner), encode_catalogue,
                      cache=CodesCache(store.root, month, method))
    return MonthState(month, method, previous, later, models, origin, view, serving_aligner)


def heldout_recall(spaces: Sequence[np.ndarray], item_ids: np.ndarray, pairs: pd.DataFrame, holdout: float,
                   seed: int, sample: int | None = None) -> tuple[float, ...]:
    """Recall@10 of the month's held-out pairs (the aligner's split; with ``sample``, the ones the aligner
    is judged on: ``judged_pairs``) in each of ``spaces`` (vectors of ``item_ids``)."""
    a, b, _ = unique_pairs(pairs, item_ids)
    held = judged_pairs(a, b, item_ids, holdout, seed=seed, sample=sample)
    if not len(held):
        return tuple(float("nan") for _ in spaces)
    return tuple(pair_recall(vectors, a[held], b[held], (10,))[10] for vectors in spaces)


def judge(state: MonthState, policy: GenerationPolicy, options: PublishOptions,
          recall: tuple[float, float] = (float("nan"), float("nan"))) -> Judgement:
    """The month's verdict: ``older`` for a backfill behind a later publication, ``first`` when nothing
    is published before it, ``keep`` when the earlier publication took its IDs from the generation this
    month cut (the month judged again after a backfill), else the staleness figures judged by ``policy``."""
    if state.later is not None:
        return Judgement(older_verdict(state.later.month), {}, None)
    if state.previous is None:
        return judge_first(state.view, policy)
    if state.models.record.origin_month >= state.month:
        verdict = own_generation_verdict(state.models.record.number, state.month, state.previous.month,
                                         options.cut_generation)
        return Judgement(verdict, {}, None)
    return judge_month(state.previous.table, state.origin, state.models, state.view, policy, options, recall)


def publish(state: MonthState, decision: str, reason: str,
            options: PublishOptions) -> tuple[pd.DataFrame, Generation | None]:
    """The month's table after ``decision`` (``reason``: the verdict's summary, kept in a new generation's
    record), and the new generation's record when one is cut."""
    if decision == "older":
        return ids_from_later(state.later.table, state.view.item_ids), None
    previous = None if state.previous is None else state.previous.table
    number = 1 if state.models is None else state.models.record.number + (decision == "cut")
    table = publish_month(decision, previous, state.models, state.view, options, number)
    if decision not in ("first", "cut"):
        return table, None
    record = new_generation_record(number, state.method, state.view, state.serving_aligner, reason,
                                   None if state.models is None else state.models.record.number)
    return table, record
