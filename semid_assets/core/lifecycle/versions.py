"""Version identity: what names a version, how models are named, which version is "the earlier one".

A *version* is one month's fit of one method on one dataset: what the pipeline knew at that
month's end. This module is the one place that spells model names and the rules for picking
an earlier version; every stage asks it instead of building names or searching by hand.

Which months exist is not decided here: the caller passes the months that are stored (the
asset store lists them), so the same rule serves the pipeline, the benches and a notebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["ALIGNER", "VersionKey", "model_name", "generation_alias", "month_shift", "months_apart",
           "earlier_month", "previous_month", "check_month"]

ALIGNER = "aligner"
"""The ``method`` of aligner versions: their model is ``semid-<dataset>-aligner``."""

NEWEST_ALIAS = "newest"
"""Follows the newest *month* (MLflow reserves ``latest`` for the highest version number,
which a backfill of an old month would take)."""

CHAMPION_ALIAS = "champion"
"""The tokenizer version that publishes the current generation's IDs."""

SERVING_ALIAS = "serving"
"""The aligner version whose space the newest month's embeddings live in."""


def check_month(month: str) -> str:
    """``month`` if it is a ``YYYY-MM`` key, else a ValueError that says the format."""
    try:
        period = pd.Period(month, freq="M")
    except (ValueError, TypeError):
        raise ValueError(f"{month!r} is not a month key; months are written YYYY-MM, e.g. 2025-10") from None
    if period.strftime("%Y-%m") != month:
        raise ValueError(f"{month!r} is not a month key; months are written YYYY-MM, e.g. 2025-10")
    return month


def model_name(dataset: str, method: str) -> str:
    """The registered model of ``method``'s versions on ``dataset``: ``semid-<dataset>-<method>``."""
    return f"semid-{dataset}-{method}"


def generation_alias(number: int) -> str:
    """The MLflow alias of generation ``number`` (``gen-3``)."""
    if number < 1:
        raise ValueError(f"generations are numbered from 1, got {number}")
    return f"gen-{number}"


@dataclass(frozen=True, order=True)
class VersionKey:
    dataset: str
    month: str
    method: str

    def __post_init__(self) -> None:
        check_month(self.month)

    @property
    def model_name(self) -> str:
        return model_name(self.dataset, self.method)

    def tags(self) -> dict[str, str]:
        """The tags that identify this version in the registry and in run records."""
        return {"dataset": self.dataset, "month": self.month, "method": self.method}


def month_shift(month: str, months: int) -> str:
    """The month ``months`` after ``month`` (negative: before)."""
    return (pd.Period(check_month(month), freq="M") + months).strftime("%Y-%m")


def months_apart(earlier: str, later: str) -> int:
    return (pd.Period(check_month(later), freq="M") - pd.Period(check_month(earlier), freq="M")).n


def previous_month(month: str, available: list[str]) -> str | None:
    """The newest available month strictly before ``month`` (what a new version continues from)."""
    earlier = [m for m in available if m < month]
    return max(earlier) if earlier else None


def earlier_month(month: str, available: list[str], months_back: int) -> str | None:
    """The version to compare ``month`` with, ``months_back`` months earlier.

    The newest available month at or before ``month - months_back`` (a gap of at least the
    horizon asked for); when none is that old, the oldest available month before ``month``
    (the longest gap there is). None when nothing is earlier.
    """
    if months_back < 1:
        raise ValueError(f"months_back must be >= 1, got {months_back}")
    earlier = sorted(m for m in available if m < month)
    if not earlier:
        return None
    target = month_shift(month, -months_back)
    old_enough = [m for m in earlier if m <= target]
    return old_enough[-1] if old_enough else earlier[0]
