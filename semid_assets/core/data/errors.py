"""The error every refusal of bad input raises, and how a refusal shows the offending values."""

from __future__ import annotations


class ContractError(ValueError):
    """Input data that breaks the documented table contract; the message names the fix."""


def examples(values, limit: int = 5) -> str:
    """Up to ``limit`` offending values, comma-separated, with "…" when there are more."""
    shown = [repr(v) for v in list(values)[:limit]]
    return ", ".join(shown) + (" …" if len(values) > limit else "")
