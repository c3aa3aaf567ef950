"""Benchmark the QFormer aligner: training throughput and inference (embedding) throughput.

    SEMID_HOME=... python bench/bench_aligner.py [--size default] [--steps 60] [--threads N] [--width 64]

Uses the embedded synthetic platform's newest month at ``--size`` with the real
all-MiniLM-L6-v2 token matrices, read from ``$SEMID_HOME/cache`` (texts not cached yet are
encoded first, which takes minutes at the default size: copy a warm cache). Trains
``--steps`` steps at the default token counts and batch size, then embeds every item.
Prints items/s and pairs/s (wall clock), the process CPU seconds next to them (on a shared
machine wall time alone says little), and the projected time of one month's default
training. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semid_assets.core.alignment.config import AlignerTrainConfig  # noqa: E402
from semid_assets.core.alignment.training import train_aligner  # noqa: E402
from semid_assets.core.threads import wanted_threads  # noqa: E402
from semid_assets.core.alignment.evaluation import unique_pairs  # noqa: E402
from semid_assets.core.alignment.captions import caption_column, prepare_captions  # noqa: E402
from semid_assets.core.features.multimodal import build_multimodal_features, text_columns_of  # noqa: E402
from semid_assets.core.collaborative.pairs import PairConfig, build_item_pairs  # noqa: E402
from semid_assets.core.data.sources import month_end, month_start, open_source  # noqa: E402
from semid_assets.core.features.text_encoder import TextEncoder  # noqa: E402
from semid_assets.core.features.token_store import TokenStore  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="default")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the aligner's, 1)")
    parser.add_argument("--width", type=int, default=AlignerTrainConfig.width)
    parser.add_argument("--batch-pairs", type=int, default=AlignerTrainConfig.batch_pairs)
    args = parser.parse_args()
    home = Path(os.environ.get("SEMID_HOME", ".semid")).resolve()

    source = open_source("synthetic", size=args.size, seed=0, items_path=None, interactions_path=None,
                         data_root=home / "data")
    month = source.months()[-1]
    items = source.items_as_of(month)
    encoder = TextEncoder()
    store = TokenStore(home / "cache" / "text", encoder.name)
    t = time.perf_counter()
    features, stats = build_multimodal_features(items, encoder, store)
    print(f"{source.name} {month}: {features.n_items:,} items; features {time.perf_counter() - t:.1f} s "
          f"({stats['texts_encoded']:,} texts encoded, {stats['texts_cached']:,} cached)")
    counts = features.token_counts(store)
    print("tokens per item: " + ", ".join(f"{m} mean {c.mean():.1f} max {c.max()}" for m, c in counts.items()))

    interactions = source.interactions_as_of(month)
    window = interactions[interactions["ts"] >= month_end(month) - pd.DateOffset(months=3)]
    pairs, _ = build_item_pairs(window, np.asarray(features.item_ids), PairConfig(), target_start=month_start(month))
    a, b, _ = unique_pairs(pairs, features.item_ids)
    column = caption_column(text_columns_of(items))
    captions = prepare_captions(encoder.tokenize(items.column(column).to_pylist()), np.ones(features.n_items, bool),
                                column)
    config = AlignerTrainConfig(steps=args.steps, threads=args.threads, width=args.width,
                                batch_pairs=args.batch_pairs, log_every=max(1, args.steps // 4))
    full_steps = math.ceil(AlignerTrainConfig.epochs * 0.9 * len(a) / args.batch_pairs)

    threads = wanted_threads(args.threads)  # what train_aligner sets for the fit
    t, c = time.perf_counter(), cpu_seconds()
    aligner, history = train_aligner(features, a, b, config, captions, store=store, log=print)
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    pairs_done = args.steps * min(args.batch_pairs, len(a))
    print(f"training: {args.steps} steps × {args.batch_pairs} pairs in {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"({threads} threads): {pairs_done / wall:.0f} pairs/s, ~{2 * pairs_done / wall:.0f} items/s; "
          f"{wall / args.steps:.3f} s/step")
    print(f"one month at the defaults ({full_steps} steps for {len(a):,} distinct pairs, 90 % trained): "
          f"~{full_steps * wall / args.steps:.0f} s wall at this speed")

    t, c = time.perf_counter(), cpu_seconds()
    vectors = aligner.embed(features, store=store, threads=args.threads)
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    print(f"embedding: {len(vectors):,} items × {vectors.shape[1]} dims in {wall:.1f} s wall, {cpu:.1f} s CPU: "
          f"{len(vectors) / wall:.0f} items/s (padded to {dict(zip(aligner.config.modalities, aligner.config.max_tokens))})")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB")


if __name__ == "__main__":
    main()
