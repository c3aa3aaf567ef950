"""Benchmark the tokenizer family beside faiss's ResidualQuantizer.

    python bench/bench_tokenizers.py [--n 100000 1000000] [--dim 256] [--levels 3] [--K 256]
                                     [--beam 8] [--vae-max-n 100000] [--vae-epochs 10]
                                     [--target-balanced] [--target-vae] [--threads T]

Data: ``synthetic.topic_embeddings(n, dim, seed)`` (the platform's topic structure);
LETTER's collaborative embeddings are a noisy random projection of each item's
fine-topic one-hot (a stand-in for BPR factors, which need interactions).

Per n and method it prints: fit seconds, encode seconds (every item, nearest codes),
MSE and relative MSE (fraction of variance unexplained) after all levels, utilisation
per level, MSE with beam 1 vs ``--beam``, and for the k-means methods the encode
throughput as a fraction of this machine's float32 matrix-multiply rate, measured in the
same run on the shape encoding multiplies ([8192, dim] x [dim, K]); encode costs
``2 n K dim L`` flops. RQ-VAE / LETTER run only up to ``--vae-max-n``.

``--target-balanced``: balanced RQ-Kmeans on 1M x dim with 3 x 1024 codes (issue target
<= 3 min on 2 cores). ``--target-vae``: RQ-VAE on 100k x dim for 50 epochs (target <= 5 min).
Not a test: nothing is asserted. The 1-minute load average is printed: on a shared
machine the timings include other processes' contention.
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

from semid_assets.core.tokenizers.base import Anchoring  # noqa: E402
from semid_assets.core.tokenizers.methods import make_tokenizer, tokenizer_class  # noqa: E402
from semid_assets.core.data.synthetic import topic_embeddings  # noqa: E402


def matmul_gflops(dim: int, K: int, seconds: float = 3.0) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8192, dim), dtype=np.float32)
    b = rng.standard_normal((dim, K), dtype=np.float32)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2.0 * 8192 * dim * K * reps / (time.perf_counter() - t0) / 1e9


def mse_of(X: np.ndarray, X_hat: np.ndarray) -> float:
    sse = 0.0
    for s in range(0, len(X), 65536):
        d = X[s : s + 65536] - X_hat[s : s + 65536]
        sse += float(np.einsum("ij,ij->", d, d, dtype=np.float64))
    return sse / X.size


def utilisation(codes: np.ndarray, K: int) -> str:
    return " / ".join(f"{len(np.unique(codes[:, l])) / K:.3f}" for l in range(codes.shape[1]))


def collaborative_stand_in(labels: np.ndarray, dim: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((int(labels.max()) + 1, dim)).astype(np.float32)
    return topics[labels] + 0.3 * rng.standard_normal((len(labels), dim), dtype=np.float32)


def run_method(method: str, X, labels, args, total_var: float, gflops: float, **options) -> dict:
    threads = args.threads
    if threads is None:  # faiss's own default for the k-means family, one thread for the torch models
        threads = 1 if tokenizer_class(method).anchoring is Anchoring.WHOLE_MODEL else faiss.omp_get_max_threads()
    model = make_tokenizer(method, levels=args.levels, codebook_size=args.K, seed=args.seed, n_threads=threads,
                           **options)
    side = {"collaborative": collaborative_stand_in(labels)} if "collaborative" in model.side_inputs else {}
    t0 = time.perf_counter()
    codes = model.fit_encode(X, **side)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    enc = model.encode(X)
    enc_s = time.perf_counter() - t0
    mse = mse_of(X, model.decode(enc))
    beam_mse = mse_of(X, model.decode(model.encode(X, beam_size=args.beam)))
    row = {"method": method, "fit_s": fit_s, "encode_s": enc_s, "mse": mse, "rel_mse": mse / total_var,
           f"mse_beam{args.beam}": beam_mse, "utilisation": utilisation(codes, args.K),
           "largest_l1": int(np.bincount(codes[:, 0]).max())}
    if method.startswith("rq_kmeans"):
        flops = 2.0 * X.shape[0] * args.K * X.shape[1] * args.levels
        row["encode_vs_matmul"] = flops / enc_s / 1e9 / gflops
    print(f"   {method}: fit {fit_s:.1f} s, encode {enc_s:.2f} s, MSE {mse:.6g} (beam {args.beam}: "
          f"{beam_mse:.6g}), utilisation {row['utilisation']}, load {os.getloadavg()[0]:.1f}", flush=True)
    return row


def run_faiss_rq(X, args, total_var: float) -> dict:
    n, d = X.shape
    rq = faiss.ResidualQuantizer(d, args.levels, int(math.log2(args.K)))
    rq.max_beam_size = 1
    rq.cp.niter = 20
    rq.cp.seed = args.seed
    n_train = min(n, 256 * args.K)
    xt = X[np.sort(np.random.default_rng(args.seed).choice(n, n_train, replace=False))] if n_train < n else X
    rq.cp.max_points_per_centroid = n_train // args.K + 1
    t0 = time.perf_counter()
    rq.train(xt)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    packed = rq.compute_codes(X)
    enc_s = time.perf_counter() - t0
    mse = mse_of(X, rq.decode(packed))
    rq.max_beam_size = args.beam
    beam_mse = mse_of(X, rq.decode(rq.compute_codes(X)))
    print(f"   faiss RQ: fit {fit_s:.1f} s, encode {enc_s:.2f} s, MSE {mse:.6g} (beam {args.beam}: {beam_mse:.6g})",
          flush=True)
    return {"method": "faiss ResidualQuantizer", "fit_s": fit_s, "encode_s": enc_s, "mse": mse,
            "rel_mse": mse / total_var, f"mse_beam{args.beam}": beam_mse}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="*", default=[100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--K", type=int, default=256)
    p.add_argument("--beam", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae-max-n", type=int, default=100_000)
    p.add_argument("--vae-epochs", type=int, default=10)
    p.add_argument("--methods", nargs="*", default=["rq_kmeans", "rq_kmeans_balanced", "faiss", "rq_vae", "letter"])
    p.add_argument("--target-balanced", action="store_true")
    p.add_argument("--target-vae", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="faiss / torch threads (default: faiss all, torch 1)")
    args = p.parse_args(argv)
    if args.threads is not None:
        faiss.omp_set_num_threads(args.threads)
    gflops = matmul_gflops(args.dim, args.K)
    print(f"faiss {faiss.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; float32 matmul "
          f"[8192, {args.dim}] x [{args.dim}, {args.K}]: {gflops:.1f} GFLOP/s", flush=True)
    rows = []
    for n in args.n:
        X, labels = topic_embeddings(n, args.dim, args.seed)
        total_var = float(((X - X.mean(0)) ** 2).mean(dtype=np.float64))
        print(f"\n== n={n:,} dim={args.dim}, {args.levels} x {args.K}", flush=True)
        for method in args.methods:
            if method == "faiss":
                rows.append({"n": n, **run_faiss_rq(X, args, total_var)})
            elif method in ("rq_vae", "letter"):
                if n <= args.vae_max_n:
                    rows.append({"n": n, **run_method(method, X, labels, args, total_var, gflops,
                                                      epochs=args.vae_epochs)})
            else:
                rows.append({"n": n, **run_method(method, X, labels, args, total_var, gflops)})
        del X
    if args.target_balanced:
        X, labels = topic_embeddings(1_000_000, args.dim, args.seed)
        total_var = float(((X - X.mean(0)) ** 2).mean(dtype=np.float64))
        print(f"\n== target: balanced RQ-Kmeans, 1M x {args.dim}, 3 x 1024 codes", flush=True)
        target = argparse.Namespace(**{**vars(args), "K": 1024, "levels": 3})
        rows.append({"n": 1_000_000, **run_method("rq_kmeans_balanced", X, labels, target, total_var,
                                                  matmul_gflops(args.dim, 1024)), "method": "balanced 3x1024"})
        del X
    if args.target_vae:
        X, labels = topic_embeddings(100_000, args.dim, args.seed)
        total_var = float(((X - X.mean(0)) ** 2).mean(dtype=np.float64))
        print(f"\n== target: RQ-VAE, 100k x {args.dim}, 50 epochs", flush=True)
        rows.append({"n": 100_000, **run_method("rq_vae", X, labels, args, total_var, gflops, epochs=50),
                     "method": "rq_vae 50 epochs"})
    table = pd.DataFrame(rows)
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB")


if __name__ == "__main__":
    main()
