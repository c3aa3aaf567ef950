"""AUC per slice with intervals over users and over items, verdicts, and the anomalies a reader must see.

Each slice of the evaluation rows (``ranking_data.SLICES``) gets two bootstraps: one over
users (items held fixed) and one over items (users held fixed). Both resample every
evaluation user (item) and weight the slice's rows by their draws, with one seed for all
slices, so a user (item) carries the same weight in every slice and every model scored on
the rows shares the replicates (paired differences). The wider of the two intervals decides:

- an AUC whose wider interval is wider than ``undecided_width`` is "too few to decide";
- a difference from ``hash`` is "better" or "worse" only when both intervals exclude zero;
- an AUC whose interval over users or over items lies below 0.5 is an *anomaly*: a model
  that ranks worse than a coin. It is diagnosed by splitting the AUC into its
  between-item part (each impression scored by its item's mean score: does the model
  order the slice's items by their click rates?) and its within-item part (scores
  centred per item: for one item, does it tell the users who click from those who do not?).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from semid_assets.core.evaluation.auc import ClusterBootstrap, Interval, auc
from semid_assets.core.evaluation.ranking_data import SLICES, MonthData

__all__ = ["TOO_FEW", "SliceScore", "Slices", "Anomaly", "undecided", "difference_verdict", "diagnose"]

TOO_FEW = "too few to decide"


@dataclass(frozen=True)
class SliceScore:
    """One model's AUC on one slice, with both intervals and the replicates for paired differences."""

    estimate: float
    users: Interval
    items: Interval
    user_replicates: np.ndarray
    item_replicates: np.ndarray
    impressions: int

    @property
    def wider(self) -> str:
        if not (np.isfinite(self.users.width) and np.isfinite(self.items.width)):
            return ""
        return "items" if self.items.width > self.users.width else "users"

    @property
    def width(self) -> float:
        return float(max(self.users.width, self.items.width))

    def below_chance(self) -> bool:
        return bool(self.users.high < 0.5 or self.items.high < 0.5)


@dataclass(frozen=True)
class Anomaly:
    model: str
    slice: str
    auc: float
    users: Interval
    items: Interval
    cause: str

    def message(self) -> str:
        return (f"{self.model} ranks the {self.slice} slice below chance: AUC {self.auc:.3f}, "
                f"interval over users [{self.users.low:.3f}, {self.users.high:.3f}], over items "
                f"[{self.items.low:.3f}, {self.items.high:.3f}]. {self.cause}")


class Slices:
    """The slices of one month's evaluation rows and their bootstraps."""

    def __init__(self, data: MonthData, n_boot: int, seed: int, level: float):
        self.data = data
        self.rows = {name: data.slice_rows(name) for name in SLICES}
        n_users = int(data.eval_user_groups.max()) + 1 if len(data.eval_user_groups) else 0
        item_groups, item_index = pd.factorize(data.eval_items)
        self._boot = {}
        for name, rows in self.rows.items():
            labels = data.eval_labels[rows]
            self._boot[name] = (
                ClusterBootstrap(labels, data.eval_user_groups[rows], n_groups=n_users, n_boot=n_boot, seed=seed,
                                 level=level),
                ClusterBootstrap(labels, item_groups[rows], n_groups=len(item_index), n_boot=n_boot, seed=seed + 1,
                                 level=level))

    def counts(self) -> pd.DataFrame:
        """One row per slice: its items, impressions, positive share and users."""
        out = []
        for name, rows in self.rows.items():
            labels = self.data.eval_labels[rows]
            out.append({"slice": name, "items": int(len(np.unique(self.data.eval_items[rows]))),
                        "impressions": int(rows.sum()),
                        "positive share": float(labels.mean()) if rows.any() else float("nan"),
                        "users": int(len(np.unique(self.data.eval_user_groups[rows])))})
        return pd.DataFrame(out)

    def score(self, name: str, scores: np.ndarray) -> SliceScore:
        rows = self.rows[name]
        users, items = self._boot[name]
        part = scores[rows]
        estimate = auc(self.data.eval_labels[rows], part) if rows.any() else float("nan")
        user_replicates, item_replicates = users.auc_replicates(part), items.auc_replicates(part)
        return SliceScore(estimate, users.interval(estimate, user_replicates), items.interval(estimate, item_replicates),
                          user_replicates, item_replicates, int(rows.sum()))

    def difference(self, name: str, a: SliceScore, b: SliceScore) -> tuple[Interval, Interval]:
        """Intervals of ``a − b`` over users and over items (paired: the same replicates)."""
        users, items = self._boot[name]
        return (users.difference(a.estimate, a.user_replicates, b.estimate, b.user_replicates),
                items.difference(a.estimate, a.item_replicates, b.estimate, b.item_replicates))


def undecided(score: SliceScore, undecided_width: float) -> str:
    """Why the AUC is not a usable number ("" when it is): "too few to decide" when the wider
    interval exceeds ``undecided_width``."""
    if not np.isfinite(score.estimate):
        return "one class only" if score.impressions else "no impressions"
    if not np.isfinite(score.width) or score.width > undecided_width:
        return TOO_FEW
    return ""


def difference_verdict(users: Interval, items: Interval, undecided_width: float) -> str:
    if not (np.isfinite(users.width) and np.isfinite(items.width)):
        return "—"
    if max(users.width, items.width) > undecided_width:
        return TOO_FEW
    if users.low > 0 and items.low > 0:
        return "better"
    if users.high < 0 and items.high < 0:
        return "worse"
    return "no difference shown"


def diagnose(labels: np.ndarray, scores: np.ndarray, items: np.ndarray, oov_share: float) -> str:
    """Why a slice's AUC is below chance, in figures: between-item vs within-item AUC, the OOV share."""
    frame = pd.DataFrame({"item": items, "score": scores})
    item_mean = frame.groupby("item")["score"].transform("mean").to_numpy()
    between, within = auc(labels, item_mean), auc(labels, scores - item_mean)
    n_items = int(frame["item"].nunique())
    if np.isfinite(between) and between < 0.5 <= within:
        cause = (f"Between items the AUC is {between:.3f} over {n_items} items, within items {within:.3f}: the "
                 f"model orders this slice's items against their click rates, while telling users apart on "
                 f"each item; with this few items that order rests on a handful of them.")
    elif np.isfinite(within) and within < 0.5:
        cause = (f"Within items the AUC is {within:.3f} (between items {between:.3f}, {n_items} items): for one "
                 f"and the same item, the users who click score lower, so the user side is inverted here.")
    else:
        cause = f"Between items {between:.3f}, within items {within:.3f}, {n_items} items."
    return f"{cause} {oov_share:.0%} of these items' features sit on the OOV row."
