"""Checks on every published version: one that means something broke, and findings to look at.

An empty table means a step broke (ERROR, blocking). A collapsed first level, many collisions or
a stale generation whose candidate cannot replace it are findings about the data and the
method, shown as warnings; the run that found them stays green.
"""

import warnings

import dagster as dg
import numpy as np
import pandas as pd

from semid_assets.partitions import SemidPartitions
from semid_assets.resources import SidQualityThresholds

# Partitioned checks are a Dagster preview feature; they are what lets each month × method
# version be judged on its own, so we use them knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")

WARN = dg.AssetCheckSeverity.WARN


def _codes_used(semantic_ids: pd.DataFrame) -> int:
    return int(np.unique(semantic_ids["c1"].to_numpy()).size)


def build(parts: SemidPartitions) -> list:
    @dg.asset_check(asset="semantic_ids", partitions_def=parts.month_method, blocking=True)
    def sid_table_not_empty(semantic_ids: pd.DataFrame, sid_thresholds: SidQualityThresholds) -> dg.AssetCheckResult:
        """The version gives an ID to at least ``min_items`` items (fewer means a step broke)."""
        n = len(semantic_ids)
        return dg.AssetCheckResult(
            passed=n >= sid_thresholds.min_items, metadata={"items": n, "min_items": sid_thresholds.min_items},
            description=None if n >= sid_thresholds.min_items else
            f"only {n} item(s) have IDs; at least {sid_thresholds.min_items} required")

    @dg.asset_check(asset="semantic_ids", partitions_def=parts.month_method,
                    additional_ins={"tokenizer": dg.AssetIn("tokenizer")})
    def sid_level1_utilisation(semantic_ids: pd.DataFrame, tokenizer,
                               sid_thresholds: SidQualityThresholds) -> dg.AssetCheckResult:
        """The first level uses enough of its codebook (a collapsed codebook makes useless coarse IDs)."""
        size = tokenizer.codebook_size
        utilisation = _codes_used(semantic_ids) / size
        passed = utilisation >= sid_thresholds.min_level1_utilisation
        return dg.AssetCheckResult(
            passed=passed, severity=WARN,
            metadata={"utilisation": utilisation, "codebook_size": size,
                      "threshold": sid_thresholds.min_level1_utilisation},
            description=None if passed else
            f"level-1 utilisation {utilisation:.3f} is below {sid_thresholds.min_level1_utilisation:.3f} "
            f"by {sid_thresholds.min_level1_utilisation - utilisation:.3f}")

    @dg.asset_check(asset="semantic_ids", partitions_def=parts.month_method)
    def sid_collision_rate(semantic_ids: pd.DataFrame, sid_thresholds: SidQualityThresholds) -> dg.AssetCheckResult:
        """Few enough items share a full code tuple (each needs a suffix token)."""
        rate = float((semantic_ids["suffix"].to_numpy() > 0).mean()) if len(semantic_ids) else 0.0
        passed = rate <= sid_thresholds.max_collision_rate
        return dg.AssetCheckResult(
            passed=passed, severity=WARN,
            metadata={"collision_rate": rate, "threshold": sid_thresholds.max_collision_rate},
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
