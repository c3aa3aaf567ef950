"""The Dagster webserver (and daemon) on 127.0.0.1: list assets over GraphQL, launch a partition, wait for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semid_assets.home import PROJECT_ROOT, prepare_home
from semid_assets.settings import Settings
from ui_servers import free_port, graphql

ASSETS_QUERY = "{ assetNodes { assetKey { path } } }"
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
WORKSPACE = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
RUN_STATUS = 'query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }'


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def dagster_servers(tmp_path):
    settings = Settings.from_env({"SEMID_HOME": str(tmp_path / "home"), "SEMID_SIZE": "tiny"})
    saved = dict(os.environ)
    prepare_home(settings)
    env = dict(os.environ, SEMID_SIZE="tiny", SEMID_DATASET="synthetic")
    os.environ.clear()
    os.environ.update(saved)
    port = free_port()
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    bin_dir = Path(sys.executable).parent
    logs = open(tmp_path / "servers.log", "wb")
    web = subprocess.Popen([str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)],
                           env=env, cwd=PROJECT_ROOT, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True)
    daemon = subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", workspace], env=env, cwd=PROJECT_ROOT,
                              stdout=logs, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                entries = graphql(port, WORKSPACE)["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [e["locationOrLoadError"] for e in entries
                              if e["locationOrLoadError"]["__typename"] == "PythonError"]
                    assert not errors, errors
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or web.poll() is not None:
                raise RuntimeError((tmp_path / "servers.log").read_text()[-3000:])
            time.sleep(1)
        yield port, settings
    finally:
        _stop(web)
        _stop(daemon)
        logs.close()


def test_list_assets_and_materialise_a_partition_overgraphql(dagster_servers):
    port, settings = dagster_servers
    keys = {"/".join(node["assetKey"]["path"]) for node in graphql(port, ASSETS_QUERY)["assetNodes"]}
    assert {"raw_items", "raw_interactions", "multimodal_features", "item_pairs", "aligned_embeddings",
            "tokenizer", "semantic_ids"} <= keys

    month = settings.source().months()[0]
    params = {
        "selector": {"repositoryLocationName": "semid", "repositoryName": "__repository__",
                     "jobName": "monthly_lineage_job", "assetSelection": [{"path": ["raw_items"]}]},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": month}]},
        "mode": "default",
    }
    launched = graphql(port, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline, status = time.monotonic() + 300, None
    while time.monotonic() < deadline:
        status = graphql(port, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
    output = settings.assets_dir("synthetic-tiny") / "raw_items" / f"{month}.parquet"
    assert output.exists()


def test_prepare_home_creates_the_instance_databases_before_any_server_starts(tmp_path, monkeypatch):
    # A webserver and a daemon that both create them race on alembic's version table.
    # prepare_home points both variables at the home; monkeypatch puts them back afterwards.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("SEMID_HOME", str(tmp_path / "home"))
    settings = Settings.from_env({"SEMID_HOME": str(tmp_path / "home"), "SEMID_SIZE": "tiny"})
    prepare_home(settings)
    for database in ("history/runs.db", "history/runs/index.db", "schedules/schedules.db"):
        assert (settings.dagster_home / database).is_file(), database
    import sqlite3

    with sqlite3.connect(settings.dagster_home / "history" / "runs.db") as db:
        assert len(db.execute("select version_num from alembic_version").fetchall()) == 1
