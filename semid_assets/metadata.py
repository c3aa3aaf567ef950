"""Asset metadata a person reads: links first, one headline number, tables rounded to 4 significant figures.

Every asset builds its metadata with these helpers so the UI looks the same everywhere:
MLflow links at the top, the headline figure as a typed number (Dagster plots numeric
metadata across partitions), one table per subject, and no JSON copy of a table.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

__all__ = ["round_sig", "cell", "table", "links", "number"]


def round_sig(value: Any, digits: int = 4) -> Any:
    """``value`` rounded to ``digits`` significant figures when it is a float; other values as they are."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (float, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    value = float(value)
    if not math.isfinite(value) or value == 0.0:
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def cell(value: Any, digits: int = 4) -> Any:
    """A table cell as a JSON-able Python value: ints as ints, floats rounded, NaN/NA as None, text as text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return None if math.isnan(value) else round_sig(value, digits)
    return str(value)


def _column_type(values: list) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    numeric = [v for v in present if not isinstance(v, (str, bool))]
    if numeric and all(isinstance(v, int) for v in numeric):
        return "int"
    # A column of numbers in which a cell says why it holds none ("too few to decide") stays numeric.
    return "float" if numeric else "string"


def table(frame: pd.DataFrame, digits: int = 4) -> dg.TableMetadataValue:
    """A typed Dagster table of ``frame``: one record per row, each column typed by its values,
    floats at ``digits`` significant figures, missing cells empty."""
    columns = [str(c) for c in frame.columns]
    records = [dict(zip(columns, (cell(v, digits) for v in row))) for row in frame.itertuples(index=False, name=None)]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, _column_type([r[c] for r in records])) for c in columns])
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in records], schema=schema)


def number(value: float | int | None) -> dg.MetadataValue | None:
    """A typed number for plotting (ints as ints, floats at 4 significant figures); None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return dg.MetadataValue.int(int(value))
    value = float(value)
    return dg.MetadataValue.float(round_sig(value)) if math.isfinite(value) else None


def links(**urls: str | None) -> dict[str, dg.MetadataValue]:
    """URL metadata in the given order, skipping missing ones (put it first in the metadata dict)."""
    return {name: dg.MetadataValue.url(url) for name, url in urls.items() if url}
