"""The staleness report: what cutting a new generation would gain this month, and what it would cost.

Computed every month from today's data, side by side for the generation (its published codes,
its tokenizer, its aligner's space) and the month's candidate (a tokenizer fitted on this month's
embeddings, anchored to the published IDs):

gains
    ``mse_gain``: the generation's relative MSE on this month's catalogue over the candidate's,
    minus 1 (each in its own space; relative MSE is scale-free). ``new_item_collision_rate``:
    share of this month's new items whose codes were taken under the generation.
    ``recall_gain``: Recall@10 of held-out pairs in the serving aligner's space over the
    generation aligner's, minus 1.
costs
    ``literal_kept`` / ``literal_kept_origin``: share of the published items (of the generation's
    origin items) whose code tuple the candidate keeps literally — what tables keyed by SID see.
    ``matched_kept``: the same after the best one-to-one renaming of each level's codes, reported
    beside it because it hides renaming.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from semid_assets.core.evaluation.stability import compare_codes
from semid_assets.core.lifecycle.generations import PublishedIds

__all__ = ["VersionFit", "staleness_figures", "kept_share", "staleness_over_months", "FIGURES", "FIGURE_COLUMN"]

FIGURES = ("generation_relative_mse", "candidate_relative_mse", "mse_gain", "new_items", "new_item_collision_rate",
           "literal_kept", "literal_kept_origin", "matched_kept", "recall_generation", "recall_serving",
           "recall_gain")
FIGURE_COLUMN = "figure_{}"  # how a stored staleness table carries each of FIGURES (one value per month)


def staleness_over_months(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per month, oldest first: ``month``, ``decision`` and FIGURES, read from each month's stored
    staleness table (whose ``figure_<name>`` columns repeat the month's figures on every row).

    A table stored before the figures were kept as columns has none of them: its month is skipped, not
    shown as zeros."""
    rows = []
    for month in sorted(tables):
        table = tables[month]
        columns = [FIGURE_COLUMN.format(name) for name in FIGURES]
        if not len(table) or not set(columns) <= set(table.columns):
            continue
        first = table.iloc[0]
        rows.append({"month": month, "decision": str(first.get("decision", "")),
                     **{name: float(first[column]) for name, column in zip(FIGURES, columns)}})
    return pd.DataFrame(rows, columns=["month", "decision", *FIGURES])


@dataclass(frozen=True)
class VersionFit:
    """One side of the comparison: a tokenizer, the vectors it quantises (catalogue order), and the codes it
    gives them (the published table's for the generation, the catalogue codes for the candidate)."""

    tokenizer: object
    vectors: np.ndarray
    codes: np.ndarray

    def relative_mse(self) -> float:
        return self.tokenizer.relative_mse(self.vectors, np.asarray(self.codes))


def kept_share(item_ids: np.ndarray, codes: np.ndarray, reference_ids: np.ndarray, reference_codes: np.ndarray) -> float:
    """Share of the reference items whose full code tuple in ``codes`` equals the reference's (NaN: none in common)."""
    rows = pd.Index(pd.Series(np.asarray(item_ids)).astype(str)).get_indexer(
        pd.Series(np.asarray(reference_ids)).astype(str))
    both = rows >= 0
    if not both.any():
        return float("nan")
    same = np.all(np.asarray(codes)[rows[both]] == np.asarray(reference_codes)[both], axis=1)
    return float(same.mean())


def _matched_kept(item_ids, codes, reference: PublishedIds) -> float:
    rows = pd.Index(pd.Series(np.asarray(item_ids)).astype(str)).get_indexer(
        pd.Series(reference.item_ids).astype(str))
    both = rows >= 0
    if not both.any():
        return float("nan")
    report = compare_codes(reference.codes[both], np.asarray(codes)[rows[both]])
    return report.figure("matched_kept", reference.levels)


def staleness_figures(generation: VersionFit, candidate: VersionFit, *, item_ids: np.ndarray, previous: PublishedIds,
                      origin: PublishedIds | None, new_items: int, new_collisions: int,
                      recall_generation: float = float("nan"), recall_serving: float = float("nan")) -> dict[str, float]:
    """The figures of the module docstring, as one flat dict of floats (NaN where not measurable)."""
    generation_mse, candidate_mse = generation.relative_mse(), candidate.relative_mse()
    figures = {
        "generation_relative_mse": generation_mse,
        "candidate_relative_mse": candidate_mse,
        "mse_gain": generation_mse / candidate_mse - 1.0 if candidate_mse > 0 else float("nan"),
        "new_items": float(new_items),
        "new_item_collision_rate": new_collisions / new_items if new_items else 0.0,
        "literal_kept": kept_share(item_ids, candidate.codes, previous.item_ids, previous.codes),
        "literal_kept_origin": (kept_share(item_ids, candidate.codes, origin.item_ids, origin.codes)
                                if origin is not None else float("nan")),
        "matched_kept": _matched_kept(item_ids, candidate.codes, previous),
        "recall_generation": float(recall_generation),
        "recall_serving": float(recall_serving),
    }
    figures["recall_gain"] = (recall_serving / recall_generation - 1.0
                              if np.isfinite(recall_generation) and recall_generation > 0 else float("nan"))
    return figures
