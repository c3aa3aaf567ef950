"""Months of one method published by several processes at once: the outcome is one that publishing the
months one after another gives, and the MLflow aliases agree with the generation archive.

``sid_staleness`` judges a month against the publications stored when it runs; ``semantic_ids``
publishes it later, in another step. A `semid demo` beside the daemon's runs (or concurrent runs
of a backfill) can publish another month of the method in between. The first two tests place
that other publication between the two steps on purpose, in this process; the third runs a whole
earlier month after a later one was published (judged "older"); the last one (marked slow) runs a
real `semid demo` while the daemon of `semid ui` runs the same partitions.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
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


def test_a_month_older_than_the_published_one_publishes_the_generations_ids(two_month_home):
    """The daemon's case: the earlier month's whole tokenizer job after the later month was published.
    sid_staleness judges it "older" (no figure weighed) and semantic_ids still gets that verdict."""
    settings, (earlier, later) = two_month_home
    _materialise(settings, later, TOKENIZER_ASSETS)
    _materialise(settings, earlier, TOKENIZER_ASSETS)

    staleness = _store(settings).read_table("sid_staleness", month=earlier, method=METHOD).to_pandas()
    assert list(staleness["decision"]) == ["older"]
    assert len(_ids(settings, earlier)) > 0
    check_registry_agrees_with_the_archive(settings, later)



def test_the_month_a_generation_was_cut_in_keeps_it_once_an_earlier_month_publishes_it(two_month_home):
    """The daemon's case after that: the later month's job runs again once the earlier month took its IDs
    from the later month's generation. Cutting again there would replace the record and models of a
    generation the earlier month publishes, and every later rerun would fail to find it."""
    settings, (earlier, later) = two_month_home
    _materialise(settings, later, TOKENIZER_ASSETS)
    first = _ids(settings, later)
    _materialise(settings, earlier, TOKENIZER_ASSETS)
    for _ in range(2):
        _materialise(settings, later, TOKENIZER_ASSETS)
        staleness = _store(settings).read_table("sid_staleness", month=later, method=METHOD).to_pandas()
        assert list(staleness["decision"]) == ["keep"], staleness["summary"].iloc[0]
        assert _ids(settings, later).equals(first)
    assert [(r.number, r.origin_month) for r in GenerationArchive(_store(settings)).records(METHOD)] == [(1, later)]
    check_registry_agrees_with_the_archive(settings, later)

# ---------------------------------------------------------------------- `semid demo` beside the daemon
SENSOR = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
  __typename ... on Sensor { id } ... on PythonError { message } } }"""
STOP_SENSOR = """mutation($id: String) { stopSensor(id: $id) { __typename
  ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
ACTIVE = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED"}
DEMO_SECONDS = 900
RUN_SECONDS = 420
MAX_DAEMON_RUNS = 60  # a bound, not a target: launching stops when the demo ends


def _stop_automation(servers: UiServers) -> None:
    """Only the runs this test launches: the automation sensor would add more at times of its choosing."""
    selector = {"repositoryLocationName": "semid", "repositoryName": "__repository__",
                "sensorName": "semid_automation"}
    sensor = graphql(servers.dagster_port, SENSOR, {"selector": selector})["sensorOrError"]
    assert sensor["__typename"] == "Sensor", sensor
    stopped = graphql(servers.dagster_port, STOP_SENSOR, {"id": sensor["id"]})["stopSensor"]
    assert stopped["__typename"] == "StopSensorMutationResult", stopped


def _launch(servers: UiServers, key: dg.MultiPartitionKey) -> str:
    tags = [{"key": "dagster/partition", "value": str(key)},
            *({"key": f"dagster/partition/{dim}", "value": value} for dim, value in key.keys_by_dimension.items())]
    params = {"selector": {"repositoryLocationName": "semid", "repositoryName": "__repository__",
                           "jobName": TOKENIZER_JOB}, "executionMetadata": {"tags": tags}, "mode": "default"}
    launched = graphql(servers.dagster_port, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _two_runs_at_once(settings: Settings, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The home's instance, but running two runs at once (the production variant runs eight).

    The queue counts every run in the instance's storage, the demo's in-process runs included, so with
    the default one run at a time the daemon starts a queued run only between two of the demo's runs:
    the default setup serialises them, and there would be no race to test.
    """
    from semid_assets.home import instance_config_file, prepare_home

    config = folder / "dagster.yaml"
    default = instance_config_file().read_text()
    assert "max_concurrent_runs: 1\n" in default
    config.write_text(default.replace("max_concurrent_runs: 1\n", "max_concurrent_runs: 2\n"))
    monkeypatch.setenv("SEMID_DAGSTER_CONFIG", str(config))  # for the servers and the demo
    settings = dataclasses.replace(settings, dagster_config=str(config))
    prepare_home(settings)
    return settings


def _active(servers: UiServers, launched: list[str]) -> int:
    return sum(servers.run_status(run) in ACTIVE for run in launched[-2:])


def _keep_the_daemon_busy(servers: UiServers, demo: subprocess.Popen, months: list[str],
                          launched: list[str]) -> list[str]:
    """While the demo runs, keep one daemon-launched tokenizer run running and the next one queued (the
    daemon runs one at a time), so the daemon is never idle beside the demo's steps."""
    while demo.poll() is None and len(launched) < MAX_DAEMON_RUNS:
        if _active(servers, launched) < 2:
            launched.append(_launch(servers, _key(months[len(launched) % len(months)])))
        time.sleep(1)
    return launched


def _failures(instance: dg.DagsterInstance, runs: list[str]) -> list[str]:
    """The step failures of these runs, each with its partition, for the report of a failed run."""
    found = []
    for run in runs:
        for record in instance.all_logs(run, of_type=dg.DagsterEventType.STEP_FAILURE):
            event = record.dagster_event
            found.append(f"{instance.get_run_by_id(run).tags.get('dagster/partition')} {event.step_key}: "
                         f"{event.event_specific_data.error.to_string()[-3000:]}")
    return found


def _overlapping(instance: dg.DagsterInstance, daemon_runs: list[str]) -> int:
    """How many of the demo's tokenizer runs ran while a daemon-launched run ran."""
    records = instance.get_run_records(dg.RunsFilter(job_name=TOKENIZER_JOB))
    spans = {r.dagster_run.run_id: (r.start_time, r.end_time) for r in records}
    daemon = [spans[run] for run in daemon_runs]
    demo = [span for run, span in spans.items() if run not in daemon_runs]
    return sum(any(s < de and ds < e for ds, de in daemon) for s, e in demo)


@pytest.mark.slow
def test_a_demo_and_the_daemons_runs_on_one_home_at_once(two_month_home, tmp_path, monkeypatch):
    """`semid demo` (its own process, both months, monthly stages included) while the daemon of `semid ui`
    runs the tokenizer job of the same months again and again: no error anywhere, one version per
    partition's content, ``newest`` on the newest month, each generation's alias and ``champion`` on the
    versions the generation archive names, every month's IDs readable."""
    settings, months = two_month_home
    settings = _two_runs_at_once(settings, tmp_path, monkeypatch)
    env = {**os.environ, "SEMID_SIZE": "tiny", "SEMID_METHODS": METHOD,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    servers = UiServers(settings, tmp_path / "servers.log", env)
    demo_log = tmp_path / "demo.log"
    instance = dg.DagsterInstance.get()
    try:
        servers.start()
        _stop_automation(servers)
        # The daemon is already running a run (its warm worker started) before the demo begins.
        launched = [_launch(servers, _key(months[0]))]
        servers.wait_for_status(launched[0], {"STARTED", "SUCCESS", "FAILURE", "CANCELED"}, RUN_SECONDS)
        launched.append(_launch(servers, _key(months[1 % len(months)])))
        with open(demo_log, "wb") as out:
            demo = subprocess.Popen([sys.executable, "-m", "semid_assets.cli", "demo", "--months", str(len(months)),
                                     "--methods", METHOD], env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                daemon_runs = _keep_the_daemon_busy(servers, demo, months, launched)
                assert demo.wait(timeout=DEMO_SECONDS) == 0, demo_log.read_text()[-4000:]
            finally:
                if demo.poll() is None:
                    demo.kill()
        outcomes = [servers.wait_for_status(run, {"SUCCESS", "FAILURE", "CANCELED"}, RUN_SECONDS)
                    for run in daemon_runs]
    finally:
        servers.stop()
    assert outcomes == ["SUCCESS"] * len(daemon_runs), _failures(instance, daemon_runs)
    # Which runs met when, for the report when they did not: whether they meet depends on timing.
    spans = {r.dagster_run.run_id[:8]: (r.dagster_run.tags.get("dagster/partition"), r.start_time, r.end_time,
                                       r.dagster_run.run_id in daemon_runs)
             for r in instance.get_run_records(dg.RunsFilter(job_name=TOKENIZER_JOB))}
    assert _overlapping(instance, daemon_runs) >= 1, f"no daemon-launched run ran beside the demo's tokenizer runs: {spans}"
    instance.dispose()
    for month in months:
        assert len(_ids(settings, month)) > 0
    check_registry_agrees_with_the_archive(settings, months[-1])
    assert not _store(settings).sweep_temporaries(log=lambda line: None), "temporary files were left behind"
