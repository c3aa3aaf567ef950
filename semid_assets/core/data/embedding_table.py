"""Item embeddings as an Arrow table: ``item_id`` + a fixed-size-list ``embedding`` column.

One self-describing Parquet file that any tool reads, converted to and from a float32
matrix without per-row Python work.
"""

from __future__ import annotations

import numpy as np
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
    array = table.column(column).combine_chunks()
    n = len(array)
    flat = array.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if n and flat.size % n:
        raise ValueError(f"column {column!r} holds vectors of different lengths; all must share one dimension.")
    vectors = flat.reshape(n, -1 if n else 0)
    if not np.all(np.isfinite(vectors)):
        bad = int((~np.isfinite(vectors).all(axis=1)).sum())
        raise ValueError(f"column {column!r} has NaN/inf in {bad} row(s); fix them before encoding.")
    return table.column(schema.ITEM_ID).to_numpy(zero_copy_only=False), vectors


def vectors_of(table: pa.Table, item_ids) -> np.ndarray:
    """The table's vectors of ``item_ids``, in that order (the table's own matrix, not a copy, when it
    holds exactly those items in that order); an item the table lacks is an error naming it."""
    import pandas as pd

    ids, vectors = embeddings_from_arrow(table)
    wanted = np.asarray(item_ids)
    if len(ids) == len(wanted) and np.array_equal(ids.astype(str), wanted.astype(str)):
        return vectors
    rows = pd.Index(ids.astype(str)).get_indexer(wanted.astype(str))
    if (rows < 0).any():
        missing = wanted[rows < 0]
        raise ValueError(f"{len(missing)} item(s) have no embedding (e.g. {missing[:3].tolist()}); the embeddings "
                         "must be of the same month's catalogue")
    return vectors[rows]
