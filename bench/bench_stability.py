"""Time the stability comparison (and the hierarchy report) of two tokenizer versions at scale.

    python bench/bench_stability.py [--n 1000000] [--dim 256] [--codebook-size 256] [--threads 2]

Two versions of ``semid_assets.core.data.synthetic.topic_embeddings`` items: version A fitted on
the first ``n`` items, version B a month later — 5 % of A's items gone, as many new ones,
the rest in another order, the embeddings unchanged — fitted from scratch with another
seed (plain Lloyd, 10 iterations: the fits are set-up, not what is measured). Then
``compare_versions`` (ARI / NMI / AMI / matching / Jaccard / JSD per prefix length, and the kNN
overlap of 1,000 sampled items — free here, the embeddings being unchanged), the kNN overlap
against slightly moved embeddings (two exact searches), and ``prefix_similarity`` +
``trie_stats`` are timed. The AMI's share of ``compare_versions`` (its chance term, summed
over pairs of distinct prefix sizes) is timed again on its own.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semid_assets.core.evaluation.hierarchy import prefix_similarity, trie_stats  # noqa: E402
from semid_assets.core.markdown import markdown_table  # noqa: E402
from semid_assets.core.tokenizers.matching import cell_counts  # noqa: E402
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans  # noqa: E402
from semid_assets.core.evaluation.stability import _ami, align_common, compare_versions, knn_overlap  # noqa: E402
from semid_assets.core.data.synthetic import topic_embeddings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--codebook-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    churn = args.n // 20
    started = time.perf_counter()
    X, _ = topic_embeddings(args.n + churn, args.dim, seed=0)
    ids = np.arange(args.n + churn, dtype=np.int64)
    rng = np.random.default_rng(0)
    rows_a = np.arange(args.n)
    rows_b = rng.permutation(np.arange(churn, args.n + churn))
    fits = []
    for rows, seed in ((rows_a, 0), (rows_b, 1)):
        model = RQKMeans(levels=3, codebook_size=args.codebook_size, n_iter=10, seed=seed,
                         progressive_dim_steps=0, n_threads=args.threads)
        fits.append(model.fit_encode(X[rows]))
    print(f"set-up (data + two fits): {time.perf_counter() - started:.1f} s")

    t0 = time.perf_counter()
    report, figures = compare_versions(ids[rows_a], fits[0], ids[rows_b], fits[1], emb_a=X[rows_a], emb_b=X[rows_b],
                                       knn_sample=1000, knn_k=10)
    stability_s = time.perf_counter() - t0
    ami_s = 0.0
    for ga, gb in zip(report.matching.groups_a, report.matching.groups_b):
        rows, cols, counts, _ = cell_counts(ga, gb)
        t0 = time.perf_counter()
        _ami(counts, rows, cols, len(ga))
        ami_s += time.perf_counter() - t0
    # Unchanged items embed identically here (as with aligner="none"), which knn_overlap
    # recognises; a retrained aligner moves them, so also time the two exact searches.
    common_a, common_b = align_common(ids[rows_a], ids[rows_b])
    moved = X[rows_b][common_b] + rng.normal(scale=0.01, size=(len(common_b), args.dim)).astype(np.float32)
    t0 = time.perf_counter()
    overlap = knn_overlap(X[rows_a][common_a], moved, sample=1000, k=10)
    knn_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    similarity = prefix_similarity(fits[1], X[rows_b], pairs=20000)
    trie = trie_stats(fits[1])
    hierarchy_s = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(markdown_table(report.table))
    print(figures)
    print(markdown_table(similarity))
    print(markdown_table(trie))
    print(f"\nn={args.n:,} common={figures['items_common']:,}: stability {stability_s:.1f} s "
          f"(of which AMI {ami_s:.1f} s) "
          f"(+ {knn_s:.1f} s for kNN overlap {overlap:.3f} on moved embeddings), "
          f"hierarchy {hierarchy_s:.1f} s, threads {args.threads}, peak RSS {peak_gb:.1f} GB")


if __name__ == "__main__":
    main()
