"""BPR collaborative embeddings: dense Adam (every row, every step) against sparse updates (the rows a batch uses).

Reads a catalogue and interaction log as ``bench_1m.py`` writes them (``--data``: the folder with
``items.parquet`` and ``interactions.parquet``) or the synthetic platform of ``--size`` (the demo's
data), keeps the items created and the interactions logged before the end of ``--month`` (what
``collaborative_embeddings`` of that month trains on), and fits
``collaborative_item_embeddings`` once per variant with the same options. Prints per variant the fit's
wall and CPU seconds, its held-out AUC (each user's latest positive against 100 random items) and its
last epoch's loss; with ``--twice`` each variant is fitted again and its factors compared bit for bit.
Not a test: nothing is timed against a limit.

    python bench/bench_bpr.py --data /tmp/semid-scale/data-1000000-10000000-s0 --month 2025-02 \\
        --epochs 3 --batch-size 32768 --threads 2
    python bench/bench_bpr.py --size default --month 2025-12 --epochs 10 --batch-size 8192
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semid_assets.core.collaborative.bpr import collaborative_item_embeddings  # noqa: E402


def month_inputs(data: Path, month: str) -> tuple[np.ndarray, pd.DataFrame]:
    """The item ids created, and the interactions logged, before ``month`` ends."""
    end = pd.Period(month, "M").end_time.ceil("D")
    items = pq.read_table(data / "items.parquet", columns=["item_id", "created_at"])
    items = items.filter(pc.less(items["created_at"], pd.Timestamp(end)))
    log = pq.read_table(data / "interactions.parquet")
    log = log.filter(pc.less(log["ts"], pd.Timestamp(end))).to_pandas()
    return items["item_id"].to_numpy(), log


def synthetic_inputs(size: str, month: str) -> tuple[np.ndarray, pd.DataFrame]:
    from semid_assets.core.data.synthetic import generate, spec_for_size

    platform = generate(spec_for_size(size))
    return platform.items_as_of(month)["item_id"].to_numpy(), platform.interactions_as_of(month)


def fit(item_ids: np.ndarray, log: pd.DataFrame, options: dict) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    vectors, has, info = collaborative_item_embeddings(log, item_ids, **options)
    return {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1),
            "heldout_auc": round(info["heldout_auc"], 4), "final_loss": info["loss_per_epoch"][-1],
            "positives": info["positives"], "items_with_embedding": info["items_with_embedding"],
            "vectors": vectors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="a folder bench_1m.py wrote")
    source.add_argument("--size", help="the synthetic platform of this size (e.g. tiny, default)")
    parser.add_argument("--month", default="2025-02")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32768)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default="dense,sparse", help="which of dense,sparse to fit, in order")
    parser.add_argument("--twice", action="store_true", help="fit each variant again and compare the factors")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    item_ids, log = (month_inputs(args.data, args.month) if args.data else synthetic_inputs(args.size, args.month))
    print(f"{len(item_ids):,} items, {len(log):,} interactions up to the end of {args.month}", flush=True)
    rows = []
    for variant in args.variants.split(","):
        options = {"epochs": args.epochs, "batch_size": args.batch_size, "n_threads": args.threads,
                   "sparse_updates": variant == "sparse"}
        result = fit(item_ids, log, options)
        vectors = result.pop("vectors")
        if args.twice:
            result["same_factors_twice"] = bool(np.array_equal(vectors, fit(item_ids, log, options)["vectors"]))
        rows.append({"variant": variant, **options, **result})
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
