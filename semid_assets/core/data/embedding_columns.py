"""Reading and validating ``emb_<modality>`` columns: the one place that decides what they may hold.

A cell is one vector (a list of numbers), several token vectors (a list of such lists), or
null / empty when the item lacks that modality. All vectors of a column share one
dimension and are finite. Both the ingest contract and the feature builder go through
:func:`read_embedding_column`, so they can never disagree about a column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from semid_assets.core.data.errors import ContractError
from semid_assets.core.data.schema import EMBEDDING_PREFIX


def embedding_columns(table: pa.Table) -> list[str]:
    """``emb_<modality>`` columns, in table order."""
    return [f.name for f in table.schema if f.name.startswith(EMBEDDING_PREFIX)]


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def read_embedding_column(items: pa.Table, name: str, where: str = "items") -> tuple[np.ndarray, np.ndarray]:
    """``emb_`` column -> (float32 tokens [total, d], int64 offsets [n + 1]), validated.

    Accepts one vector per item (list / fixed-size list of numbers) or several (a list of
    such lists). A null cell, or an empty list, means the item has no such embedding.
    """
    arr = items.column(name).combine_chunks()
    n = len(arr)
    t = arr.type
    if not _is_list(t):
        raise ContractError(f"{where}: column {name!r}: expected a list of floats or a list of lists of floats, got {t}")
    if _is_list(t.value_type):
        # Several tokens per item.
        tok_per_item = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        token_arr = pc.list_flatten(arr)
        if token_arr.null_count:
            bad_tok = np.flatnonzero(token_arr.is_null().to_numpy(zero_copy_only=False))
            bad_items = np.unique(np.searchsorted(np.cumsum(tok_per_item), bad_tok, side="right"))
            raise ContractError(
                f"{where}: column {name!r}: {len(bad_items)} rows contain a null vector inside their token list; "
                f"fix: drop the null tokens upstream, or set the whole cell to null for items without this modality"
            )
        dims = pc.list_value_length(token_arr).to_numpy(zero_copy_only=False).astype(np.int64)
        value_type = t.value_type.value_type
    else:
        # One token per item; a null cell or an empty list means "absent".
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        tok_per_item = (lengths > 0).astype(np.int64)
        # Filtering copies the column: only when some cells are empty.
        token_arr = arr if tok_per_item.all() else arr.filter(pc.greater(pc.fill_null(pc.list_value_length(arr), 0), 0))
        dims = lengths[lengths > 0]
        value_type = t.value_type
    if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type)):
        raise ContractError(f"{where}: column {name!r}: vector values must be numbers, got {value_type}")

    if len(dims) == 0:
        raise ContractError(
            f"{where}: column {name!r}: no item has a vector (all {n} cells are null or empty); "
            f"fix: drop the column or fill it upstream"
        )
    seen, counts = np.unique(dims, return_counts=True)
    if len(seen) != 1 or seen[0] == 0:
        detail = ", ".join(f"dim {int(s)}: {int(c)} vectors" for s, c in zip(seen, counts))
        raise ContractError(
            f"{where}: column {name!r}: inconsistent vector dimension ({detail}); every vector of an emb_ column "
            f"must have the same dimension — fix the producer of this column"
        )
    d = int(seen[0])

    values = pc.list_flatten(token_arr)
    if len(values) != len(dims) * d:
        raise ContractError(f"{where}: column {name!r}: flattened {len(values)} values, expected {len(dims)} x {d}")
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(tok_per_item, out=offsets[1:])
    token_item = np.repeat(np.arange(n), tok_per_item)
    if values.null_count:
        bad = np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False)) // d
        n_bad = len(np.unique(token_item[bad]))
        raise ContractError(
            f"{where}: column {name!r}: {n_bad} rows contain null values inside a vector; "
            f"fix: impute them upstream, or set the cell to null for items without this modality"
        )
    # numpy's cast turns float64 overflow into inf, which the finiteness check then reports.
    tokens = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(dims), d)
    finite = np.isfinite(tokens).all(axis=1)
    if not finite.all():
        bad_items = np.unique(token_item[~finite])
        raise ContractError(
            f"{where}: embedding column {name!r} has NaN/inf values in {int((~finite).sum())} vector(s) across "
            f"{len(bad_items)} rows (first row {int(bad_items[0])}), and NaN or inf cannot be quantised; "
            f"fix: repair or drop these vectors upstream, or set the cell to null for items without this modality"
        )
    return np.ascontiguousarray(tokens, dtype=np.float32), offsets
