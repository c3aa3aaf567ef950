"""The promotion rule: may this tokenizer version replace the champion?

A candidate is promoted when its reconstruction quality is good enough in absolute
terms and not much worse than the champion's, and when it is stable enough against the
champion that switching does not reshuffle the IDs downstream models have learned.
With no champion yet, quality alone decides. Each failed requirement is reported with
the figure, its limit and the margin, so the refusal says what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GateLimits", "Requirement", "promotion_requirements"]


@dataclass(frozen=True)
class GateLimits:
    max_relative_mse: float = 0.5
    """Fraction of the embeddings' variance the full SID may leave unexplained."""
    max_mse_regression: float = 0.05
    """How much worse (relative) than the champion's relative MSE the candidate may be."""
    min_ari: float = 0.5
    """Adjusted Rand index at prefix length 1 against the champion, on the items both encode."""
    min_matched_kept: float = 0.8
    """Share of the common items whose full SID, after optimally matching the champion's codes to
    the candidate's, is unchanged (label-free: an unanchored retrain is not penalised for renaming)."""


@dataclass(frozen=True)
class Requirement:
    figure: str
    value: float
    limit: float
    at_least: bool

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def shortfall(self) -> str:
        word = "below" if self.at_least else "above"
        return f"{self.figure} is {self.value:.4f}, {word} the limit {self.limit:.4f} by {abs(self.value - self.limit):.4f}"


def promotion_requirements(limits: GateLimits, relative_mse: float, champion_relative_mse: float | None = None,
                           ari: float | None = None, matched_kept: float | None = None) -> list[Requirement]:
    """What the candidate must meet; the stability figures apply only when there is a champion to compare with."""
    found = [Requirement("relative MSE (full SID)", relative_mse, limits.max_relative_mse, at_least=False)]
    if champion_relative_mse is not None:
        found.append(Requirement("relative MSE vs champion's", relative_mse,
                                 champion_relative_mse * (1.0 + limits.max_mse_regression), at_least=False))
    if ari is not None:
        found.append(Requirement("ARI at prefix length 1 vs champion", ari, limits.min_ari, at_least=True))
    if matched_kept is not None:
        found.append(Requirement("matched full SID kept vs champion", matched_kept,
                                 limits.min_matched_kept, at_least=True))
    return found
