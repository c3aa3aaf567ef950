"""Tuning the candidate tokenizer: variants refitted on a finished home's stored embeddings, kept vs MSE.

    python bench/bench_generation_tuning.py --home PATH --method rq_kmeans [--dataset synthetic-default]
        [--first 2025-06] [--last 2025-12] [--hysteresis 0 0.02] [--anchor-iterations 1 3]
        [--warm-lr-scale 0.1 0.03] [--warm-epochs 0 1]
        [--continue-from newest generation] [--all-months] [--refit-seeds 0 1 2 3 4] [--json out.json]

Re-fits only the tokenizer stage, with the library, on what a run of ``semid demo`` stored: each
month's ``aligned_embeddings`` (and ``collaborative_embeddings`` for LETTER) and the
``semantic_ids`` published before it. For every combination of the listed options (0 for
``--warm-epochs`` means the method's default) it fits the month's candidate as the tokenizer
asset does (``core/lifecycle/candidate.fit_candidate``, anchored to the IDs published the month
before, the stored version's options otherwise):

- the k-means methods start from the published partition, so a candidate depends only on its own
  month: only ``--last`` is fitted (every month with ``--all-months``);
- RQ-VAE and LETTER continue a model: with ``--continue-from newest`` (what the asset does) each
  month continues the variant's own candidate of the month before, from the first month's stored
  version; with ``generation`` each continues the generation's frozen tokenizer (the archive's).

On the first month's items it prints the share whose full code tuple the candidate keeps
literally (and after the best renaming), the share kept of the IDs published the month before,
and the relative MSE against an unanchored refit of the same month with the stored options.
The publication is the stored one: the generations the run cut are listed first.

``--refit-seeds`` also refits every fitted month unanchored with each listed seed (the stored
options otherwise) and prints the spread of their relative MSE: the noise floor against which an
"MSE vs refit" figure (one refit, the stored seed) can be read. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation_measures import RefitCache, kept_and_matched, month_data, published_ids, relative_mse  # noqa: E402

from semid_assets.core.lifecycle.archive import GenerationArchive  # noqa: E402
from semid_assets.core.lifecycle.candidate import fit_candidate  # noqa: E402
from semid_assets.core.lifecycle.generations import published  # noqa: E402
from semid_assets.core.lifecycle.history import MethodHistory  # noqa: E402
from semid_assets.core.markdown import markdown_table  # noqa: E402
from semid_assets.core.options import replace_options  # noqa: E402
from semid_assets.core.storage import AssetStore  # noqa: E402
from semid_assets.core.tokenizers.base import Anchoring  # noqa: E402
from semid_assets.core.tokenizers.methods import make_tokenizer  # noqa: E402

# Option name in the tokenizer's options → command-line list it comes from.
_MODEL_OPTIONS = {"warm_lr_scale": "warm_lr_scale"}


def variants(args, anchoring: Anchoring) -> list[dict]:
    """Every combination of the listed values that applies to the method's anchoring."""
    axes = {"hysteresis": args.hysteresis}
    if anchoring is Anchoring.CODEBOOKS:
        axes["steps"] = args.anchor_iterations
    else:
        axes["steps"] = [e or None for e in args.warm_epochs]
        axes["continue_from"] = args.continue_from
        for option, listed in _MODEL_OPTIONS.items():
            values = getattr(args, listed)
            if values:
                axes[option] = values
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def fit_month(store: AssetStore, method: str, month: str, variant: dict, previous_model):
    """The candidate of ``month`` under ``variant``: ``(model, codes, seconds)``."""
    stored = store.read_artifact("tokenizer", month=month, method=method)
    overrides = {k: v for k, v in variant.items() if k in _MODEL_OPTIONS}
    model = make_tokenizer(method, replace_options(stored.options, **overrides) if overrides else stored.options)
    data = month_data(store, month)
    before = MethodHistory(store, method).previous(month)
    started = time.perf_counter()
    codes, _ = fit_candidate(model, data.vectors, data.item_ids, previous=previous_model,
                             published=published(before.table), steps=variant["steps"],
                             hysteresis=variant["hysteresis"], **data.side(model))
    return model, codes, time.perf_counter() - started


def run_variant(store: AssetStore, method: str, months: list[str], variant: dict, refits: RefitCache,
                fit_all: bool) -> list[dict]:
    first = published_ids(store, months[0], method)
    anchoring = make_tokenizer(method).anchoring
    chain = store.read_artifact("tokenizer", month=months[0], method=method)
    rows = []
    for month in months[1:]:
        if anchoring is Anchoring.CODEBOOKS:
            if not fit_all and month != months[-1]:
                continue
            previous = MethodHistory(store, method).previous_model(month)[1]
        elif variant["continue_from"] == "generation":
            number = int(published_ids(store, MethodHistory(store, method).previous(month).month, method)
                         .generation.max())
            archive = GenerationArchive(store)
            previous = archive.models(archive.record(method, number, before=month)).tokenizer
        else:
            previous = chain
        model, codes, seconds = fit_month(store, method, month, variant, previous)
        chain = model
        data = month_data(store, month)
        before = published_ids(store, MethodHistory(store, method).previous(month).month, method)
        literal, matched = kept_and_matched(data.item_ids, codes, first)
        mse = relative_mse(model, data.vectors, codes)
        refit = refits.get(method, store.read_artifact("tokenizer", month=month, method=method).options, data)
        rows.append({**{k: ("default" if v is None else v) for k, v in variant.items()}, "month": month,
                     "kept vs first": literal, "matched vs first": matched,
                     "kept vs published": kept_and_matched(data.item_ids, codes, before)[0],
                     "rel. MSE": mse, "refit rel. MSE": refit["relative_mse"],
                     "MSE vs refit": mse / refit["relative_mse"] - 1.0, "fit s": round(seconds, 1)})
        print(rows[-1], flush=True)
    return rows


def refit_spread(store: AssetStore, method: str, months: list[str], seeds: list[int],
                 refits: RefitCache) -> pd.DataFrame:
    """Per month: the relative MSE of unanchored refits with each seed, and its spread."""
    rows = []
    for month in months:
        options = store.read_artifact("tokenizer", month=month, method=method).options
        data = month_data(store, month)
        found = [refits.get(method, replace_options(options, seed=seed), data)["relative_mse"] for seed in seeds]
        rows.append({"month": month, "stored seed": options.seed, "seeds": len(seeds), "min": min(found),
                     "median": float(pd.Series(found).median()), "max": max(found),
                     "max / min - 1": max(found) / min(found) - 1.0})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--dataset", default="synthetic-default", help="the folder under <home>/assets")
    parser.add_argument("--method", required=True)
    parser.add_argument("--first")
    parser.add_argument("--last")
    parser.add_argument("--hysteresis", type=float, nargs="+", default=[0.0])
    parser.add_argument("--anchor-iterations", type=int, nargs="+", default=[3])
    parser.add_argument("--warm-lr-scale", type=float, nargs="*")
    parser.add_argument("--warm-epochs", type=int, nargs="+", default=[0])
    parser.add_argument("--continue-from", nargs="+", default=["newest"], choices=["newest", "generation"])
    parser.add_argument("--all-months", action="store_true", help="k-means methods: fit every month, not only the last")
    parser.add_argument("--refit-seeds", type=int, nargs="*", help="also refit unanchored with these seeds")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    store = AssetStore(args.home / "assets" / args.dataset)
    months = [m for m in MethodHistory(store, args.method).months()
              if (args.first is None or m >= args.first) and (args.last is None or m <= args.last)]
    records = GenerationArchive(store).records(args.method)
    print(f"{args.method}: months {months[0]} … {months[-1]}; generations stored: "
          + ", ".join(f"{r.number} from {r.origin_month}" for r in records), flush=True)
    refits = RefitCache(args.home / "bench" / "refits")
    rows = []
    for variant in variants(args, make_tokenizer(args.method).anchoring):
        rows += run_variant(store, args.method, months, variant, refits, args.all_months)
    table = pd.DataFrame(rows)
    print(markdown_table(table))
    spread = None
    if args.refit_seeds:
        spread = refit_spread(store, args.method, sorted(set(table["month"])), args.refit_seeds, refits)
        print(f"unanchored refits, relative MSE over seeds {args.refit_seeds}:")
        print(markdown_table(spread))
    if args.json is not None:
        found = rows if spread is None else {"variants": rows, "refit_spread": spread.to_dict("records")}
        args.json.write_text(json.dumps(found, default=str, indent=1))


if __name__ == "__main__":
    main()
