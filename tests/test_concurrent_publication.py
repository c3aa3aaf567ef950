"""Months of one method published by several processes at once: the outcome is one that publishing the
months one after another gives, and the MLflow aliases agree with the generation archive.

``sid_staleness`` judges a month against the publications stored when it runs; ``semantic_ids``
publishes it later, in another step. A `semid demo` beside the daemon's runs (or concurrent runs
of a backfill) can publish another month of the method in between. The first two tests place
that other publication between the two steps on purpose, in this process; the last one runs a
real `semid demo` while the daemon of `semid ui` runs the same partitions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from ui_servers import UiServers, graphql

from semid_assets.core.lifecycle.archive import GenerationArchive
from semid_assets.core.lifecycle.generations import published
from semid_assets.core.lifecycle.versions import CHAMPION_ALIAS, NEWEST_ALIAS, generation_alias
from semid_assets.core.storage import AssetStore, content_sha256
from semid_assets.defs.automation import TOKENIZER_ASSETS, TOKENIZER_JOB
from semid_assets.partitions import METHOD as METHOD_DIM
from semid_assets.partitions import MONTH
from semid_assets.registry import CONTENT_TAG, Registry
from semid_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
METHOD = "rq_kmeans"
MODEL = f"semid-synthetic-tiny-{METHOD}"
JUDGE = ["tokenizer", "sid_staleness"]
PUBLISH = [a for a in TOKENIZER_ASSETS if a not in JUDGE]


def _key(month: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({MONTH: month, METHOD_DIM: METHOD})


def _materialise(settings: Settings, month: str, assets: list[str]) -> None:
    from semid_assets.definitions import build_definitions

    defs = build_definitions(settings)
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([*defs.assets, *defs.asset_checks], partition_key=str(_key(month)),
                                instance=instance, selection=dg.AssetSelection.assets(*assets),
                                resources=defs.resources)
    assert result.success


def _store(settings: Settings) -> AssetStore:
    return AssetStore(settings.assets_dir("synthetic-tiny"))


def _ids(settings: Settings, month: str) -> pd.DataFrame:
    return _store(settings).read_table("semantic_ids", month=month, method=METHOD).to_pandas()


def _registry(settings: Settings) -> Registry:
    return Registry(settings.mlflow_tracking_uri, settings.mlflow_artifacts)


def check_registry_agrees_with_the_archive(settings: Settings, newest_month: str) -> None:
    """One version per partition's content; ``newest`` on the newest month; each generation's alias and
    ``champion`` on the version that holds the archived tokenizer of the generation in force."""
    registry, store = _registry(settings), _store(settings)
    versions = registry.client.search_model_versions(filter_string=f"name = '{MODEL}'")
    contents = [(v.tags["month"], v.tags[CONTENT_TAG]) for v in versions]
    assert len(contents) == len(set(contents)), f"duplicate versions for one partition's content: {contents}"
    assert registry.version_by_alias(MODEL, NEWEST_ALIAS).tags["month"] == newest_month
    records = GenerationArchive(store).records(METHOD)
    numbers = [r.number for r in records]
    assert len(numbers) == len(set(numbers)), f"two chains of generations: {[(r.number, r.origin_month) for r in records]}"
    for record in records:
        held = registry.version_by_alias(MODEL, generation_alias(record.number))
        frozen = store.path("generation_tokenizer", record.origin_month, METHOD, suffix=".npz")
        assert held.tags["month"] == record.origin_month and held.tags[CONTENT_TAG] == content_sha256(frozen)
    newest = max(records, key=lambda r: r.number)
    assert registry.version_by_alias(MODEL, CHAMPION_ALIAS).version == \
        registry.version_by_alias(MODEL, generation_alias(newest.number)).version


def test_an_earlier_month_published_after_the_verdict_is_judged_again(two_month_home):
    settings, (earlier, later) = two_month_home
    _materialise(settings, later, JUDGE)            # judged first: nothing is published yet
    _materialise(settings, earlier, TOKENIZER_ASSETS)  # meanwhile, the earlier month is published
    _materialise(settings, later, PUBLISH)

    before, now = published(_ids(settings, earlier)), _ids(settings, later)
    staleness = _store(settings).read_table("sid_staleness", month=later, method=METHOD).to_pandas()
    assert staleness["decision"].iloc[0] == "first"  # what sid_staleness saw
    records = GenerationArchive(_store(settings)).records(METHOD)
    if now["generation"].max() == 1:  # the generation kept: the earlier month's items keep their SIDs
        assert [r.origin_month for r in records] == [earlier]
        kept = now.set_index("item_id").loc[before.item_ids]
        assert np.array_equal(kept[["c1", "c2", "c3"]].to_numpy(), before.codes)
    else:  # judged a cut against the earlier month: generation 2, cut in this month
        assert [(r.number, r.origin_month) for r in records] == [(1, earlier), (2, later)]
    check_registry_agrees_with_the_archive(settings, later)


def test_a_later_month_published_after_the_verdict_makes_the_month_a_backfill(two_month_home):
    settings, (earlier, later) = two_month_home
    _materialise(settings, earlier, JUDGE)           # judged first: nothing is published yet
    _materialise(settings, later, TOKENIZER_ASSETS)  # meanwhile, the later month is published
    _materialise(settings, earlier, PUBLISH)

    then, now = _ids(settings, earlier), _ids(settings, later).set_index("item_id")
    assert [r.origin_month for r in GenerationArchive(_store(settings)).records(METHOD)] == [later]
    assert then.set_index("item_id").equals(now.loc[then["item_id"]]), "a backfill takes the later month's IDs"
    check_registry_agrees_with_the_archive(settings, later)
