"""Held-out pair retrieval: the exact rank counts of ``pair_hits`` against a float32 top-K search.

The aligner and ``sid_staleness`` judge a space by Recall@K of pairs: does a find b among its K
nearest items, and b find a? Until ``partner_rank`` that was ``faiss.knn`` (an exact float32 search
of the K + 1 nearest items per direction); now it is ``items_ahead`` (bfloat16 products as a filter,
float64 for the close calls, queries dropped once K items are surely ahead). This times both on the
same vectors and pairs, side by side, and reports how many directions' hits@K differ (only exact
ties may: the search orders them arbitrarily, the counts put a tied item ahead).

Vectors: the synthetic platform's topic embeddings (``topic_embeddings``, unit rows), pairs of two
items of one topic. Not a test: nothing is timed against a limit.

    python bench/bench_partner_rank.py --items 1000000 --dim 640 --pairs 7000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semid_assets.core.alignment.evaluation import pair_hits  # noqa: E402
from semid_assets.core.data.synthetic import topic_embeddings  # noqa: E402
from semid_assets.core.threads import compute_threads  # noqa: E402

KS = (10, 50)


def same_topic_pairs(labels: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(labels), 4 * n_pairs)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], labels[a], side="left")
    ends = np.searchsorted(labels[order], labels[a], side="right")
    b = order[starts + (rng.random(len(a)) * (ends - starts)).astype(np.int64)]
    keep = np.flatnonzero(a != b)[:n_pairs]
    return a[keep], b[keep]


def float32_search_hits(x: np.ndarray, a: np.ndarray, b: np.ndarray, threads: int) -> dict[int, np.ndarray]:
    """The previous ``pair_hits``: the K + 1 nearest by faiss' exact float32 search, the query excluded."""
    import faiss

    queries, targets = np.concatenate([a, b]), np.concatenate([b, a])
    with compute_threads(threads):
        _, found = faiss.knn(x[queries], x, min(max(KS) + 1, len(x)), metric=faiss.METRIC_INNER_PRODUCT)
    found = np.where(found == queries[:, None], -1, found)
    out = {}
    for k in KS:
        rank_ok = (found[:, : k + 1] >= 0).cumsum(axis=1) <= k
        hits = ((found[:, : k + 1] == targets[:, None]) & rank_ok).any(axis=1).astype(np.float64)
        out[k] = (hits[: len(a)] + hits[len(a):]) / 2.0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=7000, help="pairs judged (each is two searches)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    x, labels = topic_embeddings(args.items, args.dim, seed=args.seed)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    a, b = same_topic_pairs(labels, args.pairs, args.seed)
    row = {"items": args.items, "dim": args.dim, "pairs": len(a), "threads": args.threads}
    results = {}
    for name, run in (("float32_search", lambda: float32_search_hits(x, a, b, args.threads)),
                      ("exact_counts", lambda: pair_hits(x, a, b, KS, threads=args.threads))):
        started = time.perf_counter()
        results[name] = run()
        row[f"{name}_s"] = round(time.perf_counter() - started, 2)
        print(f"{name}: {row[f'{name}_s']} s", flush=True)
    row["speed_up"] = round(row["float32_search_s"] / row["exact_counts_s"], 2)
    for k in KS:
        row[f"recall@{k}"] = float(results["exact_counts"][k].mean())
        row[f"pairs_differing@{k}"] = int((results["exact_counts"][k] != results["float32_search"][k]).sum())
    print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
