"""``semid ui``: the Dagster UI (webserver + daemon) and the MLflow UI, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from semid_assets.home import PROJECT_ROOT
from semid_assets.settings import Settings


# MLflow 3.17 opens in its GenAI view and has no server setting for another one: its
# browser app keeps the choice (and the two dismissals) in the browser's local storage.
MLFLOW_FIRST_VISIT = ("MLflow, first visit: click 'Model training' at the top left, close the assistant panel (x),\n"
                      "  and on Model registry close the 'new Model Registry UI' box (x); your browser remembers them.")


def stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    if process.poll() is not None:
        return
    # Each server runs in its own session: signalling the group reaches its children
    # (dagster dev's webserver, daemon and code server) as well.
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def mlflow_command(settings: Settings, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", settings.mlflow_tracking_uri,
            "--default-artifact-root", settings.mlflow_artifacts.as_uri()]


def dagster_command(port: int) -> list[str]:
    workspace = Path.cwd() / "workspace.yaml"
    if not workspace.is_file():
        workspace = PROJECT_ROOT / "workspace.yaml"
    return [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]


def server_env(settings: Settings, mlflow_port: int, environ: dict | None = None) -> dict:
    """The environment both servers run in: the home's instance, absolute data paths, no MLflow jobs."""
    env = dict(os.environ if environ is None else environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
               SEMID_MLFLOW_UI=f"http://127.0.0.1:{mlflow_port}", DAGSTER_HOME=str(settings.dagster_home),
               SEMID_HOME=str(settings.home))
    # Dagster runs from the instance folder (see start_servers): relative data paths and
    # import paths must still name what they named where the user typed `semid ui`.
    for name in ("SEMID_ITEMS", "SEMID_INTERACTIONS"):
        if env.get(name):
            env[name] = str(Path(env[name]).expanduser().resolve())
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(str(Path(entry).resolve()) if entry else entry
                                            for entry in env["PYTHONPATH"].split(os.pathsep))
    return env


def start_servers(settings: Settings, dagster_port: int, mlflow_port: int, env: dict,
                  output=None) -> list[subprocess.Popen]:
    """Start the MLflow server and ``dagster dev``, each in its own session (stop them with :func:`stop`).

    ``dagster dev`` runs from ``$DAGSTER_HOME``, where ``prepare_home`` put the instance config:
    started from the checkout it would find the repository's ``dagster.yaml`` there too and warn
    that this file is not the one in use (it is only the template the home's copy comes from).
    """
    logs = {"stdout": output, "stderr": subprocess.STDOUT if output else None}
    return [
        subprocess.Popen(mlflow_command(settings, mlflow_port), env=env, start_new_session=True, **logs),
        subprocess.Popen(dagster_command(dagster_port), env=env, cwd=settings.dagster_home, start_new_session=True,
                         **logs),
    ]


def serve(settings: Settings, dagster_port: int = 3000, mlflow_port: int = 5000) -> int:
    processes = start_servers(settings, dagster_port, mlflow_port, server_env(settings, mlflow_port))
    print(f"Dagster UI: http://127.0.0.1:{dagster_port}\nMLflow UI:  http://127.0.0.1:{mlflow_port}\n"
          f"{MLFLOW_FIRST_VISIT}\nhome: {settings.home} — press Ctrl-C to stop both.", flush=True)
    stopping = {"flag": False}

    def request_stop(signum, frame):
        stopping["flag"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    status = 0
    try:
        while not stopping["flag"]:
            exited = [p for p in processes if p.poll() is not None]
            if exited:
                status = exited[0].returncode or 1
                print(f"a server exited with status {exited[0].returncode}; stopping the other.", file=sys.stderr)
                break
            time.sleep(0.5)
    finally:
        for process in processes:
            stop(process)
    print("stopped.")
    return status
