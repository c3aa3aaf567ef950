"""Validation of the item and interaction tables a user brings.

Every refusal names what is wrong (file, column, how many rows, examples) and how to
fix it. Nothing is dropped silently: the one thing we do drop — interactions on items
the catalogue does not know — is counted, reported, and refused outright when it is so
common that it must be a key mismatch rather than stray rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from semid_assets.core.data import schema
from semid_assets.core.data.embedding_columns import (
    embedding_columns,
    read_embedding_column,
)
from semid_assets.core.data.errors import ContractError, examples
from semid_assets.core.data.timestamps import (
    normalise_timestamps,
    replace_timestamp_column,
)


def _require_columns(names: list[str], required: tuple[str, ...], where: str, fix: str) -> None:
    missing = [c for c in required if c not in names]
    if missing:
        raise ContractError(
            f"{where} is missing required column(s) {missing} (it has {names}). {fix}"
        )


def _check_id_type(arrow_type: pa.DataType, column: str, where: str) -> None:
    if not (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
            or pa.types.is_integer(arrow_type)):
        raise ContractError(
            f"{where}: column {column!r} has type {arrow_type}; ids must be strings or integers "
            f"(cast it, e.g. df[{column!r}] = df[{column!r}].astype(str))."
        )


def _check_no_nulls(table: pa.Table, column: str, where: str) -> None:
    nulls = table.column(column).null_count
    if nulls:
        raise ContractError(
            f"{where}: column {column!r} has {nulls} missing value(s) of {table.num_rows} rows; "
            f"fill or remove those rows before handing the table to semid."
        )


def validate_embedding_column(table: pa.Table, name: str, where: str,
                              expected_dim: int | None = None) -> int:
    """Check one ``emb_*`` column (see :mod:`embedding_columns`); return its dimension."""
    tokens, _ = read_embedding_column(table, name, where)
    dim = tokens.shape[1]
    if expected_dim is not None and dim != expected_dim:
        raise ContractError(
            f"{where}: embedding column {name!r} has dimension {dim}, but {expected_dim} is expected "
            f"(the dimension this pipeline/model was built with); re-export it with the same model."
        )
    return dim


def validate_items(table: pa.Table, where: str = "items",
                   expected_dims: dict[str, int] | None = None) -> pa.Table:
    """Return the item table with ``created_at`` normalised (see :mod:`timestamps`); refuse bad input."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    _require_columns(table.column_names, schema.ITEM_REQUIRED, where,
                     "Items need an 'item_id' and a 'created_at' (when the item entered the catalogue).")
    if table.num_rows == 0:
        raise ContractError(f"{where} has no rows.")
    _check_id_type(table.column(schema.ITEM_ID).type, schema.ITEM_ID, where)
    _check_no_nulls(table, schema.ITEM_ID, where)
    ids = table.column(schema.ITEM_ID).to_numpy(zero_copy_only=False)
    uniques, counts = np.unique(ids, return_counts=True)
    if len(uniques) != len(ids):
        dupes = uniques[counts > 1]
        raise ContractError(
            f"{where}: {len(dupes)} item_id value(s) occur more than once "
            f"({int(counts[counts > 1].sum())} rows), e.g. {examples(dupes)}; keep one row per item "
            f"(e.g. the latest version) before handing the table to semid."
        )
    created = normalise_timestamps(table.column(schema.CREATED_AT), schema.CREATED_AT, where)
    table = replace_timestamp_column(table, schema.CREATED_AT, created)
    for name in embedding_columns(table):
        validate_embedding_column(table, name, where, (expected_dims or {}).get(name))
    return table


_INTERACTIONS_NEED = "Interactions need user_id, item_id, ts (timestamp) and label (1 positive / 0 negative)."


def normalise_interactions(table: pa.Table, where: str = "interactions") -> pd.DataFrame:
    """The interaction log as a frame with ``ts`` normalised (see :mod:`timestamps`).

    These are the checks a source makes when it opens its log, before any month is built;
    the rest (labels, ids against the catalogue) waits for :func:`validate_interactions`.
    """
    _require_columns(table.column_names, schema.INTERACTION_REQUIRED, where, _INTERACTIONS_NEED)
    if table.num_rows == 0:
        raise ContractError(f"{where} has no rows.")
    ts = normalise_timestamps(table.column(schema.TS), schema.TS, where)
    return replace_timestamp_column(table, schema.TS, ts).to_pandas()


@dataclass(frozen=True)
class InteractionReport:
    rows_in: int
    rows_kept: int
    unknown_item_rows: int
    unknown_items: int
    unknown_examples: list

    @property
    def unknown_share(self) -> float:
        return self.unknown_item_rows / self.rows_in if self.rows_in else 0.0


def validate_interactions(df: pd.DataFrame, known_item_ids: np.ndarray, where: str = "interactions",
                          max_unknown_share: float = 0.01) -> tuple[pd.DataFrame, InteractionReport]:
    """Normalise an interaction table and drop rows on unknown items, with a report.

    Rows whose ``item_id`` is not in the catalogue (e.g. items deleted before the
    snapshot) are dropped and counted; when they exceed ``max_unknown_share`` of the rows
    the table is refused, because that many usually means the two files' ids do not match
    (int vs string, a prefix) and training on the remainder would mislead.
    """
    if isinstance(df, pa.Table):
        df = df.to_pandas()
    _require_columns(list(df.columns), schema.INTERACTION_REQUIRED, where, _INTERACTIONS_NEED)
    # Missing timestamps are refused with the other timestamp rules, below.
    for column in (schema.USER_ID, schema.ITEM_ID, schema.LABEL):
        nulls = int(df[column].isna().sum())
        if nulls:
            raise ContractError(
                f"{where}: column {column!r} has {nulls} missing value(s) of {len(df)} rows; "
                f"fill or remove those rows first."
            )
    labels = df[schema.LABEL]
    if pd.api.types.is_bool_dtype(labels):
        labels = labels.astype(np.int8)
    bad_labels = ~pd.Series(labels).isin([0, 1])
    if bad_labels.any():
        raise ContractError(
            f"{where}: column 'label' must be 0/1, but {int(bad_labels.sum())} row(s) hold other values "
            f"(e.g. {examples(pd.unique(pd.Series(labels)[bad_labels]))}); threshold ratings first, "
            f"e.g. label = (rating >= 4)."
        )
    table = pa.Table.from_pandas(df[[schema.USER_ID, schema.ITEM_ID, schema.TS]], preserve_index=False)
    _check_id_type(table.column(schema.USER_ID).type, schema.USER_ID, where)
    _check_id_type(table.column(schema.ITEM_ID).type, schema.ITEM_ID, where)
    ts = normalise_timestamps(table.column(schema.TS), schema.TS, where).to_pandas()
    out = pd.DataFrame({
        schema.USER_ID: df[schema.USER_ID].to_numpy(),
        schema.ITEM_ID: df[schema.ITEM_ID].to_numpy(),
        schema.TS: ts.to_numpy().astype("datetime64[us]"),
        schema.LABEL: np.asarray(labels, dtype=np.int8),
    })
    known = pd.Index(known_item_ids)
    if out[schema.ITEM_ID].dtype != known.dtype and len(out) and len(known):
        kinds = {out[schema.ITEM_ID].dtype.kind, known.dtype.kind}
        if kinds - {"O", "U", "T"} and kinds & {"O", "U", "T"}:
            raise ContractError(
                f"{where}: item_id is {out[schema.ITEM_ID].dtype} but the catalogue's item_id is "
                f"{known.dtype}; store both with the same type."
            )
    is_known = known.get_indexer(out[schema.ITEM_ID]) >= 0
    unknown_rows = int((~is_known).sum())
    unknown_ids = pd.unique(out.loc[~is_known, schema.ITEM_ID])
    report = InteractionReport(
        rows_in=len(out), rows_kept=int(is_known.sum()), unknown_item_rows=unknown_rows,
        unknown_items=len(unknown_ids), unknown_examples=[str(v) for v in unknown_ids[:5]],
    )
    if report.unknown_share > max_unknown_share:
        raise ContractError(
            f"{where}: {unknown_rows} of {len(out)} rows ({report.unknown_share:.1%}) reference "
            f"{len(unknown_ids)} item_id(s) absent from the catalogue, e.g. {examples(unknown_ids)}. "
            f"Above {max_unknown_share:.1%} this is almost always an id mismatch between the two files "
            f"(type, prefix, or a catalogue snapshot older than the interactions); fix the ids or add the "
            f"missing items."
        )
    out = out.loc[is_known].sort_values([schema.TS, schema.USER_ID, schema.ITEM_ID], kind="stable")
    return out.reset_index(drop=True), report
