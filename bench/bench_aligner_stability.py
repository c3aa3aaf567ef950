"""The aligner's stability trade-off: held-out recall vs how far a warm-started month moves the space.

    SEMID_HOME=/path/to/home python bench/bench_aligner_stability.py [--previous 2025-10] [--month 2025-11]
        [--weights 0 1 10 30 100 300 1000] [--warm-iterations 3]

Needs a home where ``semid demo`` materialised both months (default data). For every
``stability_weight`` it trains ``--month``'s aligner warm-started from ``--previous``'s stored
aligner (the asset's defaults otherwise), then prints: held-out Recall@10/@50 (and the
content embedding's), the mean squared distance of the month's vectors from the previous
aligner's, the 10-NN overlap with the previous month's aligned embeddings on the items both
know, and RQ-Kmeans (the tokenizer asset's defaults) anchored to the previous month's stored
RQ-Kmeans SIDs: the share of items keeping their prefix of each length, and relative MSE.
One run per weight (one seed): differences of a few thousandths of recall are noise.
Not a test: nothing is asserted.
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

from semid_assets.core.alignment.config import AlignerTrainConfig  # noqa: E402
from semid_assets.core.alignment.monthly import align_month  # noqa: E402
from semid_assets.core.tokenizers.anchoring import anchored_fit_encode  # noqa: E402
from semid_assets.core.alignment.captions import caption_column  # noqa: E402
from semid_assets.core.data.embedding_table import embeddings_from_arrow  # noqa: E402
from semid_assets.core.features.multimodal import text_columns_of  # noqa: E402
from semid_assets.core.markdown import markdown_table  # noqa: E402
from semid_assets.core.tokenizers.metrics import level_report  # noqa: E402
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans  # noqa: E402
from semid_assets.core.data.sources import open_source  # noqa: E402
from semid_assets.core.tokenizers.sids import codes_of_items  # noqa: E402
from semid_assets.core.evaluation.stability import align_common, knn_overlap  # noqa: E402
from semid_assets.core.features.text_encoder import TextEncoder  # noqa: E402
from semid_assets.core.features.token_store import TokenStore  # noqa: E402
from semid_assets.core.storage import AssetStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=os.environ.get("SEMID_HOME", ".semid"))
    parser.add_argument("--previous", default="2025-10")
    parser.add_argument("--month", default="2025-11")
    parser.add_argument("--weights", type=float, nargs="+", default=[0, 1, 10, 30, 100, 300, 1000])
    parser.add_argument("--warm-iterations", type=int, default=3, help="RQ-Kmeans Lloyd iterations after the warm start")
    args = parser.parse_args()
    home = Path(args.home)
    store = AssetStore(home / "assets" / "synthetic-default")
    features = store.read_artifact("multimodal_features", month=args.month)
    pairs = store.read_table("item_pairs", month=args.month).to_pandas()
    previous_aligner = store.read_artifact("aligner", month=args.previous)
    source = open_source("synthetic", size="default", seed=0, items_path=None, interactions_path=None,
                         data_root=home / "data")
    items = source.items_as_of(args.month)
    column = caption_column(text_columns_of(items))
    encoder = TextEncoder()
    store = TokenStore(home / "cache" / "text", encoder.name)
    captions = encoder.tokenize([t or "" for t in items.column(column).to_pylist()])
    topics = np.asarray(items.column("truth_topic").to_pylist()).astype(str)
    previous_ids, previous_vectors = embeddings_from_arrow(store.read_table("aligned_embeddings", month=args.previous))
    stored = store.read_table("semantic_ids", month=args.previous, method="rq_kmeans").to_pandas()
    ids = np.asarray(features.item_ids).astype(str)
    previous_codes = codes_of_items(stored, ids)
    previous_tokenizer = store.read_artifact("tokenizer", month=args.previous, method="rq_kmeans")
    common_a, common_b = align_common(np.asarray(previous_ids).astype(str), ids)

    table = []
    for weight in args.weights:
        started = time.perf_counter()
        result = align_month(features, pairs, AlignerTrainConfig(stability_weight=weight), caption_token_ids=captions,
                             caption_column=column, topics=topics, warm_start=previous_aligner, store=store)
        vectors = result.vectors
        model = RQKMeans(levels=3, codebook_size=256, seed=0)
        codes, info = anchored_fit_encode(model, vectors, previous_tokenizer, previous_codes=previous_codes,
                                          steps=args.warm_iterations)
        retrieval = result.retrieval.set_index("aligner")
        row = {
            "stability_weight": weight,
            "R@10": retrieval.loc["qformer", "heldout_recall@10"],
            "R@50": retrieval.loc["qformer", "heldout_recall@50"],
            "previous R@10": retrieval.loc["previous", "heldout_recall@10"],
            "none R@10": retrieval.loc["none", "heldout_recall@10"],
            "moved": result.metrics["moved_from_previous"],
            "knn_overlap": knn_overlap(previous_vectors[common_a], vectors[common_b]),
            "prefix_kept": " / ".join(f"{v:.3f}" for v in info["prefix_unchanged"]),
            "relative_mse": float(level_report(vectors, codes, model.codebooks)["relative_mse"].iloc[-1]),
            "seconds": round(time.perf_counter() - started, 1),
        }
        table.append(row)
        print(row, flush=True)
    print()
    print(markdown_table(pd.DataFrame(table), digits=4))


if __name__ == "__main__":
    main()
