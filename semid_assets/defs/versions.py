"""Finding another version's stored outputs: which earlier months exist, and where their files are.

An asset that compares this version with an earlier one cannot declare the earlier one
as an ordinary input: how far back to look is run configuration, and the demo (or a
partial backfill) leaves most months unmaterialised, which a static partition mapping
would turn into a failed run. So "exists" means *materialised*: the Dagster instance
holds a materialisation of that partition, and that record's ``path`` metadata (written
by the IO manager) says which file to read. The chosen partition, its run id and path go
into the comparing asset's metadata, which keeps the lineage visible in the UI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd

from semid_assets.partitions import SemidPartitions


@dataclass(frozen=True)
class StoredVersion:
    month: str
    partition: str
    path: Path
    run_id: str

    def metadata(self, prefix: str) -> dict:
        return {f"{prefix}_month": self.month, f"{prefix}_partition": self.partition,
                f"{prefix}_path": dg.MetadataValue.path(str(self.path)), f"{prefix}_run_id": self.run_id}


def months_apart(earlier: str, later: str) -> int:
    return (pd.Period(later, freq="M") - pd.Period(earlier, freq="M")).n


def choose_earlier(month: str, available: list[str], months_back: int) -> str | None:
    """The version to compare ``month`` with: ``months_back`` months earlier if available, else the
    oldest available version within those months, else the newest one before them; None if none is earlier.
    """
    if months_back < 1:
        raise ValueError(f"months_back must be >= 1, got {months_back}")
    earlier = sorted(m for m in available if m < month)
    if not earlier:
        return None
    within = [m for m in earlier if months_apart(m, month) <= months_back]
    return within[0] if within else earlier[-1]


def stored(instance: dg.DagsterInstance, asset: str, partition: str | dg.MultiPartitionKey, month: str,
           dataset: str) -> StoredVersion | None:
    """The newest materialisation of ``asset`` at ``partition`` of ``dataset`` whose file still exists.

    One Dagster instance serves every dataset of a home and asset keys do not name the dataset,
    so a record counts only if its file lies in the IO manager's folder of ``dataset``
    (``assets/<dataset>/…``).
    """
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[str(partition)]), limit=50).records
    for record in records:
        path = record.asset_materialization.metadata.get("path")
        if path is not None and dataset in Path(path.value).parts:
            return StoredVersion(month, str(partition), Path(path.value), record.run_id) \
                if Path(path.value).exists() else None
    return None


def stored_sids(instance: dg.DagsterInstance, parts: SemidPartitions, month: str, method: str,
                dataset: str) -> StoredVersion | None:
    return stored(instance, "semantic_ids", parts.month_method_key(month, method), month, dataset)


def earlier_sids(instance: dg.DagsterInstance, parts: SemidPartitions, month: str, method: str,
                 months_back: int, dataset: str) -> StoredVersion | None:
    """The stored semantic IDs of the version to compare with (see :func:`choose_earlier`)."""
    found = {}
    for candidate in parts.month.get_partition_keys():
        if candidate < month:
            version = stored_sids(instance, parts, candidate, method, dataset)
            if version is not None:
                found[candidate] = version
    chosen = choose_earlier(month, list(found), months_back)
    return None if chosen is None else found[chosen]


def previous_tokenizer(instance: dg.DagsterInstance, parts: SemidPartitions, month: str,
                       method: str, dataset: str) -> StoredVersion | None:
    """The newest stored tokenizer of ``method`` for a month before ``month`` (what anchoring starts from)."""
    for candidate in sorted((m for m in parts.month.get_partition_keys() if m < month), reverse=True):
        version = stored(instance, "tokenizer", parts.month_method_key(candidate, method), candidate, dataset)
        if version is not None:
            return version
    return None
