"""The whole monthly lineage on a user's catalogue of up to 1M items, stage by stage.

    python bench/bench_1m.py [--items 1000000] [--interactions 10000000] [--work /tmp/semid-scale]
                             [--methods rq_kmeans,...] [--tokenize rq_kmeans,...] [--codebook-size 1024]
                             [--levers scale|defaults|FILE]
                             [--no-rerun] [--keep-home --months M [--rerun-only] [--jobs monthly,letter,...]]
                             [--step-processes N] [--threads N]
                             [--json FILE]

1. Writes (once per size; reused after) the two Parquet files of ``SEMID_DATASET=parquet``:
   ``--items`` items with one short text field (``caption``) and a 256-d precomputed
   ``emb_content`` vector, and about ``--interactions`` impressions over two months
   (``synthetic.precomputed_platform``; 5 % of the items are new in each month). The embedded
   synthetic source cannot stand in: it has four text fields and 6 × 64-d visual tokens.
2. Runs the lineage on a fresh home in this process, month after month, as ``semid demo`` does
   (with ``--levers`` as run config: by default ``SCALE_LEVERS`` below):
   the monthly job (catalogue → features → pairs → aligner → embeddings, plus BPR when LETTER
   is among the methods), then each method's job (candidate tokenizer → staleness → published
   IDs → migration → stability → hierarchy → checks; ``--tokenize``: only these methods' jobs),
   then the methods' comparison when all four ran. ``--keep-home --jobs``: only those of a month's
   jobs (say one method's, on a month whose other jobs ran before).
3. Rematerialises the last month in the same home and checks that every method's
   ``semantic_ids`` (and ``aligned_embeddings``) come out bit for bit the same: every column's
   values are hashed before and after (``--no-rerun`` skips it; ``--keep-home --rerun-only`` does
   only this, on the last month an earlier invocation ran).

Prints, per Dagster step (from the run's events): wall seconds, CPU seconds of this process and
the processes below it while the step ran, their summed peak resident memory during the step
(sampled every 0.2 s) and the 1-minute load average; then per month the totals and the peaks
``getrusage`` saw. ``--step-processes N`` runs each step in a process of its own
(``SEMID_STEP_PROCESSES``), as a deployment that sets it does; ``--threads N`` gives the aligner,
BPR and the tokenizers N threads (run config added to the levers).
With ``--json`` the same figures are written to a file. Not a test: nothing is timed against
a limit. The machine's other jobs inflate wall time; CPU time is what this process used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MONTHS = ("2025-01", "2025-02")
# Run config for catalogues far larger than the demo's (``--levers scale``), per Dagster step: what
# each option trades is said in docs/benchmarks.md. ``--levers defaults`` runs the pipeline's defaults.
SCALE_LEVERS: dict[str, dict] = {
    # A step budget (warm-started in later months) instead of an epoch over every pair.
    # judged on a stable sample of held-out pairs, not all of them (each is a search over every item).
    "aligners": {"steps": 300, "heldout_sample": 5000},
    "sid_staleness": {"heldout_sample": 5000},
    # LETTER alone reads it; fewer, larger passes over the positives.
    "collaborative_embeddings": {"epochs": 3, "batch_size": 32768},
    # One pass over the catalogue in larger batches instead of six.
    "tokenizer": {"rq_vae": {"epochs": 1, "batch_size": 2048}, "letter": {"epochs": 1, "batch_size": 2048}},
    # The comparison's beam-8 re-encoding of the whole catalogue per method is a report, not a product.
    "tokenizer_comparison": {"compare_beam": 1},
}
USERS_PER_INTERACTION = 1 / 20  # the platform's users make ~10 impressions a month: 2 months → ~20 each


# ---------------------------------------------------------------------- the catalogue
def write_catalogue(folder: Path, items: int, interactions: int, seed: int, text: bool) -> tuple[Path, Path]:
    """The two Parquet files, written once per (items, interactions, seed, text) and reused after."""
    items_path, log_path, stamp = folder / "items.parquet", folder / "interactions.parquet", folder / "spec.json"
    spec = {"items": items, "interactions": interactions, "seed": seed, "months": list(MONTHS), "text": text}
    if stamp.is_file() and json.loads(stamp.read_text()) == spec:
        return items_path, log_path
    import pyarrow as pa
    import pyarrow.parquet as pq

    from semid_assets.core.data.synthetic import SyntheticSpec, precomputed_platform

    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    users = max(100, round(interactions * USERS_PER_INTERACTION))
    table, log = precomputed_platform(SyntheticSpec(n_items=items, n_users=users, seed=seed,
                                                    start_month=MONTHS[0], n_months=len(MONTHS)),
                                       text_field="caption" if text else None)
    pq.write_table(table, items_path, row_group_size=65536)
    pq.write_table(pa.Table.from_pandas(log, preserve_index=False), log_path, row_group_size=1 << 20)
    stamp.write_text(json.dumps(spec))
    print(f"wrote {table.num_rows:,} items and {len(log):,} interactions to {folder} in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return items_path, log_path


# ---------------------------------------------------------------------- sampling the process
@dataclass
class Sample:
    t: float
    rss: int
    anon: int
    cpu: float
    load: float


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (the run's step processes and what they start)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _memory_and_cpu(pid: int) -> tuple[int, int, float]:
    """(resident bytes, anonymous bytes, CPU seconds with its reaped children) of one live process, or zeros."""
    page, tick = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/statm") as f:
            pages = [int(x) for x in f.read().split()]
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0, 0.0
    # fields[11:15]: utime, stime, cutime, cstime (clock ticks)
    return pages[1] * page, (pages[1] - pages[2]) * page, sum(int(x) for x in fields[11:15]) / tick


@dataclass
class Sampler:
    """Resident memory and CPU time of this process and every process below it (a run's step processes),
    and the load average, every ``period`` seconds."""

    period: float = 0.2
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _take(self) -> Sample:
        # resident = anonymous + file-backed; the token store's memory-mapped shards are the latter
        # (page cache the kernel can drop), so the anonymous part is reported too.
        rss = anon = 0
        cpu = sum(os.times()[:4])  # this process and the children it has reaped
        for pid in [os.getpid(), *_descendants(os.getpid())]:
            r, a, c = _memory_and_cpu(pid)
            rss, anon = rss + r, anon + a
            cpu += c if pid != os.getpid() else 0.0
        return Sample(time.time(), rss, anon, cpu, os.getloadavg()[0])

    def start(self) -> "Sampler":
        def loop():
            while not self._stop.wait(self.period):
                self.samples.append(self._take())

        self.samples.append(self._take())
        threading.Thread(target=loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.samples.append(self._take())

    def window(self, start: float, end: float) -> dict:
        inside = [s for s in self.samples if start <= s.t <= end] or [self._nearest(start), self._nearest(end)]
        return {"peak_rss_gb": max(s.rss for s in inside) / 1e9, "peak_anon_gb": max(s.anon for s in inside) / 1e9,
                "cpu_s": self._cpu_at(end) - self._cpu_at(start),
                "load": sum(s.load for s in inside) / len(inside)}

    def _nearest(self, t: float) -> Sample:
        return min(self.samples, key=lambda s: abs(s.t - t))

    def _cpu_at(self, t: float) -> float:
        before = [s for s in self.samples if s.t <= t]
        after = [s for s in self.samples if s.t >= t]
        if not before or not after:
            return self._nearest(t).cpu
        a, b = before[-1], after[0]
        return a.cpu if b.t == a.t else a.cpu + (b.cpu - a.cpu) * (t - a.t) / (b.t - a.t)


# ---------------------------------------------------------------------- running the lineage
def step_times(instance, run_id: str) -> list[tuple[str, float, float, bool]]:
    """``(step, start, end, succeeded)`` of every step of a run, from its events."""
    import dagster as dg

    started, rows = {}, []
    for record in instance.get_records_for_run(run_id, limit=100_000).records:
        event = record.event_log_entry
        if event.dagster_event is None:
            continue
        kind, step = event.dagster_event.event_type, event.dagster_event.step_key
        if kind == dg.DagsterEventType.STEP_START:
            started[step] = event.timestamp
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            rows.append((step, started.get(step, event.timestamp), event.timestamp,
                         kind == dg.DagsterEventType.STEP_SUCCESS))
    return rows


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the system after a job, as a job in its own process would:
    without it, what one job freed stays in this process's RSS through the next jobs."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def with_threads(levers: dict[str, dict], threads: int) -> dict[str, dict]:
    """``levers`` with ``threads`` threads in the steps that take a count: the aligner, BPR and each
    method's tokenizer (another count is another fit, so the IDs differ from one-thread runs')."""
    levers = json.loads(json.dumps(levers))
    levers.setdefault("aligners", {})["threads"] = threads
    levers.setdefault("collaborative_embeddings", {})["n_threads"] = threads
    levers.setdefault("tokenizer", {})["n_threads"] = threads  # shared by every method's section
    return levers


def run_config(job_def, levers: dict[str, dict]) -> dict:
    """The run config of one job: quiet console logs and the levers of the job's own steps."""
    ops = {op: {"config": config} for op, config in levers.items() if job_def.graph.has_node_named(op)}
    return {"loggers": {"console": {"config": {"log_level": "WARNING"}}}, **({"ops": ops} if ops else {})}


def run_month(defs, instance, month: str, methods: list[str], sampler: Sampler, label: str,
              levers: dict[str, dict], after_job=lambda rows: None, only: set[str] | None = None) -> list[dict]:
    """One month as ``semid demo`` builds it, with ``levers`` as run config; a row per step. ``only``: the
    labels of the jobs to run (``monthly``, a method, ``comparison``); None: all of them."""
    import dagster as dg

    from semid_assets.defs.automation import COMPARISON_JOB, MONTHLY_JOB, TOKENIZER_JOB
    from semid_assets.inline import run_job
    from semid_assets.partitions import METHOD, MONTH

    runs = [("monthly", MONTHLY_JOB, month)]
    runs += [(method, TOKENIZER_JOB, dg.MultiPartitionKey({MONTH: month, METHOD: method})) for method in methods]
    if len(methods) == 4:
        runs.append(("comparison", COMPARISON_JOB, month))
    runs = [run for run in runs if only is None or run[0] in only]
    rows = []
    for job_label, job, key in runs:
        t0 = time.time()
        # As semid demo and a launched run: outputs are not held in memory after their step.
        result = run_job(defs, job, key, instance=instance, run_config=run_config(defs.resolve_job_def(job), levers))
        t1 = time.time()
        release_free_heap()
        steps = step_times(instance, result.run_id)
        for step, start, end, ok in steps:
            rows.append({"run": label, "month": month, "job": job_label, "step": step, "wall_s": end - start,
                         "ok": ok, **sampler.window(start, end)})
        rows.append({"run": label, "month": month, "job": job_label, "step": "(whole run)", "wall_s": t1 - t0,
                     "ok": result.success, **sampler.window(t0, t1)})
        print("\n".join(table(rows[-len(steps) - 1:]).splitlines()[2:]), flush=True)
        failed = [s for s, _, _, ok in steps if not ok]
        print(f"[{label} {month}] {job_label}: {t1 - t0:.0f} s" + (f", FAILED steps {failed}" if failed else ""),
              flush=True)
        after_job(rows)
        if job_label == "monthly" and not result.success:
            raise RuntimeError(f"the monthly job of {month} failed at {failed}")
    return rows


def stored_outputs(home: Path, month: str, methods: list[str]) -> dict[str, str]:
    """A digest of the month's published IDs of every method and of its aligned embeddings: every column's values
    (and list offsets), not the Parquet bytes (whose metadata may differ between runs)."""
    import pyarrow.parquet as pq

    root = next((home / "assets").iterdir())
    found = {f"semantic_ids/{m}": root / "semantic_ids" / f"month={month}" / f"method={m}.parquet" for m in methods}
    found["aligned_embeddings"] = root / "aligned_embeddings" / f"{month}.parquet"
    return {name: table_digest(pq.read_table(path)) for name, path in found.items()}


def table_digest(table) -> str:
    import numpy as np
    import pyarrow as pa

    digest = hashlib.sha256(repr(table.schema.remove_metadata()).encode())
    for column in table.columns:
        values = column.combine_chunks()
        while pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or \
                pa.types.is_fixed_size_list(values.type):
            if not pa.types.is_fixed_size_list(values.type):
                digest.update(np.asarray(values.offsets).tobytes())
            values = values.flatten()
        digest.update(np.asarray(values.is_null()).tobytes())
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            digest.update("\x00".join(map(str, values.to_pylist())).encode())
        else:
            digest.update(values.to_numpy(zero_copy_only=False).tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------- reporting
def describe_commit(folder: Path) -> str:
    """The checkout's short commit, marked ``+dirty`` when tracked files differ from it."""
    git = ["git", "-C", str(folder)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    return commit + ("+dirty" if dirty else "")


def save(path: Path | None, commit: str, args, methods: list[str], levers: dict, rows: list[dict], same) -> None:
    """The rows so far as JSON."""
    if path is not None:
        path.write_text(json.dumps({"commit": commit, "items": args.items, "interactions": args.interactions,
                                    "step_processes": args.step_processes,
                                    "methods": methods, "levers": levers, "load_at_start": os.getloadavg(),
                                    "rows": rows, "rerun_identical": same}, indent=1))


def table(rows: list[dict]) -> str:
    head = "| run | month | job | step | wall (s) | CPU (s) | peak RSS (GB) | load |\n|" + " --- |" * 8
    body = [f"| {r['run']} | {r['month']} | {r['job']} | {r['step']}{'' if r['ok'] else ' (failed)'} | "
            f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_gb']:.2f} | {r['load']:.1f} |" for r in rows]
    return "\n".join([head, *body])


def _stage(row: dict) -> str:
    """The row's stage in the condensed table: the method's own steps keep the method, checks and
    reports are grouped."""
    step = row["step"]
    if step in ("raw_items", "raw_interactions"):
        return "raw_items + raw_interactions"
    if step in ("sid_migration", "sid_prefix_migration", "sid_stability", "sid_hierarchy") or "_sid_" in step:
        return "stability, hierarchy, migration, checks (every method)"
    if step in ("sid_staleness", "semantic_ids"):
        return f"{step} (every method)"
    return f"{step} ({row['job']})" if row["job"] not in ("monthly", "comparison") else step


def stages(rows: list[dict], run: str = "first") -> str:
    """Per stage and month of ``run``: wall and CPU seconds (summed over the stage's steps) and the
    highest peak RSS; then the months' totals."""
    months = list(dict.fromkeys(r["month"] for r in rows if r["run"] == run))
    steps = [r for r in rows if r["run"] == run and r["step"] != "(whole run)"]
    names = list(dict.fromkeys(_stage(r) for r in steps))
    head = "| stage | " + " | ".join(f"{m} wall (s) | {m} CPU (s) | {m} peak RSS (anon) GB" for m in months) + " |"
    lines = [head, "|" + " --- |" * (1 + 3 * len(months))]
    for name in names + ["(whole month)"]:
        cells = []
        for m in months:
            if name == "(whole month)":
                got = [r for r in rows if r["run"] == run and r["month"] == m and r["step"] == "(whole run)"]
            else:
                got = [r for r in steps if r["month"] == m and _stage(r) == name]
            anon = max(r.get("peak_anon_gb", float("nan")) for r in got) if got else None
            cells.append(" – | – | – " if not got else f" {sum(r['wall_s'] for r in got):.0f} | "
                         f"{sum(r['cpu_s'] for r in got):.0f} | {max(r['peak_rss_gb'] for r in got):.1f}"
                         f"{'' if anon != anon else f' ({anon:.1f})'} ")
        lines.append(f"| {name} |" + "|".join(cells) + "|")
    whole = [[r for r in rows if r["run"] == run and r["month"] == m and r["step"] == "(whole run)"] for m in months]
    loads = [sum(r["load"] * r["wall_s"] for r in got) / max(sum(r["wall_s"] for r in got), 1e-9) for got in whole]
    lines.append("| (mean 1-minute load average) |" + "|".join(f" {x:.1f} | | " for x in loads) + "|")
    return "\n".join(lines)


def totals(rows: list[dict]) -> str:
    lines = ["| run | month | wall (s) | CPU (s) | peak RSS (GB) | mean load |", "|" + " --- |" * 6]
    for (run, month) in dict.fromkeys((r["run"], r["month"]) for r in rows):
        whole = [r for r in rows if r["run"] == run and r["month"] == month and r["step"] == "(whole run)"]
        lines.append(f"| {run} | {month} | {sum(r['wall_s'] for r in whole):.0f} | "
                     f"{sum(r['cpu_s'] for r in whole):.0f} | {max(r['peak_rss_gb'] for r in whole):.2f} | "
                     f"{sum(r['load'] * r['wall_s'] for r in whole) / sum(r['wall_s'] for r in whole):.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/semid-scale"),
                        help="holds data-<items>-<interactions>/ (reused) and home-<items>/ (recreated)")
    parser.add_argument("--methods", default="rq_kmeans,rq_kmeans_balanced,rq_vae,letter")
    parser.add_argument("--tokenize", help="run only these methods' jobs (default: every method of --methods); "
                             "the definitions still hold every method of --methods (BPR runs when LETTER is one)")
    parser.add_argument("--codebook-size", type=int, default=1024)
    parser.add_argument("--no-text", action="store_true",
                        help="items without the caption (only emb_content): the lineage without text encoding")
    parser.add_argument("--months", default=",".join(MONTHS),
                        help="the months to run, in order (e.g. only the second, with --keep-home)")
    parser.add_argument("--keep-home", action="store_true",
                        help="continue in the existing home (the months an earlier invocation ran stay)")
    parser.add_argument("--no-rerun", action="store_true", help="skip rematerialising the last month")
    parser.add_argument("--rerun-only", action="store_true",
                        help="with --keep-home: only rematerialise the last month an earlier invocation ran, "
                             "and compare its outputs with what that invocation stored")
    parser.add_argument("--levers", default="scale",
                        help="run config per step: 'scale' (SCALE_LEVERS), 'defaults' (none), or a JSON file "
                             "of {step: config}")
    parser.add_argument("--threads", type=int, default=None,
                        help="add to the levers this many torch/faiss/BLAS threads for the aligner, BPR and every "
                             "method's tokenizer (their fits, encodings and the staleness margins); default: the "
                             "pipeline's one thread")
    parser.add_argument("--step-processes", type=int, default=0,
                        help="SEMID_STEP_PROCESSES: 0 runs every step in this process, N each step in a "
                             "process of its own, N at most at once")
    parser.add_argument("--jobs", help="with --keep-home: run only these of each month's jobs ('monthly', a method of "
                             "--tokenize, 'comparison'), e.g. one method's job on a month whose other jobs ran")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--summarise", type=Path, nargs="+",
                        help="only print the condensed per-stage tables of earlier --json files")
    parser.add_argument("--write-data-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.summarise:
        for path in args.summarise:
            saved = json.loads(path.read_text())
            print(f"{path}: {saved['items']:,} items, commit {saved['commit']}, rerun identical: "
                  f"{saved['rerun_identical']}\n")
            for run in dict.fromkeys(r["run"] for r in saved["rows"]):
                print(f"run: {run}\n{stages(saved['rows'], run)}\n")
        return 0

    data = args.work / f"data-{args.items}-{args.interactions}-s{args.seed}{'-notext' if args.no_text else ''}"
    if args.write_data_only:
        write_catalogue(data, args.items, args.interactions, args.seed, not args.no_text)
        return 0
    # The data is written by a child process, so its memory is not this process's peak.
    subprocess.run([sys.executable, __file__, "--write-data-only", "--items", str(args.items), "--interactions",
                    str(args.interactions), "--seed", str(args.seed), "--work", str(args.work)]
                   + (["--no-text"] if args.no_text else []), check=True)
    home = args.work / f"home-{args.items}{'-notext' if args.no_text else ''}"
    if not args.keep_home:
        shutil.rmtree(home, ignore_errors=True)
    months = args.months.split(",")
    if not set(months) <= set(MONTHS):
        parser.error(f"--months must be among {MONTHS}, got {months}")
    if args.rerun_only and (not args.keep_home or args.no_rerun):
        parser.error("--rerun-only reruns a month of an existing home: give --keep-home, not --no-rerun")
    methods = args.methods.split(",")
    tokenized = args.tokenize.split(",") if args.tokenize else methods
    if not set(tokenized) <= set(methods):
        parser.error(f"--tokenize {tokenized} must be among --methods {methods}")
    only = None if args.jobs is None else set(args.jobs.split(","))
    if only is not None and (not args.keep_home or not only <= {"monthly", "comparison", *tokenized}):
        parser.error(f"--jobs {sorted(only)} needs --keep-home and must be among monthly, comparison, {tokenized}")
    levers = {"scale": SCALE_LEVERS, "defaults": {}}.get(args.levers)
    levers = json.loads(Path(args.levers).read_text()) if levers is None else levers
    if args.threads is not None:
        levers = with_threads(levers, args.threads)
    os.environ.update(SEMID_DATASET="parquet", SEMID_ITEMS=str(data / "items.parquet"),
                      SEMID_INTERACTIONS=str(data / "interactions.parquet"), SEMID_HOME=str(home),
                      SEMID_CODEBOOK_SIZE=str(args.codebook_size), SEMID_METHODS=",".join(methods),
                      SEMID_STEP_PROCESSES=str(args.step_processes))

    import dagster as dg

    from semid_assets.definitions import build_definitions
    from semid_assets.home import prepare_home
    from semid_assets.settings import Settings

    settings = Settings.from_env()
    prepare_home(settings)
    defs = build_definitions(settings)
    commit = describe_commit(Path(__file__).parent)
    print(f"bench_1m at {commit}: {args.items:,} items, ~{args.interactions:,} interactions, methods {methods}, "
          f"{args.codebook_size} codes per level, home {home}; load {os.getloadavg()}; levers "
          f"{json.dumps(levers)}; step processes {args.step_processes}", flush=True)
    sampler = Sampler().start()
    rows = []
    with dg.DagsterInstance.get() as instance:
        for month in [] if args.rerun_only else months:
            # Saved after every job, so a long run that is stopped or killed leaves its figures.
            rows += run_month(defs, instance, month, tokenized, sampler, "first", levers,
                              after_job=lambda done: save(args.json, commit, args, tokenized, levers, rows + done, None),
                              only=only)
        peak_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        same = None
        if not args.no_rerun:
            first = stored_outputs(home, months[-1], tokenized)
            rows += run_month(defs, instance, months[-1], tokenized, sampler, "rerun", levers, only=only)
            again = stored_outputs(home, months[-1], tokenized)
            same = {name: first[name] == again[name] for name in first}
    sampler.stop()
    print()
    print(table(rows))
    print()
    print(totals(rows))
    print()
    for run in dict.fromkeys(r["run"] for r in rows):
        print(f"run: {run}\n{stages(rows, run)}\n")
    print(f"\nprocess peak (getrusage): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB "
          f"({peak_first:.2f} GB before the rerun); largest step process: "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6:.2f} GB")
    if same is not None:
        print(f"rerun of {months[-1]} identical: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items()))
    save(args.json, commit, args, tokenized, levers, rows, same)
    return 0 if same is None or all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
