"""Time one month × method tokenizer run launched through `semid ui` against the same run in-process.

    python bench/bench_ui_run.py [--size tiny] [--method rq_kmeans] [--repeats 4]

Builds a fresh home (``--home``, default a temporary folder) with the newest month's monthly
stages (in-process), starts `semid ui`'s servers on free ports, then alternates: the
partition's ``tokenizer_job`` launched over GraphQL and run by the daemon (timed from the
launch request to the run's end: queue pick-up, the run's process start, its steps), and
the same job executed in this process as ``semid demo`` does (timed around the call, the
process already warm). The first daemon-launched run also starts the launcher's fork server
(``semid_assets/warm_runs.py``: it imports the pipeline once); it is reported apart, and the
ratio is that of the later runs' median to the in-process median. Each run registers a
version. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import dagster as dg  # noqa: E402
from ui_servers import UiServers, build_one_month, graphql  # noqa: E402

from semid_assets.definitions import build_definitions  # noqa: E402
from semid_assets.defs.automation import TOKENIZER_JOB  # noqa: E402
from semid_assets.partitions import METHOD, MONTH  # noqa: E402
from semid_assets.settings import Settings  # noqa: E402

LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""


def daemon_run_seconds(servers: UiServers, instance: dg.DagsterInstance, key: dg.MultiPartitionKey) -> float:
    tags = [{"key": "dagster/partition", "value": str(key)},
            *({"key": f"dagster/partition/{d}", "value": v} for d, v in key.keys_by_dimension.items())]
    params = {"selector": {"repositoryLocationName": "semid", "repositoryName": "__repository__",
                           "jobName": TOKENIZER_JOB}, "executionMetadata": {"tags": tags}, "mode": "default"}
    asked = time.time()
    launched = graphql(servers.dagster_port, LAUNCH, {"params": params})["launchRun"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(launched)
    run_id = launched["run"]["runId"]
    servers.wait_for_status(run_id, {"SUCCESS", "FAILURE", "CANCELED"}, 900)
    record = instance.get_run_record_by_id(run_id)
    print(f"  daemon: queued→started {record.start_time - asked:.1f}s, started→ended "
          f"{record.end_time - record.start_time:.1f}s ({record.dagster_run.status.value})", flush=True)
    return record.end_time - asked


def in_process_seconds(job, instance: dg.DagsterInstance, key: dg.MultiPartitionKey) -> float:
    started = time.perf_counter()
    job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)
    seconds = time.perf_counter() - started
    print(f"  in-process: {seconds:.1f}s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--method", default="rq_kmeans")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--home", help="a new folder for the bench's home (default: a temporary one)")
    parser.add_argument("--seed-cache", help="another home's cache/ folder, to skip encoding texts")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="semid-bench-ui-"))
    settings = Settings.from_env({"SEMID_HOME": str(home), "SEMID_SIZE": args.size})
    month = build_one_month(settings, Path(args.seed_cache) if args.seed_cache else None)
    key = dg.MultiPartitionKey({MONTH: month, METHOD: args.method})
    job = build_definitions(settings).resolve_job_def(TOKENIZER_JOB)
    servers = UiServers(settings, home / "servers.log", dict(os.environ, SEMID_SIZE=args.size))
    daemon, local = [], []
    with dg.DagsterInstance.get() as instance:
        try:
            servers.start()
            for _ in range(args.repeats):
                daemon.append(daemon_run_seconds(servers, instance, key))
                local.append(in_process_seconds(job, instance, key))
        finally:
            servers.stop()
    first, later = daemon[0], daemon[1:] or daemon
    d, i = statistics.median(later), statistics.median(local)
    print(f"{key} ({args.size}), {args.repeats} each: daemon-launched first run {first:.1f}s, later runs median "
          f"{d:.1f}s; in-process median {i:.1f}s; ratio {d / i:.2f}× (first run {first / i:.2f}×)")


if __name__ == "__main__":
    main()
