"""A run killed mid-step is marked failed within a bound, the queue behind it moves on, and the
rerun of its partition gives the same output as an uninterrupted run. A run terminated from the
UI is canceled and its worker (forked by ``LocalRunLauncher``'s warm fork server) ends.

The kill is the hard one: `semid ui`'s Dagster side (webserver, daemon, code server and the
run's process) dies with SIGKILL while the run is inside its ``tokenizer`` step, as when the
terminal is killed or the machine runs out of memory. No process is left that saw the run
die; only run monitoring, once `semid ui` is started again, can fail it. Without it the run
stayed STARTED for ever and, one run at a time, the queued run behind it never started.
"""

from __future__ import annotations

import os
import time

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from ui_servers import UiServers, graphql

from semid_assets.core.artifact import load_npz
from semid_assets.defs.automation import TOKENIZER_JOB
from semid_assets.io_manager import partition_path
from semid_assets.partitions import METHOD as METHOD_DIM
from semid_assets.partitions import MONTH
from semid_assets.run_launcher import WORKER_PID_TAG, process_alive_since
from semid_assets.settings import Settings

pytestmark = pytest.mark.heavy

METHOD = "rq_kmeans_balanced"
# After the servers are back: the daemon's first monitoring pass, poll_interval_seconds (15)
# in dagster.yaml, plus the daemon's own start under a loaded machine.
FAILED_WITHIN_SECONDS = 120
RUN_SECONDS = 420
CANCELED_WITHIN_SECONDS = 120
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""


def _launch(servers: UiServers, key: dg.MultiPartitionKey) -> str:
    tags = [{"key": "dagster/partition", "value": str(key)},
            *({"key": f"dagster/partition/{dim}", "value": value} for dim, value in key.keys_by_dimension.items())]
    params = {"selector": {"repositoryLocationName": "semid", "repositoryName": "__repository__",
                           "jobName": TOKENIZER_JOB},
              "executionMetadata": {"tags": tags}, "mode": "default"}
    launched = graphql(servers.dagster_port, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


TERMINATE = """mutation($runId: String!) { terminateRun(runId: $runId) {
  __typename ... on TerminateRunFailure { message } ... on PythonError { message } } }"""


def _terminate_and_wait(servers: UiServers, instance: dg.DagsterInstance, run_id: str) -> None:
    """Terminate ``run_id`` as the run page's button does; it must end canceled and its worker exit."""
    terminated = graphql(servers.dagster_port, TERMINATE, {"runId": run_id})["terminateRun"]
    assert terminated["__typename"] == "TerminateRunSuccess", terminated
    assert servers.wait_for_status(run_id, {"SUCCESS", "FAILURE", "CANCELED"}, CANCELED_WITHIN_SECONDS) == "CANCELED"
    pid = int(instance.get_run_by_id(run_id).tags[WORKER_PID_TAG])
    deadline = time.monotonic() + CANCELED_WITHIN_SECONDS
    while process_alive_since(pid, time.time()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not process_alive_since(pid, time.time()), f"the canceled run's worker {pid} is still running"


def _step_events(instance: dg.DagsterInstance, run_id: str, step: str) -> set[str]:
    records = instance.get_records_for_run(run_id).records
    return {r.event_log_entry.dagster_event.event_type_value for r in records
            if r.event_log_entry.dagster_event and r.event_log_entry.step_key == step}


def _wait_until_inside_step(instance: dg.DagsterInstance, run_id: str, step: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if "STEP_START" in _step_events(instance, run_id, step):
            return
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not start step {step} within {seconds:.0f}s")


def _outputs(settings: Settings, key: dg.MultiPartitionKey) -> tuple:
    root = settings.assets_dir(settings.source().name)
    sids = pq.read_table((root / "semantic_ids" / partition_path(key)).with_suffix(".parquet"))
    arrays, _ = load_npz((root / "tokenizer" / partition_path(key)).with_suffix(".npz"))
    return sids, arrays


def test_a_killed_run_fails_the_queue_moves_on_and_a_terminated_run_is_canceled(one_month_home, tmp_path):
    settings, month = one_month_home
    key = dg.MultiPartitionKey({MONTH: month, METHOD_DIM: METHOD})
    servers = UiServers(settings, tmp_path / "servers.log", dict(os.environ, SEMID_SIZE="tiny"))
    instance = dg.DagsterInstance.get()
    try:
        servers.start()
        killed = _launch(servers, key)
        queued = _launch(servers, key)  # one run at a time: it waits behind the first
        _wait_until_inside_step(instance, killed, "tokenizer", RUN_SECONDS)
        servers.crash_dagster()
        crashed = time.monotonic()
        assert "STEP_SUCCESS" not in _step_events(instance, killed, "tokenizer"), "the kill came after the step"
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.STARTED
        assert instance.get_run_by_id(queued).status == dg.DagsterRunStatus.QUEUED

        servers.restart()
        back = time.monotonic()
        servers.wait_for_status(killed, {"FAILURE"}, FAILED_WITHIN_SECONDS)
        failed = time.monotonic()
        assert servers.wait_for_status(queued, {"SUCCESS", "FAILURE", "CANCELED"}, RUN_SECONDS) == "SUCCESS", \
            servers.log()[-3000:]
        assert WORKER_PID_TAG in instance.get_run_by_id(queued).tags, "the run was not forked from the warm server"

        terminated = _launch(servers, dg.MultiPartitionKey({MONTH: month, METHOD_DIM: "rq_kmeans"}))
        _wait_until_inside_step(instance, terminated, "tokenizer", RUN_SECONDS)
        _terminate_and_wait(servers, instance, terminated)
    finally:
        servers.stop()
    rerun = _outputs(settings, key)

    # The same partition, uninterrupted, in this process (as `semid demo` runs it).
    from semid_assets.definitions import build_definitions

    job = build_definitions(settings).resolve_job_def(TOKENIZER_JOB)
    job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)
    uninterrupted = _outputs(settings, key)
    instance.dispose()
    assert rerun[0].equals(uninterrupted[0]), "semantic IDs differ from an uninterrupted run"
    assert rerun[1].keys() == uninterrupted[1].keys()
    for name in rerun[1]:
        np.testing.assert_array_equal(rerun[1][name], uninterrupted[1][name], err_msg=name)
    print(f"killed run failed {failed - crashed:.0f}s after the crash, of which {back - crashed:.0f}s restarting "
          f"the servers")


def test_a_run_process_is_alive_only_while_it_runs_and_only_as_itself():
    import subprocess
    import sys

    from semid_assets.run_launcher import process_alive_since

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = time.time()
        assert process_alive_since(child.pid, started)
        # A process started after the event that named its pid is not the one that logged it.
        assert not process_alive_since(child.pid, started - 3600)
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie
        assert not process_alive_since(child.pid, started)
    finally:
        child.kill()
        child.wait()
    assert not process_alive_since(child.pid, started)  # gone


def test_a_run_with_no_recorded_process_is_left_alone(tmp_path, monkeypatch):
    from dagster._core.launcher import WorkerStatus

    from semid_assets.home import prepare_home

    monkeypatch.setenv("SEMID_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    prepare_home(Settings.from_env({"SEMID_HOME": str(tmp_path / "home")}))
    with dg.DagsterInstance.get() as instance:
        run = instance.create_run_for_job(dg.GraphDefinition("empty").to_job(), status=dg.DagsterRunStatus.STARTED)
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING


def test_a_changed_source_file_renews_the_fork_servers_fingerprint(tmp_path):
    from semid_assets.warm_runs import source_fingerprint

    (tmp_path / "stage.py").write_text("SIZE = 1\n")
    before = source_fingerprint(tmp_path)
    assert source_fingerprint(tmp_path) == before
    (tmp_path / "stage.py").write_text("SIZE = 16\n")
    assert source_fingerprint(tmp_path) != before
    edited = source_fingerprint(tmp_path)
    (tmp_path / "new_stage.py").write_text("")
    assert source_fingerprint(tmp_path) != edited
