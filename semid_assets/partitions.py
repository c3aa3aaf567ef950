"""All partitions definitions of the lineage, built from the months a dataset spans.

A *version* is a month key: what the pipeline knew at that month's end. Tokenizer-level
assets add a second dimension, the quantisation method.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pandas as pd

MONTH = "month"
METHOD = "method"


@dataclass(frozen=True)
class SemidPartitions:
    month: dg.MonthlyPartitionsDefinition
    method: dg.StaticPartitionsDefinition
    month_method: dg.MultiPartitionsDefinition

    def month_method_key(self, month: str, method: str) -> dg.MultiPartitionKey:
        return dg.MultiPartitionKey({MONTH: month, METHOD: method})


def build_partitions(months: list[str], methods: tuple[str, ...], open_ended: bool = False) -> SemidPartitions:
    """Month partitions from the dataset's first month: up to its last month for a fixed dataset, or
    ``open_ended`` — up to the month that ended most recently, whatever the data holds — for a log that
    grows, so a month appended to it is a partition without reloading the code."""
    if not months:
        raise ValueError("the dataset spans no month; nothing to partition.")
    if open_ended:
        month = dg.MonthlyPartitionsDefinition(start_date=months[0], fmt="%Y-%m", end_offset=0)
    else:
        after_last = (pd.Period(months[-1], freq="M") + 1).strftime("%Y-%m")
        month = dg.MonthlyPartitionsDefinition(start_date=months[0], end_date=after_last, fmt="%Y-%m")
    method = dg.StaticPartitionsDefinition(list(methods))
    return SemidPartitions(
        month=month, method=method,
        month_method=dg.MultiPartitionsDefinition({MONTH: month, METHOD: method}),
    )


def month_of(context) -> str:
    """The month of a run's partition, whether the asset is month- or month×method-partitioned."""
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension[MONTH]
    return key


def method_of(context) -> str:
    return context.partition_key.keys_by_dimension[METHOD]
