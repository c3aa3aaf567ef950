"""Helpers for tests that run `semid ui`'s servers: a home with one month built, the servers, GraphQL.

The servers are started by the same code as `semid ui` (``semid_assets.ui.start_servers``),
each in its own session, and stopped by process group. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from semid_assets import ui
from semid_assets.settings import Settings

WORKSPACE = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
SERVERS_READY_SECONDS = 300
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


def build_one_month(settings: Settings, seed_cache_from: Path | None) -> str:
    """Prepare ``settings.home`` and materialise the monthly stages of its newest month in-process.

    ``seed_cache_from``: another home's text-token cache (content-addressed by text and
    encoder) copied in first, so the month's texts are not encoded again. The caller restores
    DAGSTER_HOME / SEMID_HOME, which ``prepare_home`` sets.
    """
    import dagster as dg

    from semid_assets.definitions import build_definitions
    from semid_assets.defs.automation import MONTHLY_JOB
    from semid_assets.home import prepare_home

    prepare_home(settings)
    if seed_cache_from is not None and seed_cache_from.is_dir():
        shutil.copytree(seed_cache_from, settings.cache_dir, dirs_exist_ok=True)
    month = settings.source().months()[-1]
    job = build_definitions(settings).resolve_job_def(MONTHLY_JOB)
    with dg.DagsterInstance.get() as instance:
        job.execute_in_process(partition_key=month, instance=instance, raise_on_error=True)
    return month


class UiServers:
    """`semid ui`'s MLflow server and ``dagster dev`` on free 127.0.0.1 ports, logging to one file."""

    def __init__(self, settings: Settings, log_path: Path, environ: dict):
        self.settings = settings
        self.log_path = log_path
        self.dagster_port, self.mlflow_port = free_port(), free_port()
        self.env = ui.server_env(settings, self.mlflow_port, environ)
        self.processes: list[subprocess.Popen] = []

    @property
    def dagster_url(self) -> str:
        return f"http://127.0.0.1:{self.dagster_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.processes = ui.start_servers(self.settings, self.dagster_port, self.mlflow_port, self.env, output=log)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVERS_READY_SECONDS
        while True:
            if self._dagster_loaded() and self._mlflow_up():
                return
            exited = [p.args for p in self.processes if p.poll() is not None]
            if exited or time.monotonic() > deadline:
                raise RuntimeError(f"servers not ready (exited: {exited}):\n{self.log()[-3000:]}")
            time.sleep(1)

    def _dagster_loaded(self) -> bool:
        try:
            entries = graphql(self.dagster_port, WORKSPACE)["workspaceOrError"]["locationEntries"]
        except OSError:
            return False
        if not entries or any(e["loadStatus"] != "LOADED" for e in entries):
            return False
        errors = [e["locationOrLoadError"] for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
        assert not errors, errors
        return True

    def _mlflow_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.mlflow_url}/health", timeout=10) as response:
                return response.status == 200
        except OSError:
            return False

    def crash_dagster(self) -> None:
        """SIGKILL ``dagster dev`` and everything it started (webserver, daemon, code server, run workers)."""
        dagster = self.processes[1]
        os.killpg(dagster.pid, signal.SIGKILL)
        dagster.wait(timeout=30)

    def restart(self) -> None:
        """Stop whatever is left, then start both servers again on the same home and ports."""
        self.stop()
        self.start()

    def stop(self) -> None:
        for process in self.processes:
            ui.stop(process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def run_status(self, run_id: str) -> str:
        query = 'query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }'
        return graphql(self.dagster_port, query, {"id": run_id})["runOrError"]["status"]

    def wait_for_status(self, run_id: str, wanted: set[str], seconds: float) -> str:
        deadline, status = time.monotonic() + seconds, None
        while time.monotonic() < deadline:
            status = self.run_status(run_id)
            if status in wanted:
                return status
            time.sleep(1)
        raise AssertionError(f"run {run_id} still {status} after {seconds:.0f}s (wanted {sorted(wanted)})")


@contextmanager
def running_servers(settings: Settings, log_path: Path, environ: dict):
    servers = UiServers(settings, log_path, environ)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()
