"""A method's past, read from the asset store: which months are published, and the neighbours of a month.

Every stage that needs an earlier (or later) version of a method asks here, so "the earlier
version" means the same thing everywhere: a month whose output is stored. The rules for
*which* earlier month live in ``core/lifecycle/versions.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from semid_assets.core.lifecycle.versions import earlier_month, previous_month
from semid_assets.core.storage import AssetStore

__all__ = ["StoredTable", "MethodHistory", "SEMANTIC_IDS", "TOKENIZER"]

SEMANTIC_IDS, TOKENIZER = "semantic_ids", "tokenizer"


@dataclass(frozen=True)
class StoredTable:
    month: str
    table: pd.DataFrame
    path: str


class MethodHistory:
    """Stored outputs of one method on one dataset."""

    def __init__(self, store: AssetStore, method: str):
        self.store, self.method = store, method

    def months(self, asset: str = SEMANTIC_IDS) -> list[str]:
        return self.store.months(asset, method=self.method)

    def table(self, month: str, asset: str = SEMANTIC_IDS) -> StoredTable:
        path = self.store.path(asset, month, self.method)
        return StoredTable(month, self.store.read_table(asset, month=month, method=self.method).to_pandas(), str(path))

    def previous(self, month: str, asset: str = SEMANTIC_IDS) -> StoredTable | None:
        """The newest stored table of ``asset`` before ``month``."""
        found = previous_month(month, self.months(asset))
        return None if found is None else self.table(found, asset)

    def later(self, month: str, asset: str = SEMANTIC_IDS) -> StoredTable | None:
        """The oldest stored table of ``asset`` after ``month`` (a backfill's source of truth)."""
        after = [m for m in self.months(asset) if m > month]
        return None if not after else self.table(after[0], asset)

    def earlier(self, month: str, months_back: int, asset: str = SEMANTIC_IDS) -> StoredTable | None:
        """The table to compare ``month`` with, ``months_back`` months earlier (``versions.earlier_month``)."""
        found = earlier_month(month, self.months(asset), months_back)
        return None if found is None else self.table(found, asset)

    def previous_model(self, month: str, asset: str = TOKENIZER):
        """``(month, model)`` of the newest stored model of ``asset`` before ``month``, or None."""
        found = previous_month(month, self.months(asset))
        return None if found is None else (found, self.store.read_artifact(asset, month=found, method=self.method))
