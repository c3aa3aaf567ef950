"""The generations of a dataset, frozen: each one's record, tokenizer and aligner, kept beside the assets.

A generation's models must outlive later re-materialisations of the month it was cut in (a
rerun with other options would overwrite that month's ``tokenizer``), so a cut copies them
here, keyed by the month it was cut in and the method::

    generation/month=2025-10/method=rq_kmeans.parquet            the record (one row)
    generation_tokenizer/month=2025-10/method=rq_kmeans.npz      its tokenizer
    generation_aligner/month=2025-10/method=rq_kmeans.npz        its aligner (or the content stand-in)

Every write is atomic and durable (``core/storage.py``). The past of a method is read from
what is stored, so the pipeline, a notebook and a bench all see the same history.
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from semid_assets.core.lifecycle.generations import Generation
from semid_assets.core.lifecycle.publish import GenerationModels
from semid_assets.core.storage import AssetStore

__all__ = ["GenerationArchive", "RECORD", "TOKENIZER", "ALIGNER"]

RECORD, TOKENIZER, ALIGNER = "generation", "generation_tokenizer", "generation_aligner"


class GenerationArchive:
    def __init__(self, store: AssetStore):
        self.store = store

    def save(self, record: Generation, tokenizer, aligner) -> None:
        """Freeze a generation: models first, the record last (a record always has its models)."""
        where = {"month": record.origin_month, "method": record.method}
        self.store.write_artifact(TOKENIZER, tokenizer, **where)
        self.store.write_artifact(ALIGNER, aligner, **where)
        self.store.write_table(RECORD, pd.DataFrame([asdict(record)]), **where)

    def records(self, method: str) -> list[Generation]:
        """Every stored generation of ``method``, by the month it was cut in."""
        found = []
        for month in self.store.months(RECORD, method=method):
            row = self.store.read_table(RECORD, month=month, method=method).to_pylist()[0]
            found.append(Generation(**{k: (None if pd.isna(v) else v) if k in ("aligner_month", "previous") else v
                                       for k, v in row.items()}))
        return found

    def record(self, method: str, number: int, before: str | None = None) -> Generation:
        """Generation ``number`` of ``method`` — the newest one cut before month ``before`` when several
        chains were cut with that number (a backfill started a chain of its own)."""
        matches = [r for r in self.records(method) if r.number == number
                   and (before is None or r.origin_month <= before)]
        if not matches:
            raise FileNotFoundError(f"generation {number} of {method} is not in the archive "
                                    f"({self.store.root / RECORD}); re-materialise semantic_ids of the month "
                                    "it was cut in")
        return matches[-1]

    def models(self, record: Generation) -> GenerationModels:
        where = {"month": record.origin_month, "method": record.method}
        return GenerationModels(record, self.store.read_artifact(TOKENIZER, **where),
                                self.store.read_artifact(ALIGNER, **where))
