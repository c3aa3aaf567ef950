"""``semid demo``: materialise the lineage for the last N months in-process and summarise it."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from semid_assets.core.markdown import markdown_table
from semid_assets.defs.automation import COMPARISON_JOB, MONTHLY_JOB, RANKING_JOB, TOKENIZER_JOB
from semid_assets.inline import run_job
from semid_assets.partitions import METHOD, MONTH


# The demo is read by a person: step-level DEBUG events stay in the Dagster UI.
_QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    if not records:
        raise RuntimeError(f"{asset} [{partition}] has no materialisation")
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def run_demo(defs: dg.Definitions, instance: dg.DagsterInstance, months: list[str], methods: list[str],
             log=print, ranking: bool = False) -> pd.DataFrame:
    """Materialise every month, then every month × method, then the month's method comparison;
    return one summary row per month × method.

    With ``ranking``, each month × method also gets its ``ranking_eval`` (minutes per month
    at default size), summarised by the cold-item AUC of hashing and the best SID variant.
    """
    tokenizing = defs.resolve_job_def(TOKENIZER_JOB)
    every_method = {key.keys_by_dimension[METHOD] for key in tokenizing.partitions_def.get_partition_keys()}
    rows = []
    for month in months:
        log(f"[{month}] catalogue → features → pairs → aligner → embeddings")
        run_job(defs, MONTHLY_JOB, month, instance=instance, raise_on_error=True, run_config=_QUIET)
        for method in methods:
            key = dg.MultiPartitionKey({MONTH: month, METHOD: method})
            log(f"[{month}] {method}: tokenizer → semantic IDs")
            # A failed quality check is a finding to report, not a reason to stop the demo.
            outcome = run_job(defs, TOKENIZER_JOB, key, instance=instance, run_config=_QUIET)
            failures = [e for e in outcome.all_events if e.is_step_failure]
            if failures and not any(e.event_type_value == "ASSET_MATERIALIZATION" and
                                    e.asset_key == dg.AssetKey("semantic_ids") for e in outcome.all_events):
                raise RuntimeError(f"{key}: {failures[0].step_key} failed: "
                                   f"{failures[0].event_specific_data.error.message.strip()}")
            row = summary_row(instance, month, method, str(key))
            row["checks"] = check_summary(outcome)
            if ranking:
                log(f"[{month}] {method}: ranking evaluation")
                ranked = run_job(defs, RANKING_JOB, key, instance=instance, run_config=_QUIET)
                # A month with no history before it (a dataset's first) cannot be ranked; say so in its row.
                failure = next((e for e in ranked.all_events if e.is_step_failure), None)
                if failure is None:
                    row.update(ranking_summary(instance, str(key)))
                else:
                    row["ranking"] = failure.event_specific_data.error.message.strip().splitlines()[0]
            rows.append(row)
        # The comparison reads every method's version of the month; a demo of a subset skips it.
        if every_method <= set(methods):
            log(f"[{month}] comparing {len(methods)} method(s)")
            run_job(defs, COMPARISON_JOB, month, instance=instance, raise_on_error=True, run_config=_QUIET)
    return pd.DataFrame(rows)


def check_summary(outcome) -> str:
    evaluations = [e.event_specific_data for e in outcome.all_events
                   if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    warned = [f"{ev.check_name}: {ev.description}" for ev in evaluations
              if not ev.passed and ev.severity == dg.AssetCheckSeverity.WARN]
    failed = [f"{ev.check_name} failed: {ev.description}" for ev in evaluations
              if not ev.passed and ev.severity != dg.AssetCheckSeverity.WARN]
    passed = len(evaluations) - len(failed) - len(warned)
    return (f"{passed}/{len(evaluations)} passed" + ("; " + "; ".join(failed) if failed else "")
            + ("; warnings: " + "; ".join(warned) if warned else ""))


def _optional(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    try:
        return _latest_metadata(instance, asset, partition)
    except RuntimeError:
        return {}


def _figure(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def summary_row(instance: dg.DagsterInstance, month: str, method: str, key: str) -> dict:
    """One line per month × method: the published generation and its verdict, the candidate's quality,
    what a cut would gain and keep, the serving aligner, and the stability and hierarchy figures."""
    tokenizer = _latest_metadata(instance, "tokenizer", key)
    sids = _latest_metadata(instance, "semantic_ids", key)
    staleness = _optional(instance, "sid_staleness", key)
    serving = _latest_metadata(instance, "aligner", month)
    stability = _optional(instance, "sid_stability", key)
    hierarchy = _optional(instance, "sid_hierarchy", key)
    return {
        "month": month, "method": method, "items": sids["dagster/row_count"],
        "generation": f"{sids['generation']} ({sids['decision']})",
        "new items": sids["new_this_month"], "collision rate": _figure(sids["collision_rate"], 4),
        "candidate rel. MSE": _figure(tokenizer["relative_mse"], 4),
        "candidate keeps (literal)": _figure(tokenizer.get("literal_kept")),
        "staleness MSE gain": _figure(staleness.get("mse_gain")),
        "serving aligner": serving["serving_aligner_month"],
        "vs earlier (literal / ARI@1)": (f"{stability['compared_with_month']}: "
                                         f"{_figure(stability['literal_kept_full'])} / "
                                         f"{_figure(stability['ari_prefix_1'])}"
                                         if "compared_with_month" in stability else "—"),
        "hierarchy lift": _figure(hierarchy.get("lift_at_full_prefix")),
    }


def ranking_summary(instance: dg.DagsterInstance, key: str) -> dict:
    from semid_assets.defs.ranking import summary_of

    return summary_of(_latest_metadata(instance, "ranking_eval", key))


def format_summary(summary: pd.DataFrame) -> str:
    return markdown_table(summary)
