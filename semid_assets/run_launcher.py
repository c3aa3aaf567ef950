"""Dagster's default run launcher with warm run workers, plus a check that a run's process is still alive.

**Warm workers.** ``DefaultRunLauncher`` asks the code server to start each run in a new
Python process, which imports dagster, the definitions and MLflow again before its first
step. With ``warm_runs`` (on in the repository's ``dagster.yaml``), a run of this package's
definitions is forked instead from one process that has imported them once
(``semid_assets/warm_runs.py``); other runs, or ``warm_runs: false``, launch as
``DefaultRunLauncher`` does. Terminating a forked run interrupts its process (Dagster marks
it canceled), as the code server does for the runs it started.

**Run health.** Dagster's run monitoring fails a run whose worker is gone only if the
launcher can say so, and ``DefaultRunLauncher`` cannot. The code server that launched a run
notices when that run's process dies, but only while the code server itself lives: when
both go down (the `semid ui` terminal closed hard, the machine out of memory), the run stayed
STARTED for ever and, with one run at a time, every queued run waited behind it.
:class:`LocalRunLauncher` reports a run's worker as failed once the process that recorded
itself as the run's process is gone. It looks the process up on this machine, so the daemon
must run on the host that runs the runs, as it does under ``semid ui`` / ``dagster dev``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from dagster import DagsterEventType, DefaultRunLauncher, Field
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus

WORKER_PID_TAG = "semid/warm_worker_pid"

# Slack between a process's start and the event it logged about itself: /proc gives start
# times in clock ticks, and the two clocks are read by different processes.
_CLOCK_SLACK_SECONDS = 2.0


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` with warm run workers (``warm_runs``), whose workers run monitoring can
    check (same host only)."""

    def __init__(self, inst_data=None, warm_runs: bool = False):
        super().__init__(inst_data=inst_data)
        self.warm_runs = warm_runs

    @classmethod
    def config_type(cls):
        return {"warm_runs": Field(bool, is_required=False, default_value=False, description=(
            "Fork each run of semid's definitions from a process that has imported them once, instead "
            "of starting a new Python process per run."))}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, warm_runs=config_value.get("warm_runs", False))

    def launch_run(self, context: LaunchRunContext) -> None:
        from semid_assets import warm_runs

        run = context.dagster_run
        if not (self.warm_runs and warm_runs.can_fork(run)):
            super().launch_run(context)
            return
        pid = warm_runs.start_worker(run.run_id, self._instance.get_ref())
        self._instance.add_run_tags(run.run_id, {WORKER_PID_TAG: str(pid)})

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id) if self.has_instance else None
        if run is None or WORKER_PID_TAG not in run.tags:
            return super().terminate(run_id)
        if run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        try:
            # The worker takes SIGINT as Dagster's run workers do: the run stops at its next
            # interruption point and is marked canceled.
            os.kill(int(run.tags[WORKER_PID_TAG]), signal.SIGINT)
        except ProcessLookupError:
            return False
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        recorded = _run_process(self._instance, run.run_id)
        if recorded is None:
            # No process recorded itself yet, or the run belongs to a process that logs none;
            # nothing to judge, so the run is left alone.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run process recorded")
        pid, logged_at = recorded
        if process_alive_since(pid, logged_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run process {pid} is alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's process (pid {pid}) is gone")


def _run_process(instance, run_id: str) -> tuple[int, float] | None:
    """``(pid, time logged)`` of the first engine event of ``run_id`` that names its process.

    A run launched through a code server logs "Started process for run (pid)" first; a run
    executed in-process (``semid demo``) logs its executor's "Executing steps in process
    (pid)". Later engine events may name step subprocesses, hence the first.
    """
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT).records
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = event.engine_event_data.metadata if event and event.engine_event_data else {}
        if "pid" in metadata:
            return int(metadata["pid"].value), record.event_log_entry.timestamp
    return None


def process_alive_since(pid: int, logged_at: float) -> bool:
    """Whether ``pid`` is a live (not zombie) process that already existed at ``logged_at``.

    The start-time test keeps a recycled pid from passing for the dead worker; it reads
    Linux's /proc, and where there is none the process's existence alone decides.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    if not Path("/proc/self/stat").is_file():
        return True
    try:
        # The command name in parentheses may hold spaces; the fields after it do not.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False  # exited since os.kill
    state, start_ticks = fields[0], int(fields[19])
    if state in ("Z", "X"):
        return False
    started = _boot_time() + start_ticks / os.sysconf("SC_CLK_TCK")
    return started <= logged_at + _CLOCK_SLACK_SECONDS


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("/proc/stat has no btime line")
