"""Jobs for the launchpad, the monthly schedule, and declarative automation for everything after it.

Time starts a month: on the 1st, ``monthly_refresh`` materialises the month that has just
ended, or says why not (its data has not arrived). Everything downstream follows its inputs
by declarative automation (``AutomationCondition.eager``, for every month, not only the latest:
a backfill of past months flows on into their tokenizers and reports). No custom sensor is
needed: the automation sensor evaluates the conditions.

Dagster runs one partitions definition per job, so the launchpad has a job per partitioning:
the monthly stages, the month × method stages, the month's comparison, and the ranking
evaluation (minutes per version; run on demand, never by automation).
"""

from collections.abc import Callable
from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from semid_assets.partitions import SemidPartitions

MONTHLY_JOB = "monthly_lineage_job"
TOKENIZER_JOB = "tokenizer_job"
COMPARISON_JOB = "tokenizer_comparison_job"
RANKING_JOB = "ranking_eval_job"
MONTHLY_ASSETS = ["raw_items", "raw_interactions", "multimodal_features", "item_pairs", "aligner_candidate",
                  "aligner", "aligned_embeddings", "collaborative_embeddings"]
TOKENIZER_ASSETS = ["tokenizer", "sid_staleness", "semantic_ids", "sid_migration", "sid_prefix_migration",
                    "sid_stability", "sid_hierarchy"]
COMPARISON_ASSETS = ["tokenizer_comparison"]
RANKING_ASSETS = ["ranking_eval"]
AUTOMATED = (*TOKENIZER_ASSETS, *COMPARISON_ASSETS)


def downstream_condition() -> dg.AutomationCondition:
    """Materialise a partition once its inputs are all there and one of them changed, whatever its month."""
    return dg.AutomationCondition.eager().without(dg.AutomationCondition.in_latest_time_window())


def closed_month(moment: datetime) -> str:
    """The month that ended most recently before ``moment`` (UTC)."""
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return (stamp.to_period("M") - 1).strftime("%Y-%m")


def _jobs(parts: SemidPartitions, monthly: list[str]) -> list:
    return [
        dg.define_asset_job(MONTHLY_JOB, selection=dg.AssetSelection.assets(*monthly).required_multi_asset_neighbors(),
                            partitions_def=parts.month,
                            description="Catalogue → features → pairs → aligner → aligned embeddings for one month."),
        dg.define_asset_job(TOKENIZER_JOB, selection=dg.AssetSelection.assets(*TOKENIZER_ASSETS),
                            partitions_def=parts.month_method,
                            description="Fit one month × method's candidate tokenizer, publish its IDs (keep the "
                                        "generation or cut one), and report staleness, stability and hierarchy."),
        dg.define_asset_job(COMPARISON_JOB, selection=dg.AssetSelection.assets(*COMPARISON_ASSETS),
                            partitions_def=parts.month, description="Compare every method's candidate of one month."),
        dg.define_asset_job(RANKING_JOB, selection=dg.AssetSelection.assets(*RANKING_ASSETS),
                            partitions_def=parts.month_method,
                            description="Judge one version (month × method) by ranking AUC with its SIDs as features."),
    ]


def build(parts: SemidPartitions, source_months: Callable[[], list[str]],
          collaborative: bool = True) -> tuple[list, list, list]:
    """``source_months()``: the months the dataset holds now (read at every schedule tick)."""
    jobs = _jobs(parts, [a for a in MONTHLY_ASSETS if collaborative or a != "collaborative_embeddings"])

    @dg.schedule(job=jobs[0], cron_schedule="0 3 1 * *", execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="On the 1st of each month, build the month that has just ended; skipped, with the "
                             "reason, while that month's data has not arrived.")
    def monthly_refresh(context: dg.ScheduleEvaluationContext):
        month = closed_month(context.scheduled_execution_time or datetime.now(timezone.utc))
        available = source_months()
        if month not in available:
            newest = available[-1] if available else "none"
            return dg.SkipReason(f"the data of {month} has not arrived (the dataset's newest month is {newest})")
        return dg.RunRequest(run_key=f"monthly-{month}", partition_key=month)

    automation = dg.AutomationConditionSensorDefinition(
        "semid_automation", target=dg.AssetSelection.assets(*AUTOMATED), default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Evaluates the assets' automation conditions: each month × method's stages and the month's "
                    "comparison run once their inputs are all there and one changed.")
    return jobs, [monthly_refresh], [automation]
