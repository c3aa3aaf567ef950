"""What the fork server of ``warm_runs`` imports once, so that every forked run worker starts with it.

Importing this module loads the pipeline's definitions and resolves their repository and jobs,
the modules of the Dagster instance's storages, then the modules a run opens on its first MLflow
registration (MLflow, its SQL stores and their ORM mappers, semid's registry). It keeps no file,
database or connection open: a forked worker must not share one with its siblings.
"""

import logging

try:
    import semid_assets.definitions as _definitions

    _definitions.defs.get_repository_def().get_all_jobs()  # resolved jobs are cached on the repository
except Exception:  # noqa: BLE001
    # A worker imports the definitions again and the run reports the error where the user sees it;
    # the fork server itself must stay up for the next, corrected code.
    logging.getLogger(__name__).warning("the fork server could not load the definitions", exc_info=True)

import alembic.command  # noqa: E402,F401 (storages check their schema version when opened)
import dagster._core.storage.sqlite_storage  # noqa: E402,F401 (what the worker's instance opens)
import mlflow  # noqa: E402,F401
import mlflow.store.model_registry.sqlalchemy_store  # noqa: E402,F401
import mlflow.store.tracking.sqlalchemy_store  # noqa: E402,F401
import sqlalchemy.orm  # noqa: E402
from dagster._cli import api as _dagster_run_api  # noqa: E402,F401

import semid_assets.registry  # noqa: E402,F401

sqlalchemy.orm.configure_mappers()
