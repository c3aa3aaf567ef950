"""Asset metadata a person reads: links first, one headline number, tables rounded to 4 significant figures.

Every asset builds its metadata with these helpers so the UI looks the same everywhere:
MLflow links at the top, the headline figure as a typed number (Dagster plots numeric
metadata across partitions), one table per subject, and no JSON copy of a table.
"""

from __future__ import annotations

import math
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

__all__ = ["round_sig", "table", "links", "number"]


def round_sig(value: Any, digits: int = 4) -> Any:
    """``value`` rounded to ``digits`` significant figures when it is a float; other values as they are."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (float, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    value = float(value)
    if not math.isfinite(value) or value == 0.0:
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def _column_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    return "string"


def _cell(value: Any, kind: str) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "float":
        return round_sig(float(value))
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return str(value)


def table(frame: pd.DataFrame) -> dg.MetadataValue:
    """A typed Dagster table of ``frame``, floats at 4 significant figures, missing cells empty."""
    kinds = {c: _column_type(frame[c]) for c in frame.columns}
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), kinds[c]) for c in frame.columns])
    records = [dg.TableRecord({str(c): _cell(v, kinds[c]) for c, v in zip(frame.columns, row)})
               for row in frame.itertuples(index=False, name=None)]
    return dg.MetadataValue.table(records=records, schema=schema)


def number(value: float | int | None) -> dg.MetadataValue | None:
    """A typed number for plotting (ints as ints, floats at 4 significant figures); None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return dg.MetadataValue.int(int(value))
    value = float(value)
    return dg.MetadataValue.float(round_sig(value)) if math.isfinite(value) else None


def links(**urls: str | None) -> dict[str, dg.MetadataValue]:
    """URL metadata in the given order, skipping missing ones (put it first in the metadata dict)."""
    return {name: dg.MetadataValue.url(url) for name, url in urls.items() if url}
