"""One month refitted anchored to an earlier month's *stored* semantic IDs, as the tokenizer asset does.

    SEMID_HOME=/path/to/home python bench/bench_anchor_stored.py [--method rq_kmeans_balanced]
        [--month 2025-11] [--earlier 2025-10] [--iterations 3] [--threads 1]

Reads the home's ``aligned_embeddings`` of ``--month``, the earlier month's stored
``semantic_ids`` and ``tokenizer`` of ``--method`` (run ``semid demo`` first), and fits the
method with the tokenizer asset's defaults (3 x 256, seed 0) three ways:

- unanchored, from scratch (also matched optimally to the stored codes: all a relabelling can do);
- anchored to the stored codes with ``--iterations`` warm iterations (the asset's path);
- the earlier month refitted anchored to its own stored codes (unchanged data).

Prints, on the items both know, the share keeping their prefix of each length literally, the
relative MSE of the full SID and the fit time. Not a test: nothing is asserted.
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

from semid_assets.core.tokenizers.anchoring import anchored_fit_encode, relabel_to_previous  # noqa: E402
from semid_assets.core.data.embedding_table import embeddings_from_arrow  # noqa: E402
from semid_assets.core.markdown import markdown_table  # noqa: E402
from semid_assets.core.tokenizers.methods import make_tokenizer  # noqa: E402
from semid_assets.core.tokenizers.metrics import level_report  # noqa: E402
from semid_assets.core.tokenizers.sids import codes_of_items  # noqa: E402
from semid_assets.core.storage import AssetStore  # noqa: E402


def stored_codes(store: AssetStore, month: str, method: str, ids: np.ndarray) -> np.ndarray:
    return codes_of_items(store.read_table("semantic_ids", month=month, method=method).to_pandas(), ids)


def row(label, model, X, codes, previous_codes, seconds):
    known = np.all(previous_codes >= 0, axis=1)
    same = codes[known] == previous_codes[known]
    return {"fit": label, "items": len(X), "known": int(known.sum()),
            **{f"kept_p{lvl + 1}": float(np.all(same[:, : lvl + 1], axis=1).mean()) for lvl in range(codes.shape[1])},
            "relative_mse": float(level_report(X, codes, model.codebooks)["relative_mse"].iloc[-1]),
            "fit_s": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", default=os.environ.get("SEMID_HOME", ".semid"))
    parser.add_argument("--dataset", default="synthetic-default")
    parser.add_argument("--method", default="rq_kmeans_balanced", choices=["rq_kmeans", "rq_kmeans_balanced"])
    parser.add_argument("--month", default="2025-11")
    parser.add_argument("--earlier", default="2025-10")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    store = AssetStore(Path(args.home) / "assets" / args.dataset)
    previous = store.read_artifact("tokenizer", month=args.earlier, method=args.method)

    def model():
        return make_tokenizer(args.method, levels=3, codebook_size=previous.codebook_size, seed=0,
                              n_threads=args.threads)

    rows = []
    for month, label in ((args.month, f"{args.month} anchored to {args.earlier}"),
                         (args.earlier, f"{args.earlier} anchored to itself")):
        ids, X = embeddings_from_arrow(store.read_table("aligned_embeddings", month=month))
        previous_codes = stored_codes(store, args.earlier, args.method, ids)
        if month == args.month:
            free = model()
            started = time.perf_counter()
            codes = free.fit_encode(X)
            rows.append(row("unanchored", free, X, codes, previous_codes, time.perf_counter() - started))
            known = np.all(previous_codes >= 0, axis=1)
            codebooks, matched, _ = relabel_to_previous(free.codebooks, codes[known], previous_codes[known])
            free.codebooks = codebooks
            rows.append(row("unanchored, best relabelling", free, X[known], matched, previous_codes[known], 0.0))
        anchored = model()
        started = time.perf_counter()
        codes, _ = anchored_fit_encode(anchored, X, previous, previous_codes=previous_codes,
                                       steps=args.iterations)
        rows.append(row(f"{label}, {args.iterations} iterations", anchored, X, codes, previous_codes,
                        time.perf_counter() - started))
        print(rows[-1], flush=True)
    print(markdown_table(pd.DataFrame(rows), digits=4))


if __name__ == "__main__":
    main()
