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


def _stop(process: subprocess.Popen, grace: float = 15.0) -> None:
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


def serve(settings: Settings, dagster_port: int = 3000, mlflow_port: int = 5000) -> int:
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
               SEMID_MLFLOW_UI=f"http://127.0.0.1:{mlflow_port}")
    processes = [
        subprocess.Popen(mlflow_command(settings, mlflow_port), env=env, start_new_session=True),
        subprocess.Popen(dagster_command(dagster_port), env=env, start_new_session=True),
    ]
    print(f"Dagster UI: http://127.0.0.1:{dagster_port}\nMLflow UI:  http://127.0.0.1:{mlflow_port}\n"
          f"home: {settings.home} — press Ctrl-C to stop both.", flush=True)
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
            _stop(process)
    print("stopped.")
    return status
