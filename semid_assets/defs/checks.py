"""Checks on every published version: one that means something broke, and findings to look at.

An empty table means a step broke (ERROR, blocking). A collapsed first level, many collisions or
a stale generation whose candidate cannot replace it are findings about the data and the
method, shown as warnings; the run that found them stays green.

Dagster plots each numeric metadata key of a check in a graph of its own, against the time of
the check's runs. A check's figure is therefore keyed by the method (``collision_rate
(rq_kmeans)``: see :func:`figure_key`), so each method's values form one graph instead of four
methods interleaved on one axis, and the threshold is text, not a plotted series.
"""

import warnings

import dagster as dg
import numpy as np
import pandas as pd

from semid_assets import metadata as md
from semid_assets.partitions import METHOD, SemidPartitions
from semid_assets.resources import SidQualityThresholds

# Partitioned checks are a Dagster preview feature; they are what lets each month × method
# version be judged on its own, so we use them knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")

WARN = dg.AssetCheckSeverity.WARN


def _codes_used(semantic_ids: pd.DataFrame) -> int:
    return int(np.unique(semantic_ids["c1"].to_numpy()).size)


def figure_key(figure: str, method: str) -> str:
    """The metadata key of a check's figure for one method (one plot per method in the UI)."""
    return f"{figure} ({method})"


def _method(parts: SemidPartitions, context: dg.AssetCheckExecutionContext) -> str:
    key = parts.month_method.get_partition_key_from_str(str(context.partition_key))
    return key.keys_by_dimension[METHOD]


def build(parts: SemidPartitions) -> list:
    @dg.asset_check(asset="semantic_ids", partitions_def=parts.month_method, blocking=True)
    def sid_table_not_empty(context: dg.AssetCheckExecutionContext, semantic_ids: pd.DataFrame,
                            sid_thresholds: SidQualityThresholds) -> dg.AssetCheckResult:
        """The version gives an ID to at least ``min_items`` items (fewer means a step broke)."""
        n = len(semantic_ids)
        return dg.AssetCheckResult(
            passed=n >= sid_thresholds.min_items,
            metadata={figure_key("items", _method(parts, context)): n, "threshold": f">= {sid_thresholds.min_items}"},
            description=None if n >= sid_thresholds.min_items else
            f"only {n} item(s) have IDs; at least {sid_thresholds.min_items} required")

    @dg.asset_check(asset="semantic_ids", partitions_def=parts.month_method,
                    additional_ins={"tokenizer": dg.AssetIn("tokenizer")})
    def sid_level1_utilisation(context: dg.AssetCheckExecutionContext, semantic_ids: pd.DataFrame, tokenizer,
                               sid_thresholds: SidQualityThresholds) -> dg.AssetCheckResult:
        """The first level uses enough of its codebook (a collapsed codebook makes useless coarse IDs)."""
        size, used = tokenizer.codebook_size, _codes_used(semantic_ids)
        utilisation = used / size
        passed = utilisation >= sid_thresholds.min_level1_utilisation
        return dg.AssetCheckResult(
            passed=passed, severity=WARN,
            metadata={figure_key("utilisation", _method(parts, context)): md.number(utilisation),
                      "threshold": f">= {md.round_sig(sid_thresholds.min_level1_utilisation)}",
                      "codes_used": f"{used} of {size}"},
            description=None if passed else
            f"level-1 utilisation {utilisation:.3f} is below {sid_thresholds.min_level1_utilisation:.3f} "
            f"by {sid_thresholds.min_level1_utilisation - utilisation:.3f}")

    @dg.asset_check(asset="semantic_ids", partitions_def=parts.month_method)
    def sid_collision_rate(context: dg.AssetCheckExecutionContext, semantic_ids: pd.DataFrame,
                           sid_thresholds: SidQualityThresholds) -> dg.AssetCheckResult:
        """Few enough items share a full code tuple (each needs a suffix token)."""
        rate = float((semantic_ids["suffix"].to_numpy() > 0).mean()) if len(semantic_ids) else 0.0
        passed = rate <= sid_thresholds.max_collision_rate
        return dg.AssetCheckResult(
            passed=passed, severity=WARN,
            metadata={figure_key("collision_rate", _method(parts, context)): md.number(rate),
                      "threshold": f"<= {md.round_sig(sid_thresholds.max_collision_rate)}"},
            description=None if passed else
            f"collision rate {rate:.3f} exceeds {sid_thresholds.max_collision_rate:.3f} "
            f"by {rate - sid_thresholds.max_collision_rate:.3f}")

    @dg.asset_check(asset="sid_staleness", partitions_def=parts.month_method)
    def sid_generation_verdict(sid_staleness: pd.DataFrame) -> dg.AssetCheckResult:
        """The generation verdict of the month: kept, cut, first or older are outcomes; a candidate
        refused although the gains call for a cut is a warning (the IDs are getting stale)."""
        decision, summary = sid_staleness["decision"].iloc[0], sid_staleness["summary"].iloc[0]
        return dg.AssetCheckResult(passed=decision != "refused", severity=WARN, description=summary,
                                   metadata={"decision": decision})

    return [sid_table_not_empty, sid_level1_utilisation, sid_collision_rate, sid_generation_verdict]
