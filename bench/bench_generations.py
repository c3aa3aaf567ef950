"""Generations over months: what each method keeps of its first month's IDs, at what cost, and why.

    python bench/bench_generations.py [--months 7] [--dataset synthetic] [--size default] [--ranking]
        [--methods rq_kmeans,letter] [--home PATH] [--work DIR] [--json out.json]

Without ``--home`` it runs the pipeline in-process on a fresh home under ``--work`` (``semid demo
--months N``, the defaults of the checkout; ``--ranking`` adds ``ranking_eval``, minutes per
month at default size); with ``--home`` it reads a home ``semid demo`` already filled. For
``--dataset movielens-100k`` run ``semid data fetch movielens-100k`` with that home first (or
let the fresh home fetch it) and pass ``--months 0``: its months run 1997-09 … 1998-04.

Then, per method and month, from the stored outputs (``AssetStore``, ``MethodHistory``,
``GenerationArchive``) and the Dagster instance's metadata of the home:

- the verdict (``first``, ``keep``, ``cut``, ``refused``) and the published generation;
- the month's *candidate* (its stored tokenizer with the hysteresis it was fitted with, anchored
  to the IDs published before the month: exactly what ``sid_staleness`` judged) against the
  first month's published IDs: literal full code tuples kept and matched after renaming; and
  the published IDs against the first month's;
- the candidate's relative MSE against an unanchored refit of the same month with the same
  options (``make_tokenizer(...).fit_encode`` on the month's ``aligned_embeddings``);
- the staleness figures (new-item collisions, MSE gain, literal kept vs published and origin,
  recall gain), the aligner that served, and the ranking AUC when ``ranking_eval`` ran.

Ends with one trade-off row per method (first month against last) and the issue-15 targets
(literal ≥ 0.90 for rq_kmeans and rq_vae, ≥ 0.80 for rq_kmeans_balanced and letter, relative MSE
within +3 % of the refit). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation_measures import RefitCache, kept_and_matched, month_data, published_ids, relative_mse  # noqa: E402

from semid_assets.core.lifecycle.archive import GenerationArchive  # noqa: E402
from semid_assets.core.lifecycle.candidate import published_codes_of  # noqa: E402
from semid_assets.core.lifecycle.history import MethodHistory  # noqa: E402
from semid_assets.core.lifecycle.hysteresis import candidate_codes  # noqa: E402
from semid_assets.core.lifecycle.month import heldout_recall  # noqa: E402
from semid_assets.core.lifecycle.serving import serving_month  # noqa: E402
from semid_assets.core.markdown import markdown_table  # noqa: E402
from semid_assets.core.storage import AssetStore  # noqa: E402

TARGETS = {"rq_kmeans": 0.90, "rq_vae": 0.90, "rq_kmeans_balanced": 0.80, "letter": 0.80}
MAX_MSE_EXCESS = 0.03


def run_pipeline(home: Path, args) -> None:
    """``semid demo`` in-process on ``home`` (what a user types, with SEMID_HOME set)."""
    from semid_assets.cli import main as semid

    os.environ.update(SEMID_HOME=str(home), SEMID_DATASET=args.dataset, SEMID_SIZE=args.size)
    if args.dataset == "movielens-100k" and semid(["data", "fetch", "movielens-100k"]) != 0:
        raise SystemExit("could not fetch MovieLens-100K")
    argv = ["demo", "--months", str(args.months)] + (["--ranking"] if args.ranking else []) + \
        (["--methods", args.methods] if args.methods else [])
    started = time.perf_counter()
    if semid(argv) != 0:
        raise SystemExit(f"semid {' '.join(argv)} failed")
    print(f"pipeline: {time.perf_counter() - started:.0f} s", flush=True)


class Recorded:
    """The newest materialisation metadata of an asset partition of this home's dataset."""

    def __init__(self, home: Path, store: AssetStore):
        import dagster as dg

        self.dg = dg
        os.environ["DAGSTER_HOME"] = str(home / "dagster")
        self.instance = dg.DagsterInstance.get()
        self.root = str(store.root)

    def __call__(self, asset: str, month: str, method: str | None = None) -> dict:
        from semid_assets.partitions import METHOD, MONTH

        dg = self.dg
        key = month if method is None else str(dg.MultiPartitionKey({MONTH: month, METHOD: method}))
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=20).records
        for record in records:
            metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
            if str(metadata.get("path", self.root)).startswith(self.root):
                return metadata
        return {}


def aligner_rows(store: AssetStore, recorded: Recorded, months: list[str]) -> pd.DataFrame:
    """Per month: which aligner served, and held-out Recall@10 of the candidate, the serving one, content."""
    rows = []
    for month in months:
        candidate, serving = recorded("aligner_candidate", month), recorded("aligner", month)
        data = month_data(store, month)
        pairs = store.read_table("item_pairs", month=month).to_pandas()
        retrieval = candidate.get("retrieval")
        content = float("nan")
        if retrieval is not None:
            table = pd.DataFrame([r.data for r in retrieval.records]).set_index("aligner")
            content = float(table.loc["none", "heldout_recall@10"])
        rows.append({"month": month, "serving aligner": serving_month(store.read_artifact("aligner", month=month))
                     or "content embedding", "new aligner serves": bool(serving.get("changed_this_month", False)),
                     "R@10 candidate": candidate.get("heldout_recall_at_10", float("nan")),
                     "R@10 serving": heldout_recall(data.vectors, data.item_ids, pairs, 0.1, 0),
                     "R@10 content": content,
                     "verdict": str(serving.get("verdict", candidate.get("verdict", "")))[:90]})
    return pd.DataFrame(rows)


def ranking_of(store: AssetStore, month: str, method: str) -> dict:
    """Strictly cold AUC of hashing and of the best SID variant, when ``ranking_eval`` ran."""
    if not store.exists("ranking_eval", month=month, method=method):
        return {}
    auc = store.read_table("ranking_eval", month=month, method=method).to_pandas()
    cold = auc[(auc["slice"] == "strictly cold") & ~auc["model"].str.contains("@")].set_index("model")
    numbers = pd.to_numeric(cold["auc"], errors="coerce")
    sids = numbers[numbers.index.str.startswith("sid_")].dropna()
    return {"AUC cold hash": float(numbers.get("hash", np.nan)),
            "AUC cold best SID": f"{sids.idxmax()} {sids.max():.4f}" if len(sids) else "too few"}


def method_rows(store: AssetStore, recorded: Recorded, method: str, refits: RefitCache) -> pd.DataFrame:
    history = MethodHistory(store, method)
    months = history.months()
    first = published_ids(store, months[0], method)
    rows, previous = [], None
    for month in months:
        tokenizer = store.read_artifact("tokenizer", month=month, method=method)
        data = month_data(store, month)
        anchor = None if previous is None else published_codes_of(previous, data.item_ids)
        codes = candidate_codes(tokenizer, data.vectors, anchor, tokenizer.fit_info.get("hysteresis", 0.0))
        literal, matched = kept_and_matched(data.item_ids, codes, first)
        now = published_ids(store, month, method)
        mse = relative_mse(tokenizer, data.vectors, codes)
        refit = refits.get(method, tokenizer.options, data)["relative_mse"]
        staleness = recorded("sid_staleness", month, method)
        rows.append({
            "month": month, "decision": staleness.get("decision", "?"), "generation": int(now.generation.max()),
            "candidate kept vs first": literal, "matched": matched,
            "published kept vs first": kept_and_matched(now.item_ids, now.codes, first)[0],
            "candidate rel. MSE": mse, "refit rel. MSE": refit, "MSE vs refit": mse / refit - 1.0,
            "new items": staleness.get("new_items", float("nan")),
            "new-item collisions": staleness.get("new_item_collision_rate", float("nan")),
            "MSE gain": staleness.get("mse_gain", float("nan")),
            "kept vs published": staleness.get("literal_kept", float("nan")),
            "kept vs origin": staleness.get("literal_kept_origin", float("nan")),
            "recall gain": staleness.get("recall_gain", float("nan")),
            **ranking_of(store, month, method)})
        print(f"  {method} {month}: {rows[-1]['decision']}, candidate keeps {literal:.4f} of {months[0]}, "
              f"MSE {mse:.4f} vs refit {refit:.4f}", flush=True)
        previous = now
    return pd.DataFrame(rows)


def trade_off(method: str, table: pd.DataFrame, aligners: pd.DataFrame, archive: GenerationArchive) -> dict:
    last = table.iloc[-1]
    serving = aligners.set_index("month").loc[last["month"]]
    ranked = table.dropna(subset=["AUC cold hash"]) if "AUC cold hash" in table else table.iloc[0:0]
    target = TARGETS.get(method, float("nan"))
    return {"method": method, "months": f"{table['month'].iloc[0]} → {last['month']}",
            "generations cut": len(archive.records(method)) - 1,
            "kept (literal)": last["candidate kept vs first"], "matched": last["matched"],
            "published kept": last["published kept vs first"], "MSE vs refit": last["MSE vs refit"],
            "worst MSE vs refit": table["MSE vs refit"].iloc[1:].max(),
            "R@10 serving / candidate": f"{serving['R@10 serving']:.4f} / {serving['R@10 candidate']:.4f}",
            "AUC cold best SID / hash (last ranked month)": (
                f"{ranked.iloc[-1]['AUC cold best SID']} / {ranked.iloc[-1]['AUC cold hash']:.4f}"
                if len(ranked) else "not run"),
            "target kept": target,
            "met": bool(last["candidate kept vs first"] >= target and last["MSE vs refit"] <= MAX_MSE_EXCESS)}


def report(home: Path, dataset_name: str, methods: list[str] | None, json_path: Path | None) -> None:
    store = AssetStore(home / "assets" / dataset_name)
    recorded = Recorded(home, store)
    refits = RefitCache(home / "bench" / "refits")
    found = [m for m in (methods or TARGETS) if MethodHistory(store, m).months()]
    months = store.months("aligned_embeddings")
    aligners = aligner_rows(store, recorded, months)
    print(f"\n### Aligners ({dataset_name})\n\n{markdown_table(aligners)}", flush=True)
    tables, summary = {}, []
    for method in found:
        tables[method] = method_rows(store, recorded, method, refits)
        print(f"\n### {method}\n\n{markdown_table(tables[method])}", flush=True)
        summary.append(trade_off(method, tables[method], aligners, GenerationArchive(store)))
    print(f"\n### Trade-off, first month against last ({dataset_name})\n\n{markdown_table(pd.DataFrame(summary))}")
    if json_path is not None:
        json_path.write_text(json.dumps({"aligners": aligners.to_dict("records"), "summary": summary,
                                         **{m: t.to_dict("records") for m, t in tables.items()}},
                                        default=str, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a home `semid demo` filled (default: run the pipeline)")
    parser.add_argument("--work", type=Path, help="where a fresh home is made (default: a temporary folder)")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--size", default="default")
    parser.add_argument("--months", type=int, default=7)
    parser.add_argument("--ranking", action="store_true", help="run ranking_eval too (minutes per month)")
    parser.add_argument("--methods", help="comma-separated methods (default: every method)")
    parser.add_argument("--json", type=Path, help="also write every table as JSON here")
    args = parser.parse_args()
    from semid_assets.settings import Settings

    home = args.home
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="semid-generations-", dir=args.work)) / "home"
        run_pipeline(home, args)
    settings = Settings(home=home.resolve(), dataset=args.dataset, size=args.size)
    report(home.resolve(), settings.source().name, args.methods.split(",") if args.methods else None, args.json)


if __name__ == "__main__":
    main()
