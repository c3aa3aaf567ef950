"""Shared fixtures: a tiny synthetic catalogue materialised once per session into a temporary home."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from semid_assets.settings import Settings

TINY_MONTHS = 2


def pytest_collection_modifyitems(config, items) -> None:
    """Modules marked ``heavy`` first (the order is otherwise kept): with one worker per core, the
    longest modules start at once and the short ones fill in around them, so the workers finish
    together instead of one running a server test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


@pytest.fixture(scope="session")
def tiny_settings(tmp_path_factory) -> Settings:
    home = tmp_path_factory.mktemp("semid-home")
    return Settings.from_env({"SEMID_HOME": str(home), "SEMID_DATASET": "synthetic", "SEMID_SIZE": "tiny",
                              "SEMID_MLFLOW_UI": "http://127.0.0.1:5000"})


def tiny_default_sids_dir(settings: Settings) -> Path:
    """Where ``tiny_run`` keeps a copy of the ``semantic_ids`` its lineage wrote (``month=…/method=….parquet``)."""
    return settings.home / "tiny-run-semantic-ids"


@pytest.fixture(scope="session")
def tiny_run(tiny_settings):
    """The lineage materialised for the last two tiny months; returns (defs, instance, summary, months)."""
    import dagster as dg

    from semid_assets.definitions import build_definitions
    from semid_assets.demo import run_demo
    from semid_assets.home import prepare_home

    previous = os.environ.get("DAGSTER_HOME"), os.environ.get("SEMID_HOME")
    prepare_home(tiny_settings)
    defs = build_definitions(tiny_settings)
    months = tiny_settings.source().months()[-TINY_MONTHS:]
    instance = dg.DagsterInstance.get()
    summary = run_demo(defs, instance, months, list(tiny_settings.methods), log=lambda s: None)
    # Later tests re-tokenise some partitions on purpose; keep the lineage's own SIDs apart.
    shutil.copytree(tiny_settings.assets_dir(tiny_settings.source().name) / "semantic_ids",
                    tiny_default_sids_dir(tiny_settings))
    yield defs, instance, summary, months
    instance.dispose()
    for key, value in zip(("DAGSTER_HOME", "SEMID_HOME"), previous):
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def unseen_items_file(tiny_run, tiny_settings, tmp_path):
    """``(path, item_ids)``: a Parquet file of the last tiny month's items that the first month's
    catalogue lacked (new uploads), and their ids in file order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, _, _, months = tiny_run
    source = tiny_settings.source()
    first_ids = set(source.items_as_of(months[0]).column("item_id").to_pylist())
    newest = source.items_as_of(months[-1])
    unseen = newest.filter(pa.array([i not in first_ids for i in newest.column("item_id").to_pylist()]))
    assert unseen.num_rows > 0
    path = tmp_path / "new.parquet"
    pq.write_table(unseen, path)
    return path, unseen.column("item_id").to_pylist()


@pytest.fixture
def one_month_home(tiny_run, tiny_settings, tmp_path, monkeypatch):
    """``(settings, month)``: a fresh home with the newest tiny month's monthly stages built in-process,
    its texts taken from the shared tiny home's token cache. For tests that start `semid ui`'s servers."""
    from ui_servers import build_one_month

    # prepare_home sets both variables; monkeypatch puts them back afterwards.
    monkeypatch.setenv("SEMID_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    settings = Settings.from_env({"SEMID_HOME": str(tmp_path / "home"), "SEMID_SIZE": "tiny"})
    return settings, build_one_month(settings, seed_cache_from=tiny_settings.cache_dir)


@pytest.fixture
def two_month_home(tiny_run, tiny_settings, tmp_path, monkeypatch):
    """``(settings, months)``: a fresh home (its own Dagster instance and MLflow store) holding the
    monthly stages' files of both tiny months, copied from ``tiny_run``'s home with its text cache:
    ready for tokenizer runs, nothing tokenized, registered or published yet."""
    from semid_assets.defs.automation import MONTHLY_ASSETS
    from semid_assets.home import prepare_home

    monkeypatch.setenv("SEMID_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    settings = Settings.from_env({"SEMID_HOME": str(tmp_path / "home"), "SEMID_SIZE": "tiny"})
    prepare_home(settings)
    shutil.copytree(tiny_settings.cache_dir, settings.cache_dir, dirs_exist_ok=True)
    name = tiny_settings.source().name
    for asset in MONTHLY_ASSETS:
        if (tiny_settings.assets_dir(name) / asset).is_dir():
            shutil.copytree(tiny_settings.assets_dir(name) / asset, settings.assets_dir(name) / asset)
    return settings, tiny_run[3]


@pytest.fixture(scope="session")
def tiny_default_sids(tiny_run, tiny_settings) -> Path:
    """The folder of ``semantic_ids`` (``month=…/method=….parquet``) exactly as ``tiny_run``'s lineage wrote them."""
    return tiny_default_sids_dir(tiny_settings)
