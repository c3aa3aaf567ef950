"""Typed Dagster table metadata from a DataFrame: numbers stay numbers, rounded to 4 significant figures."""

from __future__ import annotations

import math
import numbers

import dagster as dg
import numpy as np
import pandas as pd

__all__ = ["significant", "table_value", "plain"]


def significant(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant figures (0, NaN and inf unchanged)."""
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def plain(value, digits: int = 4):
    """A cell as a JSON-able Python value: ints as ints, floats rounded, NaN/NA as None, text as text."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return None if math.isnan(number) else significant(number, digits)
    return str(value)


def _column_type(values: list) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    numbers_only = [v for v in present if not isinstance(v, (str, bool))]
    if numbers_only and all(isinstance(v, int) for v in numbers_only):
        return "int"
    # A column of numbers in which a cell says why it holds none ("too few to decide") stays numeric.
    return "float" if numbers_only else "string"


def table_value(frame: pd.DataFrame, digits: int = 4) -> dg.TableMetadataValue:
    """The frame as a typed table: one record per row, each column typed by its values."""
    records = [{str(k): plain(v, digits) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    columns = [dg.TableColumn(str(c), _column_type([r[str(c)] for r in records])) for c in frame.columns]
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in records], schema=dg.TableSchema(columns=columns))
