"""`SEMID_STEP_PROCESSES=1`: every step of `semid demo`'s runs in a process of its own gives the same IDs
as the default, every step in the run's process (``tiny_run``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from semid_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
METHOD = "rq_kmeans"


@pytest.mark.slow
def test_step_processes_give_the_in_process_lineages_ids(tiny_run, tiny_settings, tiny_default_sids, tmp_path,
                                                        monkeypatch):
    _, _, _, months = tiny_run
    home = tmp_path / "home"
    settings = Settings.from_env({"SEMID_HOME": str(home), "SEMID_SIZE": "tiny"})
    # The texts were encoded by tiny_run already; their tokens are content-addressed.
    shutil.copytree(tiny_settings.cache_dir, settings.cache_dir)
    env = {**os.environ, "SEMID_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "SEMID_SIZE": "tiny",
           "SEMID_DATASET": "synthetic", "SEMID_METHODS": METHOD, "SEMID_STEP_PROCESSES": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "semid_assets.cli", "demo", "--months", str(len(months)),
                           "--methods", METHOD], env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "multiprocess executor" in _run_logs(home, monkeypatch), "the runs did not execute their steps in processes of their own"
    written = settings.assets_dir(settings.source().name) / "semantic_ids"
    for month in months:
        name = Path(f"month={month}") / f"method={METHOD}.parquet"
        assert pq.read_table(written / name).equals(pq.read_table(tiny_default_sids / name)), month


def _run_logs(home: Path, monkeypatch) -> str:
    """The events of every run in the home's Dagster instance, as text."""
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))  # its dagster.yaml reads it
    with dg.DagsterInstance.get() as instance:
        return "\n".join(record.event_log_entry.message or "" for run in instance.get_runs()
                         for record in instance.get_records_for_run(run.run_id).records)
