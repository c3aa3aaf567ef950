"""Benchmark the RQ-Kmeans tokenizer against faiss's ResidualQuantizer (beam 1).

    python bench/bench_rq_kmeans.py [--n 100000 1000000] [--dim 256] [--levels 3] [--K 256]
                                    [--n-iter 20] [--seed 0] [--mppc-n 100000]
                                    [--faiss-all-max-n 100000] [--threads T] [--builtin]

Data: ``semid_assets.core.data.synthetic.topic_embeddings(n, dim, seed)`` when importable
(``--builtin`` forces the fallback), else a built-in hierarchical gaussian generator
(category -> subcategory -> topic centroids with shrinking spread, plus item noise).

Per n it prints, for every method: points used to train each level, wall seconds of
training, of encoding all n points, and of the whole job, and the reconstruction MSE
(mean over items and dims) and relative MSE (fraction of variance unexplained) on all
n points.

- ``RQKMeans fit_encode``: our tokenizer, fit returning the training codes (how the
  pipeline runs it); ``encode`` is a separate re-encode of all points, so
  ``fit + encode`` as two calls costs fit_encode + encode.
- ``faiss RQ``: ``faiss.ResidualQuantizer(d, levels, log2 K)``, ``max_beam_size = 1``,
  ``cp.niter`` = ours, codes by ``compute_codes`` and MSE by ``decode``; trained on
  the same sample size we use (``256 * K`` points, drawn with the same seed) with
  faiss's default ``train_type`` (progressive-dimension k-means) and with plain
  k-means (``Train_default``), and with plain k-means on all points when
  n <= --faiss-all-max-n.

Then, at each --mppc-n, RQKMeans with max_points_per_centroid 256 vs 1024.

``--threads`` sets faiss's OpenMP threads for every method (default: faiss's, i.e. all
cores). The 1-minute load average is printed with each n: on a shared machine faiss's
threads spin at barriers and timings with more threads than free cores balloon.
Not a test: nothing is asserted.
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

import faiss  # noqa: E402

from semid_assets.core.tokenizers.metrics import level_report  # noqa: E402
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans  # noqa: E402


def hierarchical_gaussians(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_cat, n_sub, n_topic = 20, 10, 10
    cat = rng.standard_normal((n_cat, dim), dtype=np.float32) * np.float32(1.0)
    sub = rng.standard_normal((n_cat * n_sub, dim), dtype=np.float32) * np.float32(0.5)
    topic = rng.standard_normal((n_cat * n_sub * n_topic, dim), dtype=np.float32) * np.float32(0.25)
    a = rng.integers(0, n_cat, n)
    b = a * n_sub + rng.integers(0, n_sub, n)
    c = b * n_topic + rng.integers(0, n_topic, n)
    X = rng.standard_normal((n, dim), dtype=np.float32)
    X *= np.float32(0.2)
    X += cat[a]
    X += sub[b]
    X += topic[c]
    return X


def load_data(n: int, dim: int, seed: int, builtin: bool) -> tuple[np.ndarray, str]:
    if not builtin:
        try:
            from semid_assets.core.data.synthetic import topic_embeddings

            out = topic_embeddings(n, dim, seed)
            X = out[0] if isinstance(out, tuple) else out
            return np.ascontiguousarray(X, dtype=np.float32), "synthetic.topic_embeddings"
        except Exception as exc:  # noqa: BLE001 — any failure means "use the built-in generator"
            print(f"synthetic.topic_embeddings unavailable ({type(exc).__name__}: {exc}); "
                  "using built-in")
    return hierarchical_gaussians(n, dim, seed), "built-in hierarchical gaussians"


def mse_of(X: np.ndarray, X_hat: np.ndarray, total_ss: float) -> tuple[float, float]:
    sse = 0.0
    for s in range(0, X.shape[0], 65536):
        diff = X[s : s + 65536] - X_hat[s : s + 65536]
        sse += float(np.einsum("ij,ij->i", diff, diff).sum(dtype=np.float64))
    return sse / X.size, sse / total_ss


def run_ours(X, args, total_ss, mppc=256, re_encode=True, progressive_dim_steps=10) -> dict:
    # --threads (else faiss's default) is the thread count of every method this bench compares.
    rq = RQKMeans(levels=args.levels, codebook_size=args.K, n_iter=args.n_iter,
                  seed=args.seed, max_points_per_centroid=mppc, progressive_dim_steps=progressive_dim_steps,
                  n_threads=faiss.omp_get_max_threads())
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    codes = rq.fit_encode(X, progress=lambda line: print("   ", line))
    t_fit = time.perf_counter() - t0
    print(f"    fit_encode: {t_fit:.1f} s wall, {time.process_time() - cpu0:.1f} s CPU, "
          f"load average {os.getloadavg()[0]:.1f}")
    t_enc = float("nan")
    if re_encode:
        t0 = time.perf_counter()
        codes2 = rq.encode(X)
        t_enc = time.perf_counter() - t0
        assert np.array_equal(codes, codes2)
    report = level_report(X, codes, rq.codebooks)
    mse, rel = mse_of(X, rq.decode(codes), total_ss)
    return {
        "method": f"RQKMeans mppc={mppc} " + ("progressive" if progressive_dim_steps else "Lloyd"),
        "train_pts": rq.fit_info["levels"][0]["train_points"],
        "fit_s": t_fit, "encode_s": t_enc,
        "total_s": t_fit + (t_enc if re_encode else 0.0),
        "mse": mse, "rel_mse": rel,
        "report": report,
    }


def run_faiss_rq(X, args, total_ss, n_train: int, train_type: str) -> dict:
    n, d = X.shape
    nbits = int(math.log2(args.K))
    rq = faiss.ResidualQuantizer(d, args.levels, nbits)
    rq.max_beam_size = 1
    rq.cp.niter = args.n_iter
    rq.cp.seed = args.seed
    if train_type == "default":
        rq.train_type = faiss.ResidualQuantizer.Train_default
    if n_train < n:
        idx = np.sort(np.random.default_rng(args.seed).choice(n, size=n_train, replace=False))
        xt = X[idx]
    else:
        xt = X
    # faiss would otherwise subsample to its own 256 points per centroid.
    rq.cp.max_points_per_centroid = n_train // args.K + 1
    t0 = time.perf_counter()
    rq.train(xt)
    t_fit = time.perf_counter() - t0
    del xt
    t0 = time.perf_counter()
    codes = rq.compute_codes(X)
    t_enc = time.perf_counter() - t0
    mse, rel = mse_of(X, rq.decode(codes), total_ss)
    return {
        "method": f"faiss RQ beam=1 train_type={train_type}",
        "train_pts": n_train, "fit_s": t_fit, "encode_s": t_enc,
        "total_s": t_fit + t_enc, "mse": mse, "rel_mse": rel,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="*", default=[100_000, 1_000_000],
                   help="sizes for the method comparison (none: only the --mppc-n study)")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--K", type=int, default=256)
    p.add_argument("--n-iter", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mppc-n", type=int, nargs="*", default=[100_000],
                   help="sizes at which to compare max_points_per_centroid 256 vs 1024")
    p.add_argument("--faiss-all-max-n", type=int, default=100_000,
                   help="train faiss RQ on all points only up to this n")
    p.add_argument("--threads", type=int, default=None, help="faiss OpenMP threads")
    p.add_argument("--builtin", action="store_true", help="use the built-in data generator")
    args = p.parse_args(argv)
    if args.threads is not None:
        faiss.omp_set_num_threads(args.threads)
    if args.K & (args.K - 1):
        p.error("--K must be a power of two (faiss RQ takes log2 K bits)")

    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, "
          f"{os.cpu_count()} CPUs; levels={args.levels} K={args.K} n_iter={args.n_iter}")
    rows = []
    for n in sorted(set(args.n) | set(args.mppc_n)):
        t0 = time.perf_counter()
        X, source = load_data(n, args.dim, args.seed, args.builtin)
        print(f"\n== n={n:,} dim={args.dim} from {source} ({time.perf_counter() - t0:.1f} s), "
              f"load average {os.getloadavg()[0]:.1f}")
        centred_ss = 0.0
        mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        for s in range(0, n, 65536):
            diff = X[s : s + 65536] - mean
            centred_ss += float(np.einsum("ij,ij->i", diff, diff).sum(dtype=np.float64))
        results = []
        if n in args.n:
            ours = run_ours(X, args, centred_ss)
            print(ours.pop("report").to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            results.append(ours)
            print("   RQKMeans with plain Lloyd k-means (progressive_dim_steps=0) ...")
            lloyd = run_ours(X, args, centred_ss, progressive_dim_steps=0)
            print(lloyd.pop("report").to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            results.append(lloyd)
            n_train = min(n, 256 * args.K)
            for tt in ("progressive_dim", "default"):
                print(f"   faiss RQ ({tt}) on {n_train:,} points ...")
                results.append(run_faiss_rq(X, args, centred_ss, n_train, tt))
            if n_train < n <= args.faiss_all_max_n:
                print(f"   faiss RQ (default) on all {n:,} points ...")
                results.append(run_faiss_rq(X, args, centred_ss, n, "default"))
        if n in args.mppc_n:
            for mppc in (256, 1024):
                if n in args.n and mppc == 256:
                    continue  # already measured above
                r = run_ours(X, args, centred_ss, mppc=mppc, re_encode=False)
                r.pop("report")
                results.append(r)
        for r in results:
            rows.append({"n": n, **r})
        del X

    table = pd.DataFrame(rows)
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"\npeak RSS {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
