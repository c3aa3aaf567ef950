"""A `semid demo`-like process for the fault matrix (tests/test_fault_matrix.py): one month × one method.

Runs the monthly job, then the tokenizer job, in-process against the home of ``SEMID_HOME``, as
``semid demo`` does (with the test suite's aligner gate, so the tiny month trains an aligner).
With ``--rerun``, each job whose newest run for the partition was killed (still STARTED, as a
SIGKILL leaves it) is first reported failed, as run monitoring would, and only the assets that
run did not materialise are run again: what "re-execute from failure" runs. A job whose newest
run succeeded is skipped.

``--kill-at-rename ASSET`` patches this process (never the library) so that it SIGKILLs itself
when the temporary file of ASSET's output is complete and fsynced, just before the rename that
publishes it: a write lasts milliseconds, too short to hit reliably from outside.
``--kill-at MODULE:NAME[@N]`` patches this process likewise so that it SIGKILLs itself at the N-th
call (default 1) of the function or method NAME of MODULE, before that call runs: a chosen point
inside a step, the same in every run. ``--encode-chunk N`` stores the text encoder's output in
shards of N texts (the library's chunk is larger than a tiny month), so a kill can fall between two.
``--jobs`` runs only some of the two jobs (a home whose monthly stages are built already).

Prints ``[<job>] start`` / ``[<job>] done`` around each job; Dagster's INFO log goes to stderr.

``--serve`` imports the pipeline's libraries once, then runs each request read from stdin (a JSON
object: ``argv``, ``stdout``, ``stderr`` file paths) in a forked child of its own — a separate
process, killed on its own — and answers each with a JSON line ``{"returncode": …}`` (negative:
the signal that ended it, as ``subprocess`` reports). The matrix runs a dozen of these
processes; importing torch, Dagster and MLflow in each would cost more than most of the runs.
It forks before any thread pool or store exists, so every child starts from the same state.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import signal
import sys
from pathlib import Path

import dagster as dg

from semid_assets.definitions import build_definitions
from semid_assets.defs.automation import MONTHLY_JOB, TOKENIZER_JOB
from semid_assets.partitions import METHOD, MONTH
from semid_assets.resources import AlignerGateResource
from semid_assets.settings import Settings

# The suite's aligner gate (tests/conftest.py): the tiny month's ~70 held-out pairs can judge an aligner.
OVERRIDES = {"aligner_gate": AlignerGateResource(min_heldout_pairs=20)}
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _partition(job_name: str, month: str, method: str):
    return month if job_name == MONTHLY_JOB else dg.MultiPartitionKey({MONTH: month, METHOD: method})


def _newest_run(instance: dg.DagsterInstance, job_name: str, partition) -> dg.DagsterRun | None:
    runs = instance.get_runs(dg.RunsFilter(job_name=job_name, tags={"dagster/partition": str(partition)}), limit=1)
    return runs[0] if runs else None


def _still_to_run(instance: dg.DagsterInstance, job: dg.JobDefinition, partition) -> list[dg.AssetKey] | None:
    """The assets a rerun from failure runs: all of them without an earlier run, none after a success,
    else those the killed run did not materialise (the run is reported failed first)."""
    run = _newest_run(instance, job.name, partition)
    everything = sorted(job.asset_layer.executable_asset_keys, key=lambda k: k.to_user_string())
    if run is None:
        return everything
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return []
    if run.status == dg.DagsterRunStatus.STARTED:
        instance.report_run_failed(run, "its process was killed (SIGKILL); rerun from failure")
    done = _materialised(instance, run.run_id)
    return [key for key in everything if key not in done]


def _materialised(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return {event.dagster_event.asset_key for event in events}


def _kill_at_rename(target: Path) -> None:
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst) == target:
            print(f"killing this process before the rename onto {target}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace


def _kill_at(target: str) -> None:
    where, _, nth = target.partition("@")
    module_name, _, qualname = where.partition(":")
    owner = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    real, calls = getattr(owner, name), [0]

    @functools.wraps(real)
    def killing(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(nth or 1):
            print(f"killing this process at call {calls[0]} of {where}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(owner, name, killing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--month", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--kill-at-rename", metavar="ASSET")
    parser.add_argument("--kill-at", metavar="MODULE:NAME[@N]")
    parser.add_argument("--encode-chunk", type=int)
    parser.add_argument("--jobs", nargs="+", default=[MONTHLY_JOB, TOKENIZER_JOB])
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    defs = build_definitions(settings, OVERRIDES)
    if args.kill_at_rename:
        store_root = settings.assets_dir(settings.source().name)
        _kill_at_rename(store_root / args.kill_at_rename / f"month={args.month}" / f"method={args.method}.parquet")
    if args.kill_at:
        _kill_at(args.kill_at)
    if args.encode_chunk:
        import semid_assets.core.features.multimodal as multimodal

        multimodal._ENCODE_CHUNK = args.encode_chunk
    with dg.DagsterInstance.get() as instance:
        for job_name in (name for name in (MONTHLY_JOB, TOKENIZER_JOB) if name in args.jobs):
            job = defs.resolve_job_def(job_name)
            partition = _partition(job_name, args.month, args.method)
            selection = _still_to_run(instance, job, partition) if args.rerun else None
            if selection == []:
                continue
            print(f"[{job_name}] start", flush=True)
            job.execute_in_process(partition_key=str(partition), instance=instance, raise_on_error=True,
                                   run_config=QUIET, asset_selection=selection)
            print(f"[{job_name}] done", flush=True)
    return 0


def _preload() -> None:
    """The heavy imports a run makes lazily (none starts a thread)."""
    import faiss  # noqa: F401
    import mlflow.pyfunc  # noqa: F401
    import torch  # noqa: F401
    from transformers import AutoModel, AutoTokenizer  # noqa: F401


def _run_child(request: dict) -> None:
    """In the forked child: the request's run, its output into its files; never returns."""
    code = 1
    try:
        with open(request["stdout"], "wb") as out, open(request["stderr"], "wb") as err:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
        code = main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> int:
    _preload()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_child(request)
        _, status = os.waitpid(pid, 0)
        returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"returncode": returncode}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else main())
