"""Which aligner serves a month: the newly trained one when it earned it, else the one serving already.

The month's candidate aligner always trains (warm-started from the previous candidate, so
training keeps accumulating), unless the month has too few held-out pairs to judge it. It
then *serves* — its space becomes the month's ``aligned_embeddings`` — only when the aligner
gate accepts it (``core/lifecycle/gate.py``). Otherwise the serving aligner does not change,
and neither do the vectors of the items it already embedded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from semid_assets.core.alignment.content import ContentAligner, is_trained
from semid_assets.core.data.embedding_table import EMBEDDING, embeddings_from_arrow
from semid_assets.core.lifecycle.gate import AlignerGate, AlignerVerdict, judge_aligner

__all__ = ["CANDIDATE_VECTORS", "ServingDecision", "enough_pairs", "decide_serving", "serving_month", "stored_vectors"]

CANDIDATE_VECTORS = "aligner_candidate_vectors"
"""The store's table of the vectors a month's candidate aligner gave every item of that month (written
when it trained): the month's ``aligned_embeddings`` when it serves, the warm start's vectors next month."""


@dataclass(frozen=True)
class ServingDecision:
    serving: object
    """The aligner whose space the month's embeddings live in (trained, or the content stand-in)."""
    accepted: bool
    """Whether the month's candidate became the serving aligner."""
    summary: str
    verdict: AlignerVerdict | None = None


def serving_month(aligner) -> str | None:
    """The month a serving aligner was trained in (None: the content embedding)."""
    return aligner.info.get("month") if is_trained(aligner) else None


def stored_vectors(store, aligner) -> tuple[np.ndarray, np.ndarray] | None:
    """``(item_ids, vectors)`` ``aligner`` gave the items of the month it was trained in, as ``store`` holds
    them: its candidate vectors, else that month's aligned embeddings (``reuse.embed_reusing`` checks
    they are its own); None for the content embedding or none stored."""
    month = serving_month(aligner)
    for table in (CANDIDATE_VECTORS, "aligned_embeddings"):
        # A month's aligned embeddings may be another space (the content embedding served): not read.
        if month is not None and store.exists(table, month=month) and _width(store, table, month) in (
                aligner.out_dim, None):
            return embeddings_from_arrow(store.read_table(table, month=month))
    return None


def _width(store, table: str, month: str) -> int | None:
    """The stored vectors' dimension, from the file's schema (None when it does not say)."""
    kind = pq.read_schema(store.stored_path(table, month=month)).field(EMBEDDING).type
    return kind.list_size if pa.types.is_fixed_size_list(kind) else None


def enough_pairs(heldout_pairs: int, gate: AlignerGate) -> bool:
    return heldout_pairs >= gate.min_heldout_pairs


def decide_serving(candidate, heldout_hits: dict[str, np.ndarray], previous_serving, gate: AlignerGate,
                   modality_dims: dict[str, int]) -> ServingDecision:
    """The month's serving aligner, given the candidate's per-pair held-out hits and the others'.

    ``heldout_hits``: ``qformer`` (the candidate), ``none`` (content embedding), and the serving
    aligner's under ``serving``, or under ``previous`` when it was also the warm start.
    ``previous_serving``: the aligner serving last month (None: nothing yet; the content embedding).
    """
    current = previous_serving if previous_serving is not None else ContentAligner(modality_dims)
    others = {"content embedding": heldout_hits["none"]}
    if is_trained(current):
        others["serving aligner"] = heldout_hits["serving"] if "serving" in heldout_hits else heldout_hits["previous"]
    verdict = judge_aligner(heldout_hits["qformer"], others, gate)
    if verdict.accepted:
        return ServingDecision(candidate, True, f"the new aligner serves: {verdict.summary}", verdict)
    who = f"the {serving_month(current)} aligner" if is_trained(current) else "the content embedding"
    return ServingDecision(current, False, f"{who} keeps serving; new aligner {verdict.summary}", verdict)


@dataclass(frozen=True)
class MonthAlignment:
    """What one month of alignment produced: the training lineage's newest aligner and the one serving."""

    candidate: object
    """The month's trained aligner; the previous one carried over when the month did not retrain
    (the content stand-in when nothing has trained yet)."""
    serving: ServingDecision
    trained: bool
    result: object | None = None
    """The month's ``AlignmentResult`` (training curves, retrieval table) when it trained."""
    summary: str = ""


def heldout_pair_count(pairs, item_ids, holdout: float, seed: int, sample: int | None = None) -> int:
    """How many distinct held-out pairs of ``pairs`` an aligner is judged on (all the split holds out,
    at most ``sample``)."""
    from semid_assets.core.alignment.evaluation import split_pairs, unique_pairs

    a, b, _ = unique_pairs(pairs, item_ids)
    held = int(split_pairs(a, b, item_ids, holdout, seed=seed).sum()) if len(a) else 0
    return held if sample is None else min(held, sample)


def align_and_serve(features, pairs, config, *, month: str, gate: AlignerGate, previous_candidate,
                    previous_serving, holdout: float, warm_start: bool = True, store=None,
                    log=lambda s: None, **alignment) -> MonthAlignment:
    """Train the month's aligner (unless its held-out pairs are too few to judge it), then decide which serves.

    ``previous_candidate`` / ``previous_serving``: the newest stored aligners of earlier months
    (None when there are none). ``alignment``: the remaining arguments of ``align_month``
    (captions, topics, caption_holdout, heldout_sample, stored_vectors).
    """
    from semid_assets.core.alignment.monthly import align_month

    dims = dict(features.dims)
    carried = previous_candidate if previous_candidate is not None else ContentAligner(dims)
    current = previous_serving if previous_serving is not None else ContentAligner(dims)
    heldout = heldout_pair_count(pairs, features.item_ids, holdout, config.seed, alignment.get("heldout_sample"))
    if not enough_pairs(heldout, gate):
        note = (f"not retrained: {heldout} held-out pairs, fewer than the {gate.min_heldout_pairs} needed to judge "
                "an aligner; the serving aligner and its vectors stay as they are")
        log(note)
        return MonthAlignment(carried, ServingDecision(current, False, note), False, None, note)
    start = previous_candidate if warm_start and previous_candidate is not None and is_trained(previous_candidate) \
        else None
    # The serving aligner is compared as its own row unless it is the warm start (then the ``previous`` row).
    compare = current if is_trained(current) and (start is None or serving_month(current) != serving_month(start)) \
        else None
    result = align_month(features, pairs, config, warm_start=start, serving=compare, holdout=holdout, store=store,
                         log=log, **alignment)
    result.aligner.info["month"] = month
    decision = decide_serving(result.aligner, result.heldout_hits, previous_serving, gate, dims)
    log(decision.summary)
    return MonthAlignment(result.aligner, decision, True, result, decision.summary)
