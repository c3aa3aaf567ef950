"""Time moves the monthly schedule, not a reload: under `semid ui`'s running webserver and daemon,
a month appended to a Parquet log is the month the schedule builds, with the code location
loaded once.

The log is the tiny synthetic catalogue moved in time so that it ends two months before the
current month. The schedule is ticked through the running code location as the UI's "Test
schedule" does it (GraphQL ``scheduleDryRun`` at the next 1st-of-the-month tick) and its run
request is launched as it stands (``launchRun``), so the daemon runs it.
"""

from __future__ import annotations

import os
import shutil
from datetime import timezone

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ui_servers import UiServers, graphql

from semid_assets.defs.automation import MONTHLY_JOB
from semid_assets.home import prepare_home
from semid_assets.settings import Settings

pytestmark = pytest.mark.heavy

RUN_SECONDS = 900
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name updatedTimestamp versionKey } } } }"
DRY_RUN = """mutation($selector: ScheduleSelector!, $timestamp: Float) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick { evaluationResult { skipReason error { message }
        runRequests { runKey tags { key value } runConfigYaml } } }
    ... on PythonError { message }
  }
}"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
REPOSITORY = {"repositoryLocationName": "semid", "repositoryName": "__repository__"}


def _moved_log(source, months_back: int) -> tuple[pa.Table, pd.DataFrame, str]:
    """The catalogue and its whole log moved by whole months so the log's last month is ``months_back``
    months before the current one; also that last month."""
    last = source.months()[-1]
    target = pd.Timestamp.now(tz="UTC").tz_localize(None).to_period("M") - months_back
    shift = pd.DateOffset(months=(target - pd.Period(last, freq="M")).n)
    items = source.items_as_of(last).drop_columns([c for c in source.items_as_of(last).column_names
                                                   if c.startswith("truth_")])
    created = pd.Series(items.column("created_at").to_numpy()) + shift
    items = items.set_column(items.column_names.index("created_at"), "created_at",
                             pa.array(created.to_numpy().astype("datetime64[us]")))
    interactions = source.interactions_as_of(last).assign(ts=lambda f: f["ts"] + shift)
    return items, interactions, str(target)


def _write(items: pa.Table, interactions: pd.DataFrame, items_path, interactions_path) -> None:
    """Both files replaced whole, each by a rename (how a user's export lands)."""
    for write, path in ((lambda p: pq.write_table(items, p), items_path),
                        (lambda p: interactions.to_parquet(p, index=False), interactions_path)):
        partial = path.with_suffix(".partial")
        write(partial)
        os.replace(partial, path)


def _tick(servers: UiServers, timestamp: float) -> dict:
    selector = {**REPOSITORY, "scheduleName": "monthly_refresh"}
    tick = graphql(servers.dagster_port, DRY_RUN, {"selector": selector, "timestamp": timestamp})["scheduleDryRun"]
    assert tick["__typename"] == "DryRunInstigationTick", tick
    result = tick["evaluationResult"]
    assert result["error"] is None, result["error"]
    return result


def _launch(servers: UiServers, request: dict) -> str:
    params = {"selector": {**REPOSITORY, "jobName": MONTHLY_JOB}, "mode": "default",
              "executionMetadata": {"tags": request["tags"]}, "runConfigData": request["runConfigYaml"]}
    launched = graphql(servers.dagster_port, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _location(servers: UiServers) -> dict:
    entries = graphql(servers.dagster_port, LOCATIONS)["workspaceOrError"]["locationEntries"]
    return next(e for e in entries if e["name"] == "semid")


def test_a_month_appended_to_the_log_is_built_by_the_schedule_without_a_reload(tiny_run, tiny_settings, tmp_path,
                                                                             monkeypatch):
    # The whole log ends with the month that has just ended; its rows arrive during the test.
    items, interactions, new_month = _moved_log(tiny_settings.source(), months_back=1)
    last = str(pd.Period(new_month, freq="M") - 1)
    created = pd.Series(items.column("created_at").to_numpy())
    arrived = (interactions["ts"].dt.to_period("M") == new_month).to_numpy()
    items_path, interactions_path = tmp_path / "items.parquet", tmp_path / "interactions.parquet"
    _write(items.filter(pa.array((created.dt.to_period("M") <= last).to_numpy())), interactions[~arrived],
           items_path, interactions_path)

    environ = dict(os.environ, SEMID_DATASET="parquet", SEMID_ITEMS=str(items_path),
                   SEMID_INTERACTIONS=str(interactions_path), SEMID_METHODS="rq_kmeans",
                   SEMID_HOME=str(tmp_path / "home"))
    settings = Settings.from_env(environ)
    monkeypatch.setenv("SEMID_HOME", str(settings.home))  # prepare_home sets both; monkeypatch restores them
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    prepare_home(settings)
    # The month's texts are the tiny catalogue's: its token cache (tiny_run's) saves encoding them again.
    shutil.copytree(tiny_settings.cache_dir, settings.cache_dir, dirs_exist_ok=True)
    assert settings.source().months()[-1] == last and arrived.sum() > 0

    # The 1st of this month, 03:00 UTC: the schedule's next tick builds the month that just ended.
    due = pd.Timestamp.now(tz="UTC").to_period("M").start_time.tz_localize(timezone.utc) + pd.Timedelta(hours=3)
    servers = UiServers(settings, tmp_path / "servers.log", environ)
    try:
        servers.start()
        loaded = _location(servers)
        before = _tick(servers, due.timestamp() - 60)
        assert not before["runRequests"]
        assert f"the data of {new_month} has not arrived (the dataset's newest month is {last})" in before["skipReason"]

        _write(items, interactions, items_path, interactions_path)  # the month's rows arrive
        after = _tick(servers, due.timestamp() - 60)
        (request,) = after["runRequests"]
        tags = {t["key"]: t["value"] for t in request["tags"]}
        assert tags["dagster/partition"] == new_month and request["runKey"] == f"monthly-{new_month}"
        run_id = _launch(servers, request)
        assert servers.wait_for_status(run_id, {"SUCCESS", "FAILURE", "CANCELED"}, RUN_SECONDS) == "SUCCESS", \
            servers.log()[-3000:]
        assert _location(servers) == loaded, "the code location was reloaded"
    finally:
        servers.stop()

    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_interactions"), asset_partitions=[new_month]),
            limit=1).records
    assert records, f"no raw_interactions materialisation for {new_month}"
    assert records[0].asset_materialization.metadata["rows_this_month"].value == int(arrived.sum())
