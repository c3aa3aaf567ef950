"""One month of one method's published IDs: keep the generation or cut a new one, and say why.

The three month × method stages call these functions in order:

1. :func:`month_view` gathers what the month knows: the catalogue, the generation's vectors
   (its own aligner's space), the candidate tokenizer and its codes.
2. :func:`judge_month` extends the generation with the month's new items (what publishing
   without a cut gives), computes the staleness figures and the verdict.
3. :func:`publish_month` returns the table to publish: the extension, or the first table of the
   next generation (the candidate's codes, anchored and held to the published IDs).

Backfilling a month older than the newest published one never decides anything: its items
take the IDs a later publication gave them (:func:`ids_from_later`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from semid_assets.core.alignment.content import is_trained
from semid_assets.core.data.schema import ITEM_ID
from semid_assets.core.lifecycle.gate import GenerationPolicy, Verdict, first_verdict, judge_candidate
from semid_assets.core.lifecycle.generations import (Generation, cut_generation, extend_generation,
                                                     first_generation, new_item_mask, published)
from semid_assets.core.lifecycle.codes_cache import CodesCache, codes_digest
from semid_assets.core.lifecycle.hysteresis import candidate_codes
from semid_assets.core.lifecycle.staleness import VersionFit, staleness_figures
from semid_assets.core.lifecycle.versions import months_apart
from semid_assets.core.tokenizers.sids import SUFFIX

__all__ = ["GenerationModels", "MonthView", "Judgement", "month_view", "judge_month", "judge_first",
           "publish_month", "ids_from_later", "PublishOptions"]


@dataclass(frozen=True, kw_only=True)
class PublishOptions:
    """How a month's IDs are published."""

    collision_strategy: str = "suffix"
    """``suffix``: an item whose code tuple is taken keeps its codes and takes the lowest free
    suffix. ``reassign``: it first moves to its nearest free last-level code (L tokens kept)."""
    reassign_candidates: int = 16
    """Nearest last-level codes a colliding item may move to under ``reassign``."""
    hysteresis: float = 0.0
    """A candidate keeps an item's published code at a level unless another code leaves less
    residual energy by more than this share of the residual's own energy (0: its own codes)."""
    cut_generation: bool = False
    """Cut a new generation this month whatever the staleness figures (the verdict still lists them)."""

    def __post_init__(self) -> None:
        if self.collision_strategy not in ("suffix", "reassign"):
            raise ValueError(f"collision_strategy must be 'suffix' or 'reassign', got {self.collision_strategy!r}")
        if self.reassign_candidates < 1 or self.hysteresis < 0:
            raise ValueError("reassign_candidates must be >= 1 and hysteresis >= 0")


@dataclass(frozen=True)
class GenerationModels:
    record: Generation
    tokenizer: object
    aligner: object


@dataclass(frozen=True)
class MonthView:
    month: str
    item_ids: np.ndarray
    serving_vectors: np.ndarray
    """``aligned_embeddings``: the serving aligner's space, which the candidate was fitted in."""
    generation_vectors: np.ndarray
    """The generation aligner's vectors of every item (the serving ones when it is the same aligner)."""
    candidate: object
    candidate_codes: np.ndarray


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    figures: dict[str, float]
    extended: pd.DataFrame | None
    """The table publishing without a cut gives (None for a first publication)."""


def _previous_codes(previous: pd.DataFrame | None, item_ids: np.ndarray, levels: int) -> np.ndarray | None:
    if previous is None:
        return None
    before = published(previous)
    rows = pd.Index(pd.Series(before.item_ids).astype(str)).get_indexer(pd.Series(np.asarray(item_ids)).astype(str))
    codes = np.full((len(item_ids), levels), -1, dtype=np.int64)
    codes[rows >= 0] = before.codes[rows[rows >= 0]]
    return codes


def month_view(month: str, item_ids: np.ndarray, serving_vectors: np.ndarray, serving_aligner_month: str | None,
               candidate, previous: pd.DataFrame | None, models: GenerationModels | None, options: PublishOptions,
               embed_in_generation, encode_catalogue=None, cache: CodesCache | None = None) -> MonthView:
    """What the month knows. ``embed_in_generation()``: the generation aligner's vectors of every item,
    called only when the generation's aligner is not the one serving now. ``encode_catalogue``: as
    :func:`~semid_assets.core.lifecycle.hysteresis.candidate_codes` takes it. ``cache``: where the
    candidate's codes are kept for the month's other step that needs them."""
    same_space = models is None or models.record.aligner_month == serving_aligner_month
    generation_vectors = serving_vectors if same_space else embed_in_generation()
    previous_codes = _previous_codes(previous, item_ids, candidate.levels)

    def compute() -> np.ndarray:
        return candidate_codes(candidate, serving_vectors, previous_codes, options.hysteresis, encode_catalogue)

    codes = compute() if cache is None else cache.codes(
        codes_digest(candidate, item_ids, serving_vectors, previous_codes, options.hysteresis), compute)
    return MonthView(month, np.asarray(item_ids), serving_vectors, generation_vectors, candidate, codes)


def _extend(previous: pd.DataFrame, models: GenerationModels, view: MonthView,
            options: PublishOptions) -> tuple[pd.DataFrame, int, int]:
    """The generation extended with the month's new items; returns the table, new items, collided new items."""
    is_new = new_item_mask(published(previous), view.item_ids)
    vectors = view.generation_vectors[is_new]
    codes = models.tokenizer.encode(vectors) if len(vectors) else np.zeros((0, models.tokenizer.levels), np.int32)
    candidates = None
    if options.collision_strategy == "reassign" and len(vectors):
        candidates = models.tokenizer.last_level_candidates(vectors, codes, options.reassign_candidates)
    table, moved = extend_generation(previous, view.item_ids, codes, view.month, candidates=candidates)
    collided = int((table.loc[is_new, SUFFIX] > 0).sum()) + moved
    return table, int(is_new.sum()), collided


def judge_first(view: MonthView, policy: GenerationPolicy) -> Judgement:
    figures = {"candidate_relative_mse": view.candidate.relative_mse(view.serving_vectors, view.candidate_codes),
               "new_items": float(len(view.item_ids))}
    return Judgement(first_verdict(figures, policy), figures, None)


def judge_month(previous: pd.DataFrame, origin: pd.DataFrame | None, models: GenerationModels, view: MonthView,
                policy: GenerationPolicy, options: PublishOptions,
                recall: tuple[float, float] = (float("nan"), float("nan"))) -> Judgement:
    """Staleness figures and the verdict for a month continuing ``models``' generation.
    ``recall``: held-out Recall@10 in the generation aligner's space and in the serving one's."""
    extended, new_items, collided = _extend(previous, models, view, options)
    now = published(extended)
    figures = staleness_figures(
        VersionFit(models.tokenizer, view.generation_vectors, now.codes),
        VersionFit(view.candidate, view.serving_vectors, view.candidate_codes),
        item_ids=view.item_ids, previous=published(previous), origin=None if origin is None else published(origin),
        new_items=new_items, new_collisions=collided, recall_generation=recall[0], recall_serving=recall[1])
    verdict = judge_candidate(figures, policy, generation=models.record.number,
                              age_months=months_apart(models.record.origin_month, view.month),
                              requested=options.cut_generation)
    return Judgement(verdict, figures, extended)


def publish_month(decision: str, previous: pd.DataFrame | None, models: GenerationModels | None, view: MonthView,
                  options: PublishOptions, number: int) -> pd.DataFrame:
    """The table to publish after ``decision`` (a :class:`Verdict`'s): the generation extended with the
    month's new items (``keep``, ``refused``), or generation ``number``'s first table from the candidate
    (``first``, ``cut``). A backfilled month (``older``) is published by :func:`ids_from_later` instead."""
    if decision in ("keep", "refused"):
        return _extend(previous, models, view, options)[0]
    if decision not in ("first", "cut"):
        raise ValueError(f"publish_month publishes a kept or new generation, not {decision!r}")
    candidates = None
    if options.collision_strategy == "reassign":
        candidates = view.candidate.last_level_candidates(view.serving_vectors, view.candidate_codes,
                                                          options.reassign_candidates)
    if previous is None:
        return first_generation(view.item_ids, view.candidate_codes, view.month, number=number,
                                candidates=candidates)[0]
    return cut_generation(previous, view.item_ids, view.candidate_codes, view.month, number,
                          candidates=candidates)[0]


def ids_from_later(later: pd.DataFrame, item_ids: np.ndarray) -> pd.DataFrame:
    """A backfilled month's table: each item's row as the oldest later publication holds it."""
    rows = pd.Index(later[ITEM_ID].astype(str)).get_indexer(pd.Series(np.asarray(item_ids)).astype(str))
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} item(s) of this month are missing from the later publication "
                         "they should be in; a month's catalogue must be part of every later month's")
    return later.iloc[rows].reset_index(drop=True)


def new_generation_record(number: int, method: str, view: MonthView, serving_aligner, reason: str,
                          previous: int | None) -> Generation:
    """The record of a generation cut this month from the candidate and the serving aligner."""
    aligner_month = serving_aligner.info.get("month") if is_trained(serving_aligner) else None
    return Generation(number=number, method=method, origin_month=view.month, aligner_month=aligner_month,
                      reason=reason, previous=previous)
