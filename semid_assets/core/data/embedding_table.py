"""Item embeddings as an Arrow table: ``item_id`` + a fixed-size-list ``embedding`` column.

One self-describing Parquet file that any tool reads, converted to and from a float32
matrix without per-row Python work.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from semid_assets.core.data import schema

EMBEDDING = "embedding"


def embeddings_to_arrow(item_ids: np.ndarray, vectors: np.ndarray) -> pa.Table:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(item_ids):
        raise ValueError(f"need one vector per item: {len(item_ids)} ids, vectors of shape {vectors.shape}")
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    return pa.table({schema.ITEM_ID: pa.array(item_ids), EMBEDDING: column})


def embeddings_from_arrow(table: pa.Table, column: str = EMBEDDING) -> tuple[np.ndarray, np.ndarray]:
    """(item_ids, float32 [n, d]) from a table with a fixed-size-list or list embedding column."""
    if column not in table.column_names:
        raise ValueError(f"table has no {column!r} column (columns: {table.column_names}).")
    chunks = table.column(column)
    # One chunk (a table read by core/storage) is viewed where it lies, not copied.
    array = chunks.chunk(0) if chunks.num_chunks == 1 else chunks.combine_chunks()
    n = len(array)
    flat = array.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if n and flat.size % n:
        raise ValueError(f"column {column!r} holds vectors of different lengths; all must share one dimension.")
    vectors = flat.reshape(n, -1 if n else 0)
    if not _all_finite(vectors):
        bad = int((~np.isfinite(vectors).all(axis=1)).sum())
        raise ValueError(f"column {column!r} has NaN/inf in {bad} row(s); fix them before encoding.")
    return table.column(schema.ITEM_ID).to_numpy(zero_copy_only=False), vectors


def _all_finite(vectors: np.ndarray, block_rows: int = 65536) -> bool:
    """No NaN/inf in ``vectors``, checked a block of rows at a time (no catalogue-sized temporary)."""
    return all(np.isfinite(vectors[start:start + block_rows]).all() for start in range(0, len(vectors), block_rows))


def vectors_of(table: pa.Table, item_ids) -> np.ndarray:
    """The table's vectors of ``item_ids``, in that order (the table's own matrix when it holds exactly
    those items in that order); an item the table lacks is an error naming it."""
    ids = table.column(schema.ITEM_ID).to_numpy(zero_copy_only=False)
    wanted = np.asarray(item_ids)
    if len(ids) == len(wanted) and np.array_equal(ids.astype(str), wanted.astype(str)):
        return embeddings_from_arrow(table)[1]
    vectors = gather_vectors(table.to_batches(), item_ids)
    if vectors is None:
        missing = _missing(table, item_ids)
        raise ValueError(f"{len(missing)} item(s) have no embedding (e.g. {missing[:3].tolist()}); the embeddings "
                         "must be of the same month's catalogue")
    return vectors


def gather_vectors(batches: Iterable[pa.RecordBatch], item_ids, column: str = EMBEDDING) -> np.ndarray | None:
    """float32 [len(item_ids), d]: the vectors of ``item_ids``, in that order, copied batch by batch
    into one matrix (never the whole table's matrix beside it); None when an item is in no batch.

    The batches are an embedding table's (``item_id`` + ``column``), e.g. a stored Parquet file's
    row groups: only one batch and the result are in memory at once."""
    wanted = pd.Index(np.asarray(item_ids).astype(str))
    if not wanted.is_unique:
        raise ValueError("gather_vectors: item_ids lists an item more than once")
    out, filled = None, np.zeros(len(wanted), dtype=bool)
    for batch in batches:
        rows = wanted.get_indexer(batch.column(schema.ITEM_ID).to_numpy(zero_copy_only=False).astype(str))
        hit = np.flatnonzero(rows >= 0)
        if hit.size == 0:
            continue
        _, vectors = embeddings_from_arrow(pa.Table.from_batches([batch.take(pa.array(hit))]), column)
        if out is None:
            out = np.empty((len(wanted), vectors.shape[1]), dtype=np.float32)
        if filled[rows[hit]].any() or np.unique(rows[hit]).size < hit.size:
            raise ValueError("the embedding table lists an item_id more than once; item ids must be unique")
        out[rows[hit]], filled[rows[hit]] = vectors, True
    if not filled.all():
        return None
    return out if out is not None else np.empty((0, 0), dtype=np.float32)


def _missing(table: pa.Table, item_ids) -> np.ndarray:
    wanted = np.asarray(item_ids)
    return wanted[~np.isin(wanted.astype(str), table.column(schema.ITEM_ID).to_numpy(zero_copy_only=False).astype(str))]
