"""The Dagster IO manager: asset outputs in :class:`~semid_assets.core.storage.AssetStore`'s layout.

Tables become Parquet, fitted objects ``.npz`` (no pickle), each written atomically and
durably by the store; the written file's ``path`` goes into the materialisation's metadata,
which is how other assets find another version's outputs (``defs/versions.py``). An asset
that writes its own output through the store first (the ``tokenizer`` and ``aligner``, which
register the durable file in MLflow, and ``semantic_ids``, which moves aliases after its table)
returns a ``MaterializeResult`` without a value and its own ``path`` metadata: nothing is
written a second time here. Each run starts by sweeping killed writers' temporary files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from semid_assets.core.artifact import Artifact
from semid_assets.core.storage import (  # noqa: F401  (load/save/write: the names callers imported from here)
    AssetStore,
    load_artifact,
    partition_name,
    save_artifact,
    write_parquet_atomically,
)
from semid_assets.partitions import METHOD, MONTH


def partition_location(partition_key: str | dg.MultiPartitionKey | None) -> dict[str, str | None]:
    """The store's ``month``/``method`` of a Dagster partition key."""
    if partition_key is None:
        return {"month": None, "method": None}
    if isinstance(partition_key, dg.MultiPartitionKey):
        dims = dict(partition_key.keys_by_dimension)
        if set(dims) != {MONTH, METHOD}:
            raise ValueError(f"semid stores month or month×method partitions, not {sorted(dims)}")
        return {"month": dims[MONTH], "method": dims[METHOD]}
    return {"month": str(partition_key), "method": None}


def partition_path(partition_key: str | dg.MultiPartitionKey | None) -> str:
    """The partition's file stem inside its asset folder (``2025-03``, ``month=2025-03/method=rq_kmeans``)."""
    return partition_name(**partition_location(partition_key))


class SemidIOManager(dg.ConfigurableIOManager):
    """Stores each asset partition as ``<root>/<asset>/<partition>.(parquet|npz)``."""

    root: str

    def store(self) -> AssetStore:
        return AssetStore(Path(self.root))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every run that writes assets first removes the temporary files of writers that were
        # killed (a live writer's, e.g. a `semid demo` beside the daemon, are kept), one log line each.
        self.store().sweep_temporaries(log=context.log.info if context.log else print)

    @staticmethod
    def _asset(asset_key: dg.AssetKey) -> str:
        return "/".join(asset_key.path)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        partition = context.partition_key if context.has_asset_partitions else None
        if isinstance(partition, str) and context.has_asset_partitions:
            partition = self._as_multi(context, partition)
        asset, where = self._asset(context.asset_key), partition_location(partition)
        if isinstance(obj, (pd.DataFrame, pa.Table)):
            path = self.store().write_table(asset, obj, **where)
        elif isinstance(obj, Artifact):
            path = self.store().write_artifact(asset, obj, **where)
        else:
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned a {type(obj).__name__}; semid stores "
                f"DataFrames, Arrow tables and objects with to_arrays/from_arrays."
            )
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        keys = context.asset_partition_keys if context.has_asset_partitions else [None]
        upstream_multi = context.has_asset_partitions and isinstance(
            context.upstream_output.asset_partitions_def if context.upstream_output else None,
            dg.MultiPartitionsDefinition)
        values = {}
        for key in keys:
            partition = key
            if key is not None and upstream_multi and not isinstance(key, dg.MultiPartitionKey):
                partition = context.upstream_output.asset_partitions_def.get_partition_key_from_str(key)
            values[key] = self._load(context, partition_location(partition))
        return values[keys[0]] if len(keys) == 1 else values

    @staticmethod
    def _as_multi(context: dg.OutputContext, key: str):
        partitions_def = context.asset_partitions_def
        if isinstance(partitions_def, dg.MultiPartitionsDefinition):
            return partitions_def.get_partition_key_from_str(key)
        return key

    def _load(self, context: dg.InputContext, where: dict[str, str | None]) -> Any:
        store, asset = self.store(), self._asset(context.asset_key)
        path = store.stored_path(asset, **where)
        if path.suffix != ".parquet":
            return store.read_artifact(asset, **where)
        metadata = context.definition_metadata or {}
        columns = metadata.get("columns")
        if metadata.get("exclude_prefixes"):
            # For inputs whose wanted columns depend on the data (e.g. all text columns).
            prefixes = tuple(metadata["exclude_prefixes"])
            columns = [c for c in store.columns(asset, **where) if not c.startswith(prefixes)]
        table = store.read_table(asset, columns=columns, **where)
        wants_arrow = context.dagster_type is not None and context.dagster_type.typing_type is pa.Table
        return table if wants_arrow else table.to_pandas()
