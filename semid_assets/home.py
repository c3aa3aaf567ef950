"""Preparing the home directory: folders, and the Dagster instance that lives in it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from semid_assets.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def instance_config_file(settings: Settings | None = None) -> Path:
    """The Dagster instance file to install: ``SEMID_DAGSTER_CONFIG`` if set (e.g.
    ``docs/dagster-production.yaml``), else the working directory's ``dagster.yaml``, else the checkout's."""
    if settings is not None and settings.dagster_config:
        chosen = Path(settings.dagster_config).expanduser()
        if not chosen.is_file():
            raise FileNotFoundError(f"SEMID_DAGSTER_CONFIG={settings.dagster_config!r} is not a file; "
                                    "point it at a Dagster instance yaml such as docs/dagster-production.yaml.")
        return chosen
    for candidate in (Path.cwd() / "dagster.yaml", PROJECT_ROOT / "dagster.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "dagster.yaml not found in the working directory or the semid checkout; run semid from the checkout.")


def prepare_home(settings: Settings) -> None:
    """Create the home folders, install the instance config and point DAGSTER_HOME at it."""
    for folder in (settings.dagster_home, settings.mlflow_artifacts, settings.cache_dir, settings.data_dir):
        folder.mkdir(parents=True, exist_ok=True)
    source = instance_config_file(settings)
    target = settings.dagster_home / "dagster.yaml"
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    os.environ["SEMID_HOME"] = str(settings.home)
    _create_instance_storage()


def _create_instance_storage() -> None:
    """Create the instance's databases (sqlite files, or Postgres tables) now, in this one process.

    Left to the servers, a webserver and a daemon started together on a fresh home both
    create them and can both stamp alembic's version table, after which every load fails
    with "Version table 'alembic_version' has more than one head present".
    """
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        # Touching each storage makes sure it exists (some are built on first use).
        instance.run_storage.get_run_records(limit=1)
        instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION), limit=1)
        instance.schedule_storage.all_instigator_state()
