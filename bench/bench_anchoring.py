"""Churn and reconstruction error of anchored vs unanchored retraining, month after month.

    SEMID_HOME=/path/to/home python bench/bench_anchoring.py [--dataset synthetic-default] [--threads 1]
        [--iterations 3 20]

Reads the ``aligned_embeddings`` every month of a home holds (run ``semid demo`` first),
then fits, for every month, RQ-Kmeans with the tokenizer asset's defaults:

- unanchored: from scratch, as with ``anchor_to_previous=False``;
- anchored with ``i`` warm Lloyd iterations, for each ``--iterations`` value: the previous
  month's partition (of the same chain) carried over into this month's space, ``i``
  iterations, then relabelled to the previous codes — what the tokenizer asset does with
  ``anchor_iterations=i``. The first month of every chain is fitted from scratch.

For each month after the first it prints, on the items both months know: the share of
items whose full SID changes literally (churn), the same after optimally matching the
codes to the previous version's (all the best relabelling can do: the figure to read for
the unanchored chain), ARI at prefix lengths 1 and 3, and the relative MSE of the full SID.
It also refits the last month anchored to itself (unchanged data). Not a test: nothing is
asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semid_assets.core.tokenizers.anchoring import anchored_fit_encode  # noqa: E402
from semid_assets.core.data.embedding_table import embeddings_from_arrow  # noqa: E402
from semid_assets.core.markdown import markdown_table  # noqa: E402
from semid_assets.core.tokenizers.metrics import level_report  # noqa: E402
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans  # noqa: E402
from semid_assets.core.evaluation.stability import align_common, compare_codes  # noqa: E402
from semid_assets.core.storage import AssetStore  # noqa: E402


def fit(X, previous, previous_codes, iterations, threads, codebook_size):
    model = RQKMeans(levels=3, codebook_size=codebook_size, seed=0, n_threads=threads)
    started = time.perf_counter()
    if previous is None:
        codes = model.fit_encode(X)
    else:
        codes, _ = anchored_fit_encode(model, X, previous, previous_codes=previous_codes, steps=iterations)
    return model, codes, time.perf_counter() - started


def codes_for(ids, previous_ids, previous_codes):
    """The previous version's codes of ``ids`` (-1 rows for items it never saw)."""
    rows = pd.Index(np.asarray(previous_ids)).get_indexer(np.asarray(ids))
    codes = np.full((len(ids), previous_codes.shape[1]), -1, dtype=np.int64)
    codes[rows >= 0] = previous_codes[rows[rows >= 0]]
    return codes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", default=os.environ.get("SEMID_HOME", ".semid"))
    parser.add_argument("--dataset", default="synthetic-default")
    parser.add_argument("--codebook-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, nargs="+", default=[3, 20],
                        help="warm Lloyd iterations of each anchored chain (the asset's default is 3)")
    args = parser.parse_args()
    store = AssetStore(Path(args.home) / "assets" / args.dataset)
    months = store.months("aligned_embeddings")
    if len(months) < 2:
        raise SystemExit(f"{store.root / 'aligned_embeddings'} holds {len(months)} month(s); "
                         f"run `semid demo --months 3` (or more) first")
    chains = ["unanchored"] + [f"anchored, {i} iterations" for i in args.iterations]
    iterations = dict(zip(chains, [None] + args.iterations))
    rows = []
    previous = dict.fromkeys(chains)
    for month in months:
        ids, X = embeddings_from_arrow(store.read_table("aligned_embeddings", month=month))
        current = {}
        for chain in chains:
            anchor = previous[chain] if iterations[chain] is not None else None
            previous_codes = None if anchor is None else codes_for(ids, anchor[1], anchor[2])
            model, codes, seconds = fit(X, None if anchor is None else anchor[0], previous_codes,
                                        iterations[chain], args.threads, args.codebook_size)
            mse = float(level_report(X, codes, model.codebooks)["relative_mse"].iloc[-1])
            current[chain] = (model, ids, codes)
            row = {"month": month, "chain": chain, "items": len(ids), "relative_mse": mse, "fit_s": round(seconds, 1)}
            if previous[chain] is not None:
                _, ids_a, codes_a = previous[chain]
                rows_a, rows_b = align_common(ids_a, ids)
                table = compare_codes(codes_a[rows_a], codes[rows_b]).table
                row.update(common=len(rows_a), churn=float(1 - table["raw_unchanged"].iloc[-1]),
                           churn_after_matching=float(1 - table["matched_kept"].iloc[-1]),
                           ari_p1=float(table["ari"].iloc[0]), ari_p3=float(table["ari"].iloc[-1]))
            rows.append(row)
            print(row, flush=True)
        previous = current
    # Unchanged data: the last month refitted, anchored to its own version of the first anchored chain.
    chain = chains[1]
    model, ids, codes = previous[chain]
    again, codes_again, seconds = fit(X, model, codes, iterations[chain], args.threads, args.codebook_size)
    rows.append({"month": months[-1], "chain": f"{chain}, to itself", "items": len(codes),
                 "relative_mse": float(level_report(X, codes_again, again.codebooks)["relative_mse"].iloc[-1]),
                 "fit_s": round(seconds, 1), "common": len(codes),
                 "churn": float(1 - np.all(codes_again == codes, axis=1).mean())})
    print()
    print(markdown_table(pd.DataFrame(rows).astype(object).fillna(""), digits=4))


if __name__ == "__main__":
    main()
