"""semid_assets.inline.run_job: a partition run in this process that does not hold its outputs."""

import gc
import os
import sys
import weakref

import dagster as dg
import pytest

from semid_assets import inline
from semid_assets.inline import run_job

MADE: list[weakref.ref] = []


class Blob:
    """Stands in for a large table: weakly referenceable, so the test can see whether anything holds it."""


class DiscardingIOManager(dg.ConfigurableIOManager):
    def handle_output(self, context, obj) -> None:
        pass

    def load_input(self, context):
        return None


PARTS = dg.MultiPartitionsDefinition({"month": dg.StaticPartitionsDefinition(["2025-01", "2025-02"]),
                                      "method": dg.StaticPartitionsDefinition(["rq_kmeans", "letter"])})


@dg.asset(partitions_def=PARTS)
def blob(context: dg.AssetExecutionContext) -> Blob:
    made = Blob()
    MADE.append(weakref.ref(made))
    context.log.info(f"made for {context.partition_key}")
    return made


def _definitions() -> dg.Definitions:
    return dg.Definitions(assets=[blob], jobs=[dg.define_asset_job("blob_job", [blob], partitions_def=PARTS)],
                          resources={"io_manager": DiscardingIOManager()}, executor=dg.in_process_executor)


def test_run_job_materialises_the_partition_and_keeps_no_output(tmp_path):
    defs = _definitions()
    key = dg.MultiPartitionKey({"month": "2025-02", "method": "letter"})
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = run_job(defs, "blob_job", key, instance=instance)
        gc.collect()
        assert result.success
        assert MADE[-1]() is None, "the run's output is still held after the run"
        assert not inline._REGISTERED, "the definitions stay registered after the run"
        materialised = instance.fetch_materializations(dg.AssetKey("blob"), limit=1).records
        assert materialised[0].partition_key == str(key)

        # What run_job avoids: execute_in_process holds every output while its result lives.
        held = defs.resolve_job_def("blob_job").execute_in_process(partition_key=key, instance=instance)
        gc.collect()
        assert held.success and MADE[-1]() is not None


@dg.asset(partitions_def=PARTS)
def first(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"pid": os.getpid()})


@dg.asset(partitions_def=PARTS, deps=[first])
def second(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"pid": os.getpid()})


def step_process_job(name: str) -> dg.JobDefinition:
    """Rebuilt by each step's process (run_job's ``rebuild``): a job whose steps run in processes of their own."""
    return dg.Definitions(assets=[first, second], jobs=[dg.define_asset_job("pids_job", [first, second],
                                                                            partitions_def=PARTS)],
                          executor=dg.multiprocess_executor.configured({"max_concurrent": 1})).resolve_job_def(name)


def test_run_job_runs_each_step_in_a_process_of_its_own_when_the_executor_says_so(tmp_path, monkeypatch):
    # The step processes import this module by name to rebuild the job. They start with this
    # process's sys.path less its first entry (pytest's, this folder), so the folder goes last too.
    monkeypatch.setattr(sys, "path", [*sys.path, os.path.dirname(__file__)])
    defs = dg.Definitions(jobs=[step_process_job("pids_job")])
    key = dg.MultiPartitionKey({"month": "2025-01", "method": "rq_kmeans"})
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = run_job(defs, "pids_job", key, instance=instance, raise_on_error=True,
                         rebuild=(__name__, step_process_job.__name__))
        assert result.success
        pids = [instance.fetch_materializations(dg.AssetKey(name), limit=1).records[0]
                .asset_materialization.metadata["pid"].value for name in ("first", "second")]
        assert os.getpid() not in pids and pids[0] != pids[1]
        assert not inline._REGISTERED


def test_step_processes_setting_picks_the_executor():
    from semid_assets.definitions import executor_of
    from semid_assets.settings import Settings

    assert executor_of(Settings.from_env({})) is dg.in_process_executor
    assert executor_of(Settings.from_env({"SEMID_STEP_PROCESSES": "2"})).name == "multiprocess"
    with pytest.raises(ValueError, match="SEMID_STEP_PROCESSES"):
        Settings.from_env({"SEMID_STEP_PROCESSES": "two"})
