"""Churn and reconstruction error of anchored vs unanchored retraining, month after month.

    SEMID_HOME=/path/to/home python bench/bench_anchoring.py [--dataset synthetic-default] [--threads 1]

Reads the ``aligned_embeddings`` every month of a home holds (run ``semid demo`` first),
then fits, for every month, RQ-Kmeans with the tokenizer asset's defaults twice:

- unanchored: from scratch, as with ``anchor_to_previous=False``;
- anchored: warm-started from the previous month's anchored version and relabelled to it
  (the asset's default), the first month from scratch.

For each month after the first it prints, on the items both months know: the share of
items whose full SID changes literally (churn), the same after optimally matching the
unanchored version's codes to the previous one (the best relabelling can do without
warm start), and both versions' relative MSE. It also refits the last month anchored to
itself (unchanged data). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semid_assets.core.anchoring import anchored_fit_encode  # noqa: E402
from semid_assets.core.embedding_table import embeddings_from_arrow  # noqa: E402
from semid_assets.core.markdown import markdown_table  # noqa: E402
from semid_assets.core.metrics import level_report  # noqa: E402
from semid_assets.core.rq_kmeans import RQKMeans  # noqa: E402
from semid_assets.core.stability import align_common, compare_codes  # noqa: E402


def fit(X, previous, threads, codebook_size):
    model = RQKMeans(levels=3, codebook_size=codebook_size, seed=0, n_threads=threads)
    started = time.perf_counter()
    if previous is None:
        codes = model.fit_encode(X)
    else:
        codes, _ = anchored_fit_encode(model, X, previous)
    return model, codes, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", default=os.environ.get("SEMID_HOME", ".semid"))
    parser.add_argument("--dataset", default="synthetic-default")
    parser.add_argument("--codebook-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    folder = Path(args.home) / "assets" / args.dataset / "aligned_embeddings"
    months = sorted(p.stem for p in folder.glob("*.parquet"))
    if len(months) < 2:
        raise SystemExit(f"{folder} holds {len(months)} month(s); run `semid demo --months 3` (or more) first")
    rows = []
    previous = {"unanchored": None, "anchored": None}
    for month in months:
        ids, X = embeddings_from_arrow(pq.read_table(folder / f"{month}.parquet"))
        current = {}
        for mode in ("unanchored", "anchored"):
            anchor = previous[mode][0] if mode == "anchored" and previous[mode] is not None else None
            model, codes, seconds = fit(X, anchor, args.threads, args.codebook_size)
            mse = float(level_report(X, codes, model.codebooks)["relative_mse"].iloc[-1])
            current[mode] = (model, ids, codes)
            row = {"month": month, "mode": mode, "items": len(ids), "relative_mse": mse, "fit_s": round(seconds, 1)}
            if previous[mode] is not None:
                _, ids_a, codes_a = previous[mode]
                rows_a, rows_b = align_common(ids_a, ids)
                table = compare_codes(codes_a[rows_a], codes[rows_b]).table
                row.update(common=len(rows_a), churn=float(1 - table["raw_unchanged"].iloc[-1]),
                           churn_after_matching=float(1 - table["matched_kept"].iloc[-1]),
                           ari_p1=float(table["ari"].iloc[0]), ari_p3=float(table["ari"].iloc[-1]),
                           jaccard_p3=float(table["prefix_jaccard"].iloc[-1]))
            rows.append(row)
            print(row, flush=True)
        previous = current
    # Unchanged data: the last month refitted, anchored to its own anchored version.
    model, _, codes = previous["anchored"]
    again, codes_again, seconds = fit(X, model, args.threads, args.codebook_size)
    rows.append({"month": months[-1], "mode": "anchored to itself", "items": len(codes),
                 "relative_mse": float(level_report(X, codes_again, again.codebooks)["relative_mse"].iloc[-1]),
                 "fit_s": round(seconds, 1), "common": len(codes),
                 "churn": float(1 - np.all(codes_again == codes, axis=1).mean())})
    print()
    print(markdown_table(pd.DataFrame(rows).astype(object).fillna(""), digits=4))


if __name__ == "__main__":
    main()
