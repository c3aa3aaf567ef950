"""Run workers forked from a process that has imported the pipeline once (used by ``LocalRunLauncher``).

A run launched the default way gets a new Python process (the code server spawns it), which
imports dagster, the pipeline's definitions, MLflow and MLflow's SQL store before its first
step. For a month × method run whose steps take seconds, those imports were most of the
run's time (``bench/bench_ui_run.py``). Here one *fork server* process, started by the first
launch, imports all of that once; each later run's worker is forked from it and starts with
the imports done. The worker executes the run with the function ``dagster api execute_run``
uses, so the run's events, logs and outputs do not depend on how it was started.

The fork server holds the code as it was when it started. Before each launch the package's
source files (paths, sizes, modification times) are compared with that moment, and a changed
package gets a new fork server: a run never executes older code than the files hold. A
change of the environment (the dataset, the home) needs `semid ui` restarted, as for the
code server itself.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import multiprocessing.forkserver
import sys
import threading
from pathlib import Path

# The fork server imports this module (by name): see warm_imports.py for what it holds.
DEFINITIONS_MODULE = "semid_assets.definitions"
PRELOAD = ["semid_assets.warm_imports"]
PACKAGE_DIR = Path(__file__).resolve().parent

_lock = threading.Lock()
_started_for: dict[str, str | None] = {"fingerprint": None}


def source_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """A digest of the package's ``.py`` files: relative path, size and modification time of each."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(package_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def can_fork(run) -> bool:
    """Whether ``run`` executes this package's definitions with this interpreter (what the fork server holds)."""
    origin = run.job_code_origin
    pointer = getattr(origin.repository_origin, "code_pointer", None) if origin else None
    return (getattr(pointer, "module", None) == DEFINITIONS_MODULE
            and origin.repository_origin.executable_path == sys.executable)


def start_worker(run_id: str, instance_ref) -> int:
    """Fork the worker of ``run_id`` from the fork server (started, or restarted for changed code,
    first) and return its pid. The worker reports its own pid as the run's process."""
    context = multiprocessing.get_context("forkserver")
    with _lock:
        fingerprint = source_fingerprint()
        if _started_for["fingerprint"] != fingerprint:
            # The fork server holds the code it imported: a changed package needs a new one.
            multiprocessing.forkserver._forkserver._stop()
            context.set_forkserver_preload(PRELOAD)
            _started_for["fingerprint"] = fingerprint
        worker = context.Process(target=execute_run, args=(run_id, instance_ref), name=f"dagster-run-{run_id}",
                                 daemon=False)
        worker.start()
    multiprocessing.active_children()  # joins workers that have ended (their exit status is not used)
    return worker.pid


def execute_run(run_id: str, instance_ref) -> None:
    """The run's worker: what ``dagster api execute_run`` does, in a process forked with its imports done.

    SIGINT and SIGTERM are taken as Dagster takes them in a run worker: the run is interrupted
    at the next point it checks, and marked canceled when a termination was asked for."""
    import dagster as dg
    from dagster._cli.api import _execute_run_command_body
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), dg.DagsterInstance.from_ref(instance_ref) as instance:
        _execute_run_command_body(run_id, instance, lambda event: None, set_exit_code_on_failure=False)
