"""RQ-VAE anchored to the previous month's version (whole-model warm start) vs refitted from scratch.

    python bench/bench_vae_anchoring.py --home /path/to/home [--dataset synthetic-default]
        [--previous 2025-10] [--month 2025-11] [--method rq_vae] [--warm-epochs 1 2 3]

Reads (never writes) a home ``semid demo`` filled: the ``--previous`` month's stored
``--method`` tokenizer and ``semantic_ids``, and the ``--month`` month's
``aligned_embeddings``. It then fits ``--month`` with the stored version's parameters:

- unanchored: from scratch (``--seed``, default 1), as with ``anchor_to_previous=False``;
- anchored: warm-started from the stored version with the constructor's epochs, then with
  each ``--warm-epochs`` value, relabelled to the stored semantic IDs of the same items —
  what the tokenizer asset does with ``anchor_to_previous=True``.

On the items both months know it prints the share whose full SID is literally unchanged,
per prefix length the share literally unchanged, the same after optimally matching each level's codes to the previous ones (all the best
relabelling can do: the figure to read for the unanchored fit), the relative MSE of the
full SID and the fit time. LETTER (``--method letter``) is not supported here: it needs the
month's collaborative embeddings. ``--month`` equal to ``--previous`` refits a month anchored
to itself (unchanged embeddings). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semid_assets.core.tokenizers.anchoring import anchored_fit_encode  # noqa: E402
from semid_assets.core.data.embedding_table import embeddings_from_arrow  # noqa: E402
from semid_assets.core.markdown import markdown_table  # noqa: E402
from semid_assets.core.tokenizers.matching import match_level_codes  # noqa: E402
from semid_assets.core.tokenizers.sids import codes_of_items  # noqa: E402
from semid_assets.core.storage import AssetStore  # noqa: E402


def matched(previous_codes: np.ndarray, codes: np.ndarray, K: int) -> np.ndarray:
    out = codes.copy()
    for level in range(codes.shape[1]):
        out[:, level] = match_level_codes(previous_codes[:, level], codes[:, level], K)[codes[:, level]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--dataset", default="synthetic-default")
    parser.add_argument("--previous", default="2025-10")
    parser.add_argument("--month", default="2025-11")
    parser.add_argument("--method", default="rq_vae")
    parser.add_argument("--warm-epochs", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the new fits (the stored version's seed reproduces it exactly when unanchored "
                             "on the same month)")
    args = parser.parse_args()
    store = AssetStore(args.home / "assets" / args.dataset)
    previous = store.read_artifact("tokenizer", month=args.previous, method=args.method)
    table = store.read_table("semantic_ids", month=args.previous, method=args.method).to_pandas()
    ids, X = embeddings_from_arrow(store.read_table("aligned_embeddings", month=args.month))
    previous_codes = codes_of_items(table, ids)
    known = np.all(previous_codes >= 0, axis=1)
    params = {**previous.get_params(), "seed": args.seed}
    K = previous.codebook_size
    print(f"{args.method} {args.month} ({len(X)} items x {X.shape[1]}, {int(known.sum())} known in "
          f"{args.previous}); params {params}", flush=True)
    through_previous = previous.encode(X)
    print(f"the {args.previous} version encoding {args.month}'s embeddings keeps "
          f"{np.all(through_previous[known] == previous_codes[known], axis=1).mean():.1%} of the stored full SIDs, "
          f"{np.mean(through_previous[known, 0] == previous_codes[known, 0]):.1%} of first codes "
          "(how far the embeddings moved)", flush=True)
    results = []
    for label, epochs in [("unanchored", None), ("anchored, constructor's epochs", None),
                          *[(f"anchored, warm_epochs={e}", e) for e in args.warm_epochs]]:
        model = type(previous)(**params)
        started = time.perf_counter()
        if label == "unanchored":
            codes = model.fit_encode(X)
        else:
            codes, _ = anchored_fit_encode(model, X, previous, previous_codes=previous_codes, steps=epochs)
        seconds = time.perf_counter() - started
        report = model.level_report(X, codes)
        results.append({
            "fit": label,
            "epochs": len(model.fit_info["epochs"]),
            "full SID unchanged": round(float(np.all(codes[known] == previous_codes[known], axis=1).mean()), 4),
            "after matching": round(float(np.all(matched(previous_codes[known], codes[known], K)
                                                 == previous_codes[known], axis=1).mean()), 4),
            "prefix unchanged": [round(float(np.all(codes[known, : lvl + 1] == previous_codes[known, : lvl + 1],
                                                    axis=1).mean()), 3) for lvl in range(codes.shape[1])],
            "relative MSE": round(float(report["relative_mse"].iloc[-1]), 4),
            "fit seconds": round(seconds, 1),
        })
        print(results[-1], flush=True)
    print(markdown_table(pd.DataFrame(results)))


if __name__ == "__main__":
    main()
