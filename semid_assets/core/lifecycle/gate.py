"""Decisions about versions: may a candidate tokenizer start a new generation, may a new aligner serve?

Both decisions are verdicts, never failures: "keep the generation" and "keep the serving
aligner" are normal outcomes, recorded with the figures that led to them.

**Generations.** Each month a candidate tokenizer is fitted, anchored to the published IDs.
:func:`judge_candidate` decides whether it replaces the current generation:

- *gains* — what switching would buy (``core/lifecycle/staleness.py``). An automatic cut needs
  at least one gain past its threshold (or an explicit request);
- *requirements* — what switching must not cost. Quality in absolute terms, and stability of
  the **literal** IDs downstream tables are keyed by, judged against the IDs published now (the
  champion's) and against the generation's origin, so drift cannot pile up one pass at a time;
  the share kept after optimal relabelling is reported beside it but a renamed-but-equivalent
  candidate does not pass on it.

**Aligners.** :func:`judge_aligner` accepts a newly trained aligner only when, on held-out pairs,
it beats both the content embedding and the aligner serving now by more than the noise of the
held-out sample (a paired bootstrap over pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["Requirement", "GenerationPolicy", "Verdict", "judge_candidate", "AlignerGate", "AlignerVerdict",
           "judge_aligner", "paired_difference"]


@dataclass(frozen=True)
class Requirement:
    figure: str
    value: float
    limit: float
    at_least: bool

    @property
    def met(self) -> bool:
        if not np.isfinite(self.value):
            return False
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def shortfall(self) -> str:
        word = "below" if self.at_least else "above"
        return f"{self.figure} is {self.value:.4f}, {word} the limit {self.limit:.4f} by {abs(self.value - self.limit):.4f}"

    def row(self) -> dict:
        return {"figure": self.figure, "value": self.value, "limit": self.limit,
                "rule": "≥" if self.at_least else "≤", "met": self.met}


@dataclass(frozen=True, kw_only=True)
class GenerationPolicy:
    """When a candidate tokenizer replaces the current generation, and what it must not cost."""

    min_mse_gain: float = 0.10
    """Cut when the generation's relative MSE on this month's catalogue exceeds the candidate's by
    at least this share (0.10: the published codes explain 10 % less of the variance)."""
    max_new_item_collision_rate: float = 0.25
    """Cut when more than this share of the month's new items collide under the generation's
    tokenizer (it has no room left for the new content)."""
    min_recall_gain: float = 0.05
    """Cut when the aligner serving now finds held-out partners at least this much more often
    (relative) than the generation's aligner."""
    max_age_months: int = 0
    """Cut a generation this many months old whatever the gains (0: no age limit)."""
    max_relative_mse: float = 0.5
    """Requirement: the candidate's full SIDs leave at most this share of the variance unexplained."""
    min_literal_kept: float = 0.75
    """Requirement: share of the published items whose literal SID the candidate keeps."""
    min_literal_kept_origin: float = 0.7
    """Requirement: share of the generation's origin items whose literal SID the candidate keeps."""

    def __post_init__(self) -> None:
        for name in ("min_mse_gain", "min_recall_gain", "max_relative_mse"):
            if getattr(self, name) < 0:
                raise ValueError(f"GenerationPolicy.{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("max_new_item_collision_rate", "min_literal_kept", "min_literal_kept_origin"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"GenerationPolicy.{name} is a share in [0, 1], got {getattr(self, name)!r}")
        if self.max_age_months < 0:
            raise ValueError(f"GenerationPolicy.max_age_months must be >= 0, got {self.max_age_months!r}")


Decision = Literal["first", "cut", "keep", "refused", "older"]


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    summary: str
    gains: list[Requirement] = field(default_factory=list)
    requirements: list[Requirement] = field(default_factory=list)

    @property
    def new_generation(self) -> bool:
        return self.decision in ("first", "cut")

    @property
    def is_warning(self) -> bool:
        """A refused candidate whose gains called for a cut: the IDs are getting stale and the
        candidate cannot replace them automatically. Worth a look, not a fault."""
        return self.decision == "refused"

    def rows(self) -> list[dict]:
        return [{"kind": "gain", **g.row()} for g in self.gains] + \
               [{"kind": "requirement", **r.row()} for r in self.requirements]


def _gains(figures: dict[str, float], policy: GenerationPolicy, age_months: int) -> list[Requirement]:
    gains = [Requirement("relative MSE gain (generation vs candidate)", figures["mse_gain"], policy.min_mse_gain, True),
             Requirement("new items colliding under the generation", figures["new_item_collision_rate"],
                         policy.max_new_item_collision_rate, False)]
    if np.isfinite(figures.get("recall_gain", float("nan"))):
        gains.append(Requirement("held-out recall gain (serving vs generation aligner)", figures["recall_gain"],
                                 policy.min_recall_gain, True))
    if policy.max_age_months:
        gains.append(Requirement("generation age (months)", float(age_months), float(policy.max_age_months), False))
    return gains


def _passed(gain: Requirement) -> bool:
    """A gain "passes" when it calls for a cut: past its threshold on the side that hurts."""
    if not np.isfinite(gain.value):
        return False
    return gain.value >= gain.limit if gain.at_least else gain.value > gain.limit


def _requirements(figures: dict[str, float], policy: GenerationPolicy) -> list[Requirement]:
    found = [Requirement("candidate relative MSE (full SID)", figures["candidate_relative_mse"],
                         policy.max_relative_mse, False),
             Requirement("literal SIDs kept vs published", figures["literal_kept"], policy.min_literal_kept, True)]
    if np.isfinite(figures.get("literal_kept_origin", float("nan"))):
        found.append(Requirement("literal SIDs kept vs generation origin", figures["literal_kept_origin"],
                                 policy.min_literal_kept_origin, True))
    return found


def judge_candidate(figures: dict[str, float], policy: GenerationPolicy, *, generation: int, age_months: int,
                    requested: bool = False) -> Verdict:
    """Keep generation ``generation``, or cut the next one from the candidate (see the module docstring).

    ``figures``: the staleness figures (:func:`~semid_assets.core.lifecycle.staleness.staleness_figures`).
    ``requested``: an explicit request to cut (from the launchpad); it skips the gains and the
    requirements (the person asking owns the trade-off) and the verdict still lists them.
    """
    gains = _gains(figures, policy, age_months)
    requirements = _requirements(figures, policy)
    passing = [g for g in gains if _passed(g)]
    unmet = [r for r in requirements if not r.met]
    if requested:
        return Verdict("cut", f"generation {generation + 1} cut on request", gains, requirements)
    if not passing:
        return Verdict("keep", f"generation {generation} kept: no gain past its threshold "
                       f"({'; '.join(_gain_text(g) for g in gains)})", gains, requirements)
    if unmet:
        return Verdict("refused", f"generation {generation} kept, candidate not promoted although "
                       f"{'; '.join(_gain_text(g) for g in passing)}: "
                       + "; ".join(r.shortfall() for r in unmet), gains, requirements)
    return Verdict("cut", f"generation {generation + 1} cut: " + "; ".join(_gain_text(g) for g in passing),
                   gains, requirements)


def _gain_text(gain: Requirement) -> str:
    return f"{gain.figure} {gain.value:.4f} (threshold {gain.limit:.4f})"


def first_verdict(figures: dict[str, float], policy: GenerationPolicy) -> Verdict:
    """The first publication of a method: generation 1, whatever the figures (there must be IDs);
    a quality shortfall is reported in the summary."""
    quality = Requirement("candidate relative MSE (full SID)", figures["candidate_relative_mse"],
                          policy.max_relative_mse, False)
    note = "" if quality.met else f"; note: {quality.shortfall()}"
    return Verdict("first", "generation 1: the first published IDs" + note, [], [quality])


def older_verdict(newest_month: str) -> Verdict:
    return Verdict("older", f"older than the champion (newest published month {newest_month}); not promoted: "
                   "IDs taken from the published generation")


def own_generation_verdict(number: int, month: str, backfilled_month: str, requested: bool = False) -> Verdict:
    """A month judged again after an earlier month took its IDs from the generation this month cut
    (a backfill): that generation is kept, even on request, since cutting it again would change IDs
    already published."""
    refused = "; the requested cut is not made" if requested else ""
    return Verdict("keep", f"generation {number} kept: it was cut in {month}, and {backfilled_month} already "
                   f"publishes its IDs (backfilled after this month); cutting again would change them{refused}")


# ---------------------------------------------------------------------- aligners

@dataclass(frozen=True, kw_only=True)
class AlignerGate:
    """When a newly trained aligner may serve (its space becomes the month's embeddings)."""

    min_heldout_pairs: int = 50
    """Held-out pairs needed to judge an aligner (about ten times as many pairs in all); a month with
    fewer does not retrain, so a sparse month cannot move the training lineage on a few hundred pairs."""
    margin: float = 0.0
    """Recall@10 gain (absolute) the lower end of the interval must exceed."""
    level: float = 0.95
    """Confidence level of the paired-bootstrap interval."""
    n_boot: int = 1000
    """Bootstrap resamples of the held-out pairs."""
    seed: int = 0
    """Seeds the bootstrap: the same pairs and seed give the same verdict."""

    def __post_init__(self) -> None:
        if self.min_heldout_pairs < 1 or self.n_boot < 10:
            raise ValueError("AlignerGate needs min_heldout_pairs >= 1 and n_boot >= 10")
        if not 0.5 < self.level < 1.0:
            raise ValueError(f"AlignerGate.level must be in (0.5, 1), got {self.level!r}")


@dataclass(frozen=True)
class AlignerVerdict:
    accepted: bool
    summary: str
    comparisons: list[dict]


def paired_difference(hits_a: np.ndarray, hits_b: np.ndarray, *, n_boot: int, level: float,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``hits_a - hits_b`` over pairs and its percentile interval under a bootstrap of the pairs."""
    diff = np.asarray(hits_a, dtype=np.float64) - np.asarray(hits_b, dtype=np.float64)
    if not len(diff):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for i in range(n_boot):
        means[i] = diff[rng.integers(0, len(diff), len(diff))].mean()
    tail = (1.0 - level) / 2
    return float(diff.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def judge_aligner(candidate_hits: np.ndarray, others: dict[str, np.ndarray], gate: AlignerGate) -> AlignerVerdict:
    """Accept the candidate when, against every representation in ``others`` (name → per-pair hits),
    the lower end of the paired-bootstrap interval of its recall gain exceeds ``gate.margin``."""
    rows, short = [], []
    for name, hits in others.items():
        mean, low, high = paired_difference(candidate_hits, hits, n_boot=gate.n_boot, level=gate.level,
                                            seed=gate.seed)
        beats = bool(np.isfinite(low) and low > gate.margin)
        rows.append({"versus": name, "recall_gain": mean, "interval_low": low, "interval_high": high,
                     "beats": beats})
        if not beats:
            short.append(f"vs {name}: gain {mean:+.4f}, interval [{low:+.4f}, {high:+.4f}] does not clear "
                         f"{gate.margin:+.4f}")
    if short:
        return AlignerVerdict(False, "not accepted: " + "; ".join(short), rows)
    return AlignerVerdict(True, "accepted: beats " + ", ".join(others) + " beyond the held-out noise", rows)
