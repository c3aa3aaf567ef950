"""Asset storage: one file per asset partition under the home directory, written atomically.

Tables become Parquet; fitted objects (tokenizers, feature bundles) become ``.npz``
through their ``to_arrays``/``from_arrays`` methods — no pickle anywhere, so reading an
output never runs code. Every write goes to a temporary name in the same folder and is
renamed into place, so a failed step leaves the previous output intact and readable.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from semid_assets.core.artifact import Artifact, load_npz, save_npz

_CLASS_KEY = "__class__"
_TRUSTED_MODULE_PREFIX = "semid_assets."


def partition_path(partition_key: str | dg.MultiPartitionKey | None) -> str:
    if partition_key is None:
        return "all"
    if isinstance(partition_key, dg.MultiPartitionKey):
        return "/".join(f"{dim}={key}" for dim, key in sorted(partition_key.keys_by_dimension.items(),
                                                              key=lambda kv: kv[0] != "month"))
    return str(partition_key)


def write_parquet_atomically(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _artifact_class(qualified: str) -> type:
    module_name, _, class_name = qualified.partition(":")
    if not module_name.startswith(_TRUSTED_MODULE_PREFIX):
        raise ValueError(f"refusing to load stored object of untrusted class {qualified!r}")
    return getattr(importlib.import_module(module_name), class_name)


def save_artifact(obj: Artifact, path: Path) -> None:
    arrays, meta = obj.to_arrays()
    meta = dict(meta)
    meta[_CLASS_KEY] = f"{type(obj).__module__}:{type(obj).__qualname__}"
    save_npz(path, arrays, meta)


def load_artifact(path: Path) -> Any:
    arrays, meta = load_npz(path)
    cls = _artifact_class(meta.pop(_CLASS_KEY))
    return cls.from_arrays(arrays, meta)


class SemidIOManager(dg.ConfigurableIOManager):
    """Stores each asset partition as ``<root>/<asset>/<partition>.(parquet|npz)``."""

    root: str

    def _base(self, asset_key: dg.AssetKey, partition_key) -> Path:
        return Path(self.root).joinpath(*asset_key.path, partition_path(partition_key))

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        partition = context.partition_key if context.has_asset_partitions else None
        if isinstance(partition, str) and context.has_asset_partitions:
            partition = self._as_multi(context, partition)
        base = self._base(context.asset_key, partition)
        if isinstance(obj, pd.DataFrame):
            path = base.with_suffix(".parquet")
            write_parquet_atomically(pa.Table.from_pandas(obj, preserve_index=False), path)
        elif isinstance(obj, pa.Table):
            path = base.with_suffix(".parquet")
            write_parquet_atomically(obj, path)
        elif isinstance(obj, Artifact):
            path = base.with_suffix(".npz")
            save_artifact(obj, path)
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
            values[key] = self._load(context, self._base(context.asset_key, partition))
        return values[keys[0]] if len(keys) == 1 else values

    @staticmethod
    def _as_multi(context: dg.OutputContext, key: str):
        partitions_def = context.asset_partitions_def
        if isinstance(partitions_def, dg.MultiPartitionsDefinition):
            return partitions_def.get_partition_key_from_str(key)
        return key

    def _load(self, context: dg.InputContext, base: Path) -> Any:
        parquet, npz = base.with_suffix(".parquet"), base.with_suffix(".npz")
        if parquet.exists():
            metadata = context.definition_metadata or {}
            columns = metadata.get("columns")
            if metadata.get("exclude_prefixes"):
                # For inputs whose wanted columns depend on the data (e.g. all text columns).
                prefixes = tuple(metadata["exclude_prefixes"])
                columns = [c for c in pq.read_schema(parquet).names if not c.startswith(prefixes)]
            table = pq.read_table(parquet, columns=columns)
            wants_arrow = context.dagster_type is not None and context.dagster_type.typing_type is pa.Table
            return table if wants_arrow else table.to_pandas()
        if npz.exists():
            return load_artifact(npz)
        raise FileNotFoundError(
            f"no stored output for {context.asset_key.to_user_string()} at {base}.(parquet|npz); "
            f"materialise that asset partition first."
        )
