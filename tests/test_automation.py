"""The monthly schedule follows time; declarative automation chains a month into every method's stages."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from semid_assets.defs.automation import AUTOMATED, closed_month
from semid_assets.partitions import METHOD, MONTH, build_partitions
from semid_assets.settings import METHODS


def _tick(defs, instance, when: datetime):
    schedule = defs.resolve_schedule_def("monthly_refresh")
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                   repository_def=defs.get_repository_def()) as context:
        return schedule.evaluate_tick(context)


def test_schedule_builds_the_month_that_just_ended_or_says_why_not(tiny_run):
    defs, instance, _, months = tiny_run
    after_last = pd.Period(months[-1], freq="M") + 1
    due = _tick(defs, instance, after_last.start_time.replace(hour=3).to_pydatetime().replace(tzinfo=timezone.utc))
    assert [r.partition_key for r in due.run_requests] == [months[-1]]
    later = _tick(defs, instance, (after_last + 1).start_time.replace(hour=3).to_pydatetime().replace(tzinfo=timezone.utc))
    assert not later.run_requests and f"the data of {after_last} has not arrived" in later.skip_message
    assert defs.resolve_schedule_def("monthly_refresh").description


def test_a_growing_log_gets_month_partitions_up_to_the_month_that_just_ended():
    parts = build_partitions(["2025-01", "2025-02"], ("rq_kmeans",), open_ended=True)
    assert parts.month.get_last_partition_key() == closed_month(datetime.now(timezone.utc))
    fixed = build_partitions(["2025-01", "2025-02"], ("rq_kmeans",))
    assert fixed.month.get_last_partition_key() == "2025-02"


def test_automation_chains_a_new_month_into_every_method_and_its_reports(tiny_run):
    defs, instance, _, months = tiny_run
    selection = dg.AssetSelection.assets(*AUTOMATED)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
    assert first.total_requested == 0, "what the demo materialised is not redone"

    # A month's embeddings land again (as a schedule run or a UI backfill would make them).
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="aligned_embeddings", partition=months[0]))
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection,
                                               cursor=first.cursor)
    requested = {(found.asset_key.to_user_string(), str(found.partition_key))
                 for result in second.results if result.true_subset.size
                 for found in result.true_subset.expensively_compute_asset_partitions()}
    for method in METHODS:
        partition = str(dg.MultiPartitionKey({MONTH: months[0], METHOD: method}))
        for asset in ("tokenizer", "sid_staleness", "semantic_ids", "sid_stability", "sid_hierarchy"):
            assert (asset, partition) in requested, (asset, partition)
    assert not any(p.startswith(months[1]) or months[1] in p for _, p in requested)
    assert defs.resolve_sensor_def("semid_automation").description
