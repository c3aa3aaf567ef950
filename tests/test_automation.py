"""The monthly schedule and the sensor that chains embeddings to tokenizers."""

from __future__ import annotations

import dagster as dg

from semid_assets.partitions import METHOD, MONTH
from semid_assets.settings import METHODS


def test_schedule_requests_the_newest_month(tiny_run):
    defs, instance, _, months = tiny_run
    schedule = defs.resolve_schedule_def("monthly_refresh")
    with dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def()) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.partition_key == months[-1]
    assert schedule.job_name == "monthly_lineage_job"


def test_sensor_starts_from_now_then_requests_every_method_of_new_months(tiny_run):
    defs, instance, _, months = tiny_run
    sensor = defs.resolve_sensor_def("tokenize_new_embeddings")
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    assert not first.run_requests, "months tokenized before the sensor started are not redone"
    cursor = first.cursor

    # A new materialisation of a month's embeddings (as a schedule run or UI backfill would make).
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="aligned_embeddings", partition=months[0]))
    second = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))
    keys = [r.partition_key for r in second.run_requests]
    assert keys == [dg.MultiPartitionKey({MONTH: months[0], METHOD: m}) for m in METHODS]
    assert int(second.cursor) > int(cursor)
    third = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=second.cursor, definitions=defs))
    assert not third.run_requests


def test_comparison_sensor_waits_for_every_method_of_a_month(tiny_run):
    defs, instance, _, months = tiny_run
    sensor = defs.resolve_sensor_def("compare_complete_months")
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    assert not first.run_requests, "months compared before the sensor started are not redone"

    # One method's new version of a month whose other methods are all materialised: compare it again.
    key = dg.MultiPartitionKey({MONTH: months[0], METHOD: METHODS[-1]})
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="semantic_ids", partition=str(key)))
    second = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs))
    assert [r.partition_key for r in second.run_requests] == [months[0]]
    assert sensor.job_name == "tokenizer_comparison_job"
    third = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=second.cursor, definitions=defs))
    assert not third.run_requests
