"""The on-disk layout of asset outputs: one file per asset partition, written atomically and durably.

Under the root of one dataset (``<home>/assets/<dataset>``)::

    <asset>/<month>.(parquet|npz)                          e.g. aligner/2025-10.npz
    <asset>/month=<month>/method=<method>.(parquet|npz)    e.g. tokenizer/month=2025-10/method=rq_kmeans.npz
    <asset>/all.(parquet|npz)                              an unpartitioned asset

Tables are Parquet; fitted objects are ``.npz`` files through their ``to_arrays`` /
``from_arrays`` methods, read back with ``allow_pickle=False`` and only into classes under
``semid_assets.``, so reading an output never runs code. Every write goes through
:func:`~semid_assets.core.durable.atomic_write`: a failed step leaves the previous output
intact and readable, and a file that exists is complete on disk.

No orchestrator here: the Dagster IO manager, the registry, the CLI and the benches all use
this module.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from semid_assets.core.artifact import Artifact, load_npz, save_npz
from semid_assets.core.durable import (
    TEMP_SUFFIX,
    atomic_write,
    is_temporary,
    remove_abandoned,
    temporary_writer,
)

PARQUET, NPZ = ".parquet", ".npz"
UNPARTITIONED = "all"
_CLASS_KEY = "__class__"
_TRUSTED_MODULE_PREFIX = "semid_assets."
# Metadata of an artefact that describes its fit (timings, per-level reports), not the model:
# left out of content_sha256 so a deterministic refit of a partition is recognised as the same model.
_DIAGNOSTIC_META_KEYS = frozenset({"fit_info", "info"})


ROW_GROUP_ROWS = 65536
"""Rows per Parquet row group: a reader decodes a group at a time, so a million-row embedding table
read as one group costs several times its size in temporaries (and one thread)."""


def _float_like(kind: pa.DataType) -> bool:
    while pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        kind = kind.value_type
    return pa.types.is_floating(kind)


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A Parquet table whose float vector columns (fixed-size lists) are each one contiguous buffer,
    filled a row group at a time: what ``pq.read_table`` returns holds them in row-group chunks,
    which a reader wanting one matrix copies again (two copies of a million-item embedding beside
    each other). The values are the file's, bit for bit; a column with null vectors is read as is."""
    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    names = list(columns) if columns is not None else list(schema.names)
    vectors = [n for n in names if pa.types.is_fixed_size_list(schema.field(n).type)
               and pa.types.is_floating(schema.field(n).type.value_type)]
    if not vectors:
        return pq.read_table(path, columns=columns)
    others = pq.read_table(path, columns=[n for n in names if n not in vectors])
    arrays = [others.column(n) if n not in vectors else _contiguous_vectors(parquet, n) for n in names]
    if any(array is None for array in arrays):
        return pq.read_table(path, columns=columns)
    return pa.Table.from_arrays(arrays, schema=pa.schema([schema.field(n) for n in names], schema.metadata))


def _contiguous_vectors(parquet: pq.ParquetFile, name: str) -> pa.Array | None:
    """Column ``name`` (fixed-size lists of floats) as one array over one buffer; None when it holds nulls."""
    kind = parquet.schema_arrow.field(name).type
    width, rows = kind.list_size, parquet.metadata.num_rows
    values = np.empty(rows * width, dtype=kind.value_type.to_pandas_dtype())
    start = 0
    for group in range(parquet.num_row_groups):
        for chunk in parquet.read_row_group(group, columns=[name]).column(0).chunks:
            if chunk.null_count or chunk.values.null_count:
                return None
            flat = chunk.flatten().to_numpy()
            values[start:start + flat.size] = flat
            start += flat.size
    return pa.FixedSizeListArray.from_arrays(pa.array(values), width)


def write_parquet_atomically(table: pa.Table | pd.DataFrame, path: Path) -> Path:
    """Write ``table`` as Parquet to ``path`` atomically and durably, in row groups of ``ROW_GROUP_ROWS``;
    float columns (vectors) are stored without a dictionary, which real-valued data never fits."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    dictionary = [field.name for field in table.schema if not _float_like(field.type)]
    return atomic_write(Path(path), lambda fh: pq.write_table(table, fh, row_group_size=ROW_GROUP_ROWS,
                                                             use_dictionary=dictionary))


def artifact_class(qualified: str) -> type:
    """The class named ``module:QualName`` in stored metadata; only classes under ``semid_assets.``."""
    module_name, _, class_name = qualified.partition(":")
    if not module_name.startswith(_TRUSTED_MODULE_PREFIX):
        raise ValueError(f"refusing to load stored object of untrusted class {qualified!r}")
    return getattr(importlib.import_module(module_name), class_name)


def save_artifact(obj: Artifact, path: Path) -> Path:
    """Store ``obj`` (``to_arrays``) as one ``.npz`` at ``path``, atomically and durably."""
    arrays, meta = obj.to_arrays()
    meta = dict(meta)
    meta[_CLASS_KEY] = f"{type(obj).__module__}:{type(obj).__qualname__}"
    save_npz(path, arrays, meta)
    return Path(path)


def load_artifact(path: Path) -> Any:
    """The object :func:`save_artifact` stored at ``path`` (no pickle; trusted classes only)."""
    arrays, meta = load_npz(path)
    if _CLASS_KEY not in meta:
        raise ValueError(f"{path} names no class; it was not written by save_artifact")
    cls = artifact_class(meta.pop(_CLASS_KEY))
    return cls.from_arrays(arrays, meta)


def content_sha256(path: Path) -> str:
    """sha256 of what a stored artefact computes with: its class, arrays and parameters.

    Independent of the ``.npz`` container (zip timestamps) and of the fit's diagnostics
    (timings), so two deterministic fits of one partition give the same digest.
    """
    arrays, meta = load_npz(path)
    digest = hashlib.sha256()
    kept = {k: v for k, v in meta.items() if k not in _DIAGNOSTIC_META_KEYS}
    digest.update(json.dumps(kept, sort_keys=True).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def partition_name(month: str | None = None, method: str | None = None) -> str:
    """The partition's file stem relative to its asset folder: ``2025-10``,
    ``month=2025-10/method=rq_kmeans`` or ``all``."""
    if method is not None:
        if month is None:
            raise ValueError(f"method={method!r} needs a month: semid has no method-only partitions")
        return f"month={month}/method={method}"
    return UNPARTITIONED if month is None else str(month)


class AssetStore:
    """The outputs of one dataset's assets under ``root`` (``<home>/assets/<dataset>``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"AssetStore({str(self.root)!r})"

    def path(self, asset: str, month: str | None = None, method: str | None = None,
             suffix: str = PARQUET) -> Path:
        """Where partition (``month``, ``method``) of ``asset`` lives with ``suffix`` (whether or not it exists)."""
        return self.root / asset / f"{partition_name(month, method)}{suffix}"

    def write_table(self, asset: str, table: pa.Table | pd.DataFrame, *, month: str | None = None,
                    method: str | None = None) -> Path:
        return write_parquet_atomically(table, self.path(asset, month, method, PARQUET))

    def write_artifact(self, asset: str, obj: Artifact, *, month: str | None = None,
                       method: str | None = None) -> Path:
        if not isinstance(obj, Artifact):
            raise TypeError(f"{asset}: a {type(obj).__name__} has no to_arrays/from_arrays; "
                            f"semid stores tables and such artefacts only.")
        return save_artifact(obj, self.path(asset, month, method, NPZ))

    def stored_path(self, asset: str, *, month: str | None = None, method: str | None = None) -> Path:
        """The existing file of the partition (Parquet or ``.npz``); FileNotFoundError naming the fix."""
        for suffix in (PARQUET, NPZ):
            path = self.path(asset, month, method, suffix)
            if path.exists():
                return path
        raise FileNotFoundError(
            f"no stored output for {asset} [{partition_name(month, method)}] at "
            f"{self.path(asset, month, method, '')}.(parquet|npz); materialise that asset partition first.")

    def read_table(self, asset: str, *, month: str | None = None, method: str | None = None,
                   columns: list[str] | None = None) -> pa.Table:
        return read_parquet(self._existing(asset, month, method, PARQUET), columns=columns)

    def iter_batches(self, asset: str, *, month: str | None = None, method: str | None = None,
                     columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The stored table's record batches, one row group at a time (never the whole table at once)."""
        parquet = pq.ParquetFile(self._existing(asset, month, method, PARQUET))
        for group in range(parquet.num_row_groups):
            yield from parquet.read_row_group(group, columns=columns).to_batches()

    def columns(self, asset: str, *, month: str | None = None, method: str | None = None) -> list[str]:
        """The column names of a stored table (its schema only is read)."""
        return list(pq.read_schema(self._existing(asset, month, method, PARQUET)).names)

    def read_artifact(self, asset: str, *, month: str | None = None, method: str | None = None) -> Any:
        return load_artifact(self._existing(asset, month, method, NPZ))

    def exists(self, asset: str, *, month: str | None = None, method: str | None = None) -> bool:
        return any(self.path(asset, month, method, s).exists() for s in (PARQUET, NPZ))

    def months(self, asset: str, *, method: str | None = None) -> list[str]:
        """The materialised months of ``asset``, oldest first: of its month×method partitions for
        ``method`` when given, else of its month partitions."""
        folder = self.root / asset
        if not folder.is_dir():
            return []
        if method is None:
            found = {p.stem for p in folder.iterdir()
                     if p.is_file() and p.suffix in (PARQUET, NPZ) and not p.name.startswith(".")}
            found.discard(UNPARTITIONED)
        else:
            found = {p.name.removeprefix("month=") for p in folder.glob("month=*")
                     if any((p / f"method={method}{s}").is_file() for s in (PARQUET, NPZ))}
        return sorted(found)

    def sweep_temporaries(self, log: Callable[[str], None] = print) -> list[Path]:
        """Remove the temporary files whose writer has ended (a killed step's leftovers), one log
        line each; a live writer's temporary file is never touched. Returns the removed paths."""
        if not self.root.is_dir():
            return []
        candidates = sorted(p for p in self.root.rglob("*" + TEMP_SUFFIX) if p.is_file() and is_temporary(p))
        return remove_abandoned(candidates, temporary_writer, log)

    def _existing(self, asset: str, month: str | None, method: str | None, suffix: str) -> Path:
        path = self.path(asset, month, method, suffix)
        if not path.exists():
            found = self.stored_path(asset, month=month, method=method)  # raises when nothing is stored
            raise TypeError(f"{asset} [{partition_name(month, method)}] is stored as {found.name}, "
                            f"not as {suffix}; read it with {'read_table' if found.suffix == PARQUET else 'read_artifact'}.")
        return path
