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

from semid_assets.core.alignment.content import ContentAligner, is_trained
from semid_assets.core.lifecycle.gate import AlignerGate, AlignerVerdict, judge_aligner

__all__ = ["ServingDecision", "enough_pairs", "decide_serving", "serving_month"]


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
