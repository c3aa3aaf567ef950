"""Timestamps as every table stores them: UTC, tz-naive, microseconds (see ``schema.py``).

A ``ts`` or ``created_at`` column a user brings may hold
  - timestamps with a time zone: converted to UTC, then the zone is dropped;
  - timestamps without one (naive): taken to be UTC already, and kept as they are;
  - Unix epoch seconds, as integers or floats (MovieLens' and most logs' convention).
Each is normalised once, where a source reads its files, so every stage sees one type.
Everything else is refused with a :class:`ContractError` naming the column, the count, up
to five examples and the fix: strings (even date-like ones), nulls, values outside
1970-01-01 … 2100-01-01, and epochs whose magnitude says they are milliseconds,
microseconds or nanoseconds rather than seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from semid_assets.core.data.errors import ContractError, examples

EARLIEST = pd.Timestamp("1970-01-01")
LATEST = pd.Timestamp("2100-01-01")  # exclusive
_LATEST_SECONDS = float((LATEST - EARLIEST).total_seconds())
_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
# Epochs in a finer unit read as seconds land far beyond 2100; the factor that brings them back names the unit.
_FINER_UNITS = (("milliseconds", "ms", 1e3), ("microseconds", "us", 1e6), ("nanoseconds", "ns", 1e9))


def normalise_timestamps(values: pa.ChunkedArray | pa.Array, column: str, where: str) -> pa.ChunkedArray:
    """``values`` as ``timestamp[us]`` (UTC, tz-naive); refuse what is not an instant in range (see module)."""
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values], type=values.type)
    numeric = pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
    if not (numeric or pa.types.is_timestamp(values.type)):
        _refuse_type(values, column, where)
    seconds = _epoch_seconds(values)
    _refuse_missing(seconds, column, where)
    if numeric:
        _refuse_finer_epochs(values, seconds, column, where)
    _refuse_out_of_range(values, seconds, column, where)
    if numeric:
        micros = np.round(seconds * 1e6).astype(np.int64)
        return pa.chunked_array([pa.array(micros, pa.timestamp("us"))])
    # Arrow stores instants as UTC; casting to a zone-less type keeps the UTC wall time.
    # Sub-microsecond digits are truncated (the range check above rules out overflow).
    return pc.cast(values, pa.timestamp("us"), safe=False)


def replace_timestamp_column(table: pa.Table, column: str, values: pa.ChunkedArray) -> pa.Table:
    """``table`` with ``column`` replaced by normalised ``values``, pandas metadata included.

    A table read from a pandas-written file remembers the column's old pandas type; left
    alone, ``to_pandas()`` would put a time zone back (or read the column as integers).
    """
    table = table.set_column(table.column_names.index(column), column, values)
    metadata = dict(table.schema.metadata or {})
    if b"pandas" not in metadata:
        return table
    pandas_meta = json.loads(metadata[b"pandas"])
    for entry in pandas_meta.get("columns", []):
        if entry.get("name") == column:
            entry.update(pandas_type="datetime", numpy_type="datetime64[us]", metadata=None)
    metadata[b"pandas"] = json.dumps(pandas_meta).encode()
    return table.replace_schema_metadata(metadata)


def refuse_future_timestamps(ts: pa.ChunkedArray, column: str, where: str, now: pd.Timestamp) -> None:
    """Refuse normalised timestamps later than ``now`` (UTC): a date in the future is a clock or
    placeholder error. Rows of the month in progress are fine: they wait for it to end."""
    now = pd.Timestamp(now)
    now = now.tz_convert("UTC").tz_localize(None) if now.tzinfo is not None else now
    late = pc.fill_null(pc.greater(ts, pa.scalar(now.to_datetime64(), pa.timestamp("us"))),
                        False).to_numpy(zero_copy_only=False)
    if late.any():
        rows = np.flatnonzero(late)
        raise ContractError(
            f"{where}: column {column!r} has {len(rows)} value(s) of {len(ts)} rows in the future (after "
            f"{now:%Y-%m-%d %H:%M} UTC), e.g. {_shown(ts, rows)}; a date in the future is a clock or placeholder "
            f"error. Correct or remove those rows."
        )


def complete_months(first: str, last: str, now: pd.Timestamp) -> list[str]:
    """The months from ``first`` to ``last`` that have ended by ``now`` (a month is versioned once it is over)."""
    now = pd.Timestamp(now)
    now = now.tz_convert("UTC").tz_localize(None) if now.tzinfo is not None else now
    newest = min(pd.Period(last, freq="M"), now.to_period("M") - 1)
    first_period = pd.Period(first, freq="M")
    return [str(p) for p in pd.period_range(first_period, newest, freq="M")] if newest >= first_period else []


def _epoch_seconds(values: pa.ChunkedArray) -> np.ndarray:
    """Seconds since 1970-01-01 UTC as float64, NaN where a value is missing (for the checks only)."""
    # Float64 rounds integers beyond 2**53 (nanosecond epochs), which is harmless for range checks.
    if pa.types.is_timestamp(values.type):
        raw = pc.cast(pc.cast(values, pa.int64()), pa.float64(), safe=False)
        scale = _PER_SECOND[values.type.unit]
    else:
        raw, scale = pc.cast(values, pa.float64(), safe=False), 1.0
    return pc.fill_null(raw, np.nan).to_numpy(zero_copy_only=False) / scale


def _shown(values: pa.ChunkedArray, rows: np.ndarray) -> str:
    picked = values.take(pa.array(rows[:5], pa.int64()))
    # Arrow prints every timestamp with its microseconds; whole seconds read better without them.
    text = [t.replace(".000000", "") for t in pc.cast(picked, pa.string()).to_pylist()]
    return ", ".join(text) + (" …" if len(rows) > 5 else "")


def _refuse_type(values: pa.ChunkedArray, column: str, where: str) -> None:
    convert = f"df[{column!r}] = pd.to_datetime(df[{column!r}], utc=True)"
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        present = values.drop_null().to_pylist()
        sample = present[:5]
        try:
            pd.to_datetime(pd.Series(sample), utc=True, format="mixed")
            hint = f"they look like dates: convert them before writing the file, e.g. {convert}"
        except (ValueError, TypeError, OverflowError):
            hint = f"store timestamps or Unix seconds instead (e.g. {convert} if they are dates)"
        raise ContractError(
            f"{where}: column {column!r} holds strings ({len(present)} of {len(values)} rows), e.g. "
            f"{examples(sample)}; semid does not parse date strings, whose format and time zone are "
            f"ambiguous — {hint}."
        )
    raise ContractError(
        f"{where}: column {column!r} has type {values.type} in all {len(values)} rows; expected a timestamp "
        f"(with or without a time zone) or Unix seconds (integers or floats); convert it, e.g. {convert}."
    )


def _refuse_missing(seconds: np.ndarray, column: str, where: str) -> None:
    missing = np.flatnonzero(np.isnan(seconds))
    if len(missing):
        raise ContractError(
            f"{where}: column {column!r} has {len(missing)} missing value(s) of {len(seconds)} rows "
            f"(rows {examples(missing.tolist())}, counting from 0); every row needs a timestamp — fill or remove those rows "
            f"before handing the table to semid."
        )


def _refuse_finer_epochs(values: pa.ChunkedArray, seconds: np.ndarray, column: str, where: str) -> None:
    beyond = np.flatnonzero(np.isfinite(seconds) & (seconds >= _LATEST_SECONDS))
    if not len(beyond):
        return
    # The coarsest unit that brings most of them back before 2100 is the likeliest one.
    for name, unit, factor in _FINER_UNITS:
        back = beyond[seconds[beyond] / factor < _LATEST_SECONDS]
        if 2 * len(back) >= len(beyond):
            break
    else:
        return
    first = pd.Timestamp(round(seconds[back[0]] / factor * 1e6), unit="us")
    raise ContractError(
        f"{where}: column {column!r} holds Unix epochs that look like {name}, not seconds: {len(beyond)} of "
        f"{len(seconds)} values lie beyond {LATEST:%Y-%m-%d} when read as seconds, e.g. {_shown(values, beyond)} "
        f"(the first is {first} if read as {name}). Numbers are read as Unix seconds; convert them, e.g. "
        f"df[{column!r}] = pd.to_datetime(df[{column!r}], unit={unit!r})."
    )


def _refuse_out_of_range(values: pa.ChunkedArray, seconds: np.ndarray, column: str, where: str) -> None:
    outside = np.flatnonzero(~((seconds >= 0) & (seconds < _LATEST_SECONDS)))
    if len(outside):
        raise ContractError(
            f"{where}: column {column!r} has {len(outside)} value(s) of {len(seconds)} rows outside "
            f"{EARLIEST:%Y-%m-%d} … {LATEST:%Y-%m-%d}, e.g. {_shown(values, outside)}; semid reads instants in "
            f"that span only — correct or remove those rows (placeholder dates such as 1900-01-01 or "
            f"9999-12-31 are a common cause)."
        )
