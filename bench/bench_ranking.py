"""Do semantic IDs beat hashing on strictly cold items at equal embedding budgets? One month, every method, a budget curve.

    python bench/bench_ranking.py [--home DIR] [--dataset synthetic|movielens-100k] [--size default]
        [--month YYYY-MM] [--methods rq_kmeans,rq_kmeans_balanced,rq_vae,letter]
        [--items-per-row 8] [--curve 32,16,8,2] [--curve-methods rq_kmeans]
        [--max-train-rows 500000] [--n-boot 300] [--threads 1]

The home (``--home``, else ``SEMID_HOME``, else a temporary folder removed at the end)
gets the month's lineage for the chosen methods first when it lacks it: ``semid demo``
in-process for that one month (not timed). Then, with the library's ``evaluate_month``
on the stored inputs (what ``ranking_eval`` reads):

1. the equal-budget table: every variant at ``items / --items-per-row`` rows, per method
   (``hash``, ``item_id`` and ``dense`` do not depend on the method and train once);
2. the budget curve: ``hash`` and the SID variants of ``--curve-methods`` at
   ``items / d`` rows for each ``d`` of ``--curve``.

Prints the slices with their counts, the AUC per slice with intervals over users and
over items, each variant − hash with its verdict, the anomalies, and the seconds per
model. Not a test: nothing is asserted. The 1-minute load average is printed: on a
shared machine the timings include other processes' contention.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semid_assets.core.evaluation.ranking_tables import display, shown  # noqa: E402
from semid_assets.core.markdown import markdown_table  # noqa: E402

SID_VARIANTS = ("sid_unigram", "sid_bigram", "sid_spm")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", default=os.environ.get("SEMID_HOME"))
    parser.add_argument("--dataset", default=os.environ.get("SEMID_DATASET", "synthetic"))
    parser.add_argument("--size", default=os.environ.get("SEMID_SIZE", "default"))
    parser.add_argument("--month", help="evaluation month (default: the dataset's last)")
    parser.add_argument("--methods", default="rq_kmeans,rq_kmeans_balanced,rq_vae,letter")
    parser.add_argument("--items-per-row", type=int, default=8)
    parser.add_argument("--curve", default="32,16,8,2", help="items per row of each budget of the curve")
    parser.add_argument("--curve-methods", default="rq_kmeans")
    parser.add_argument("--max-train-rows", type=int, default=500_000)
    parser.add_argument("--n-boot", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def ensure_lineage(settings, month: str, methods: list[str]) -> None:
    """Materialise ``month`` × ``methods`` in-process (``semid demo``) unless the home has their SIDs."""
    root = settings.assets_dir(settings.source().name)
    missing = [m for m in methods if not (root / "semantic_ids" / f"month={month}" / f"method={m}.parquet").exists()]
    if not missing:
        return
    import dagster as dg

    from semid_assets.definitions import build_definitions
    from semid_assets.demo import run_demo
    from semid_assets.home import prepare_home

    print(f"materialising {month} × {', '.join(missing)} in {settings.home} first (not timed)", flush=True)
    prepare_home(settings)
    with dg.DagsterInstance.get() as instance:
        run_demo(build_definitions(settings), instance, [month], missing, log=lambda line: print(line, flush=True))


def month_inputs(settings, month: str) -> dict:
    """The catalogue, impressions and aligned embeddings of ``month``, as ``ranking_eval`` reads them."""
    import pyarrow.parquet as pq

    from semid_assets.core.data import schema
    from semid_assets.core.data.embedding_table import embeddings_from_arrow

    root = settings.assets_dir(settings.source().name)
    items = pd.read_parquet(root / "raw_items" / f"{month}.parquet", columns=[schema.ITEM_ID, schema.CREATED_AT])
    ids, vectors = embeddings_from_arrow(pq.read_table(root / "aligned_embeddings" / f"{month}.parquet"))
    item_ids = items[schema.ITEM_ID].to_numpy()
    return {"interactions": pd.read_parquet(root / "raw_interactions" / f"{month}.parquet"), "item_ids": item_ids,
            "created_at": items[schema.CREATED_AT].to_numpy(),
            "embeddings": vectors[pd.Index(ids).get_indexer(item_ids)]}


def sid_version(settings, month: str, method: str, item_ids: np.ndarray):
    from semid_assets.core.evaluation.ranking import SidVersion
    from semid_assets.core.tokenizers.sids import codes_of_items
    from semid_assets.io_manager import load_artifact

    root = settings.assets_dir(settings.source().name)
    tokenizer = load_artifact(root / "tokenizer" / f"month={month}" / f"method={method}.npz")
    table = pd.read_parquet(root / "semantic_ids" / f"month={month}" / f"method={method}.parquet")
    return SidVersion(month, codes_of_items(table, item_ids).astype(np.int64), int(tokenizer.codebooks.shape[1]))


def evaluate(inputs: dict, sids, options, label: str):
    from semid_assets.core.evaluation.ranking import evaluate_month

    started = time.perf_counter()
    report = evaluate_month(sids.month, inputs["interactions"], inputs["item_ids"], inputs["created_at"], sids,
                            inputs["embeddings"], None, options, progress=None,
                            warn=lambda message: print(f"ANOMALY ({label}): {message}", flush=True))
    print(f"{label}: {time.perf_counter() - started:.0f}s for {len(report.models)} model(s)", flush=True)
    return report


def tag(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    return frame.assign(**columns)[[*columns, *frame.columns]]


def commit() -> str:
    done = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[1]), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[1]), "status", "--porcelain"],
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def run(args: argparse.Namespace, settings) -> None:
    from semid_assets.core.evaluation.ranker_config import RankerOptions
    from semid_assets.core.evaluation.ranking_options import RankingOptions

    month = args.month or settings.source().months()[-1]
    methods = args.methods.split(",")
    ensure_lineage(settings, month, methods)
    inputs = month_inputs(settings, month)
    n_items = len(inputs["item_ids"])
    base = RankingOptions(items_per_row=args.items_per_row, max_train_rows=args.max_train_rows, n_boot=args.n_boot,
                          stability_variants=(), ranker=RankerOptions(threads=args.threads))
    print(f"\n{settings.source().name} {month}: {n_items} items; commit {commit()}; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    auc, versus, models, slices, anomalies = [], [], [], None, []
    for position, method in enumerate(methods):
        variants = base.variants if position == 0 else ("hash", *SID_VARIANTS)
        report = evaluate(inputs, sid_version(settings, month, method, inputs["item_ids"]),
                          replace(base, variants=variants), f"{method} at items/{args.items_per_row}")
        keep = report.auc["model"].isin(variants if position == 0 else SID_VARIANTS)
        auc.append(tag(shown(report.auc[keep]), method=method))
        versus.append(tag(report.versus_hash, method=method))
        models.append(tag(report.models[report.models["model"].isin(report.auc["model"][keep])], method=method))
        anomalies += [f"{method}: {a.message()}" for a in report.anomalies]
        slices = report.slices
    print(f"\n## Budget {base.budget_rows(n_items)} rows ({n_items} items / {args.items_per_row}) × "
          f"{base.ranker.dim} = {base.budget_rows(n_items) * base.ranker.dim} parameters\n")
    for frame in (slices, *(pd.concat(parts, ignore_index=True) for parts in (auc, versus, models))):
        print(markdown_table(display(frame)), end="\n\n")
    curve(args, settings, month, inputs, base)
    print("\n".join(["", "## Anomalies", *anomalies] if anomalies else ["", "no anomaly at the main budget"]))


def curve(args, settings, month: str, inputs: dict, base) -> None:
    """``hash`` against the SID variants at several budgets, on every slice."""
    rows = []
    for method in args.curve_methods.split(","):
        sids = sid_version(settings, month, method, inputs["item_ids"])
        for per_row in (int(d) for d in args.curve.split(",")):
            options = replace(base, items_per_row=per_row, variants=("hash", *SID_VARIANTS))
            report = evaluate(inputs, sids, options, f"curve {method} at items/{per_row}")
            auc = shown(report.auc).set_index(["model", "slice"])
            for note in report.models.dropna(subset=["note"]).itertuples(index=False):
                rows.append({"method": method, "budget rows": options.budget_rows(len(inputs["item_ids"])),
                             "items per row": per_row, "model": note.model, "verdict": note.note})
            for row in report.versus_hash.to_dict(orient="records"):
                key = (row["model"], row["slice"])
                rows.append({"method": method, "budget rows": options.budget_rows(len(inputs["item_ids"])),
                             "items per row": per_row, "model": row["model"], "slice": row["slice"],
                             "auc": auc.loc[key, "auc"], "hash auc": auc.loc[("hash", row["slice"]), "auc"],
                             "auc − hash": row["auc − hash"], "items low": row["items low"],
                             "items high": row["items high"], "verdict": row["verdict"]})
    columns = ["method", "budget rows", "items per row", "model", "slice", "auc", "hash auc", "auc − hash",
               "items low", "items high", "verdict"]
    print("\n## Budget curve\n")
    print(markdown_table(display(pd.DataFrame(rows, columns=columns))))


def main() -> None:
    args = parse_args()
    temporary = None
    if not args.home:
        temporary = tempfile.TemporaryDirectory(prefix="semid-bench-ranking-")
        args.home = temporary.name
    os.environ.update(SEMID_HOME=str(Path(args.home).resolve()), SEMID_DATASET=args.dataset, SEMID_SIZE=args.size)
    from semid_assets.settings import Settings

    settings = Settings.from_env()
    if args.dataset == "movielens-100k":
        from semid_assets.core.data.sources import fetch_movielens_100k, movielens_dir

        fetch_movielens_100k(movielens_dir(settings.data_dir))
    try:
        run(args, settings)
    finally:
        if temporary is not None:
            temporary.cleanup()


if __name__ == "__main__":
    main()
