"""The data-parallel stages on the local engine and on a local Ray cluster, side by side.

    python bench/bench_engine.py [--workers 2] [--scale 1.0] [--repeats 2]

For each stage (text encoding, aligner inference, SID encoding, stability kNN) on one
synthetic input: the plain library call, the local engine with 1 and with ``--workers``
threads, and the Ray engine with ``--workers`` single-threaded workers. Every output is
checked bit for bit against the plain call. Prints wall seconds (best of ``--repeats``,
after one warm-up run that loads models in the Ray workers) and the speed-up of Ray over
the local engine. Not a test: nothing is timed against a limit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semid_assets.core import fanout  # noqa: E402
from semid_assets.core.alignment.aligner import Aligner  # noqa: E402
from semid_assets.core.alignment.qformer import AlignerNet, QFormerConfig  # noqa: E402
from semid_assets.core.engine import LocalEngine  # noqa: E402
from semid_assets.core.evaluation.stability import knn_overlap  # noqa: E402
from semid_assets.core.features.multimodal import MultimodalFeatures  # noqa: E402
from semid_assets.core.features.text_encoder import TextEncoder  # noqa: E402
from semid_assets.core.threads import faiss_threads, torch_threads  # noqa: E402
from semid_assets.core.tokenizers.residual import encode_catalogue  # noqa: E402
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans  # noqa: E402
from semid_assets.ray_engine import RayEngine, connect  # noqa: E402

WORDS = ("red blue green small large wooden metal cotton summer winter classic modern sport travel kitchen garden "
         "lamp chair table shirt jacket shoe bag watch phone cable speaker book novel guide album film").split()


def texts(n: int, rng: np.random.Generator) -> list[str]:
    return [f"item {i} " + " ".join(rng.choice(WORDS, size=rng.integers(4, 30))) for i in range(n)]


def features(n: int, rng: np.random.Generator) -> MultimodalFeatures:
    counts = rng.integers(1, 5, size=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    tokens = rng.normal(size=(offsets[-1], 256)).astype(np.float32)
    pooled = rng.normal(size=(n, 256)).astype(np.float32)
    return MultimodalFeatures(item_ids=np.arange(n), text_columns=[], text_keys=np.zeros((n, 0), "<U64"),
                              modality_names=["content"], pooled={"content": pooled},
                              dense_tokens={"content": (tokens, offsets)}, store_root="/unused", encoder_name="none")


def stages(scale: float, rng: np.random.Generator) -> dict:
    """name -> (plain call, chunked call on an engine)."""
    encoder = TextEncoder()
    some_texts = texts(int(3000 * scale), rng)
    lengths = [len(t) for t in encoder.tokenize(some_texts)]
    some_texts = [t for _, t in sorted(zip(lengths, some_texts))]  # as build_multimodal_features sorts them
    torch.manual_seed(0)
    aligner = Aligner.from_net(AlignerNet(QFormerConfig(modalities=("content",), modality_dims=(256,),
                                                        max_tokens=(4,))), np.zeros(0, np.int64), {})
    items = features(int(32768 * scale), rng)
    X = rng.normal(size=(int(262144 * scale), 256)).astype(np.float32)
    with faiss_threads(2):
        tokenizer = RQKMeans(levels=3, codebook_size=1024, n_iter=10, seed=0, n_threads=1).fit(X[:32768])
    emb_a = rng.normal(size=(int(100000 * scale), 128)).astype(np.float32)
    emb_b = emb_a + rng.normal(scale=0.5, size=emb_a.shape).astype(np.float32)
    sample = int(8000 * scale)
    return {
        f"text encoding ({len(some_texts)} texts)": (
            lambda: encoder.encode(some_texts)[1],
            lambda engine: fanout.encode_texts(engine, encoder, some_texts, chunk_rows=512)[1]),
        f"aligner inference ({items.n_items} items)": (
            lambda: aligner.embed(items, threads=torch.get_num_threads()),
            lambda engine: fanout.embed_items(engine, aligner, items, chunk_rows=4096)),
        f"SID encoding, RQ-Kmeans 3x1024 ({len(X)} x 256)": (
            lambda: encode_catalogue(tokenizer, X),
            lambda engine: fanout.encode_catalogue(engine, tokenizer, X, chunk_rows=65536)),
        f"stability kNN ({sample} queries over {len(emb_a)} items)": (
            lambda: np.array([knn_overlap(emb_a, emb_b, sample=sample)]),
            lambda engine: np.array([fanout.knn_overlap(engine, emb_a, emb_b, sample=sample, chunk_rows=1000)])),
    }


def best_of(call, repeats: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - started)
    return min(times), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", default="", help="run only the stages whose name contains this text")
    args = parser.parse_args()
    started = time.perf_counter()
    connect(None, num_cpus=args.workers)
    print(f"Ray cluster of {args.workers} CPUs up in {time.perf_counter() - started:.1f} s")
    engines = {"local, 1 thread": LocalEngine(threads=1), f"local, {args.workers} threads": LocalEngine(args.workers),
               f"ray, {args.workers} x 1 thread": RayEngine(threads=1)}
    print("| stage | plain call, 1 thread (s) | " + " | ".join(f"{n} (s)" for n in engines)
          + " | ray vs local 1 thread | ray vs local 2 threads |")
    print("|---" * (len(engines) + 4) + "|")
    for name, (plain, chunked) in stages(args.scale, np.random.default_rng(0)).items():
        if args.only not in name:
            continue
        with torch_threads(1), faiss_threads(1):
            seconds_plain, expected = best_of(plain, args.repeats)
        seconds = {}
        for engine_name, engine in engines.items():
            chunked(engine)  # warm-up: loads the model in every Ray worker
            seconds[engine_name], got = best_of(lambda: chunked(engine), args.repeats)
            if got.dtype != expected.dtype or got.tobytes() != expected.tobytes():
                raise AssertionError(f"{name}: {engine_name} differs from the plain call")
        local1, local2, ray = seconds.values()
        print(f"| {name} | {seconds_plain:.2f} | " + " | ".join(f"{s:.2f}" for s in seconds.values())
              + f" | {local1 / ray:.2f}x | {local2 / ray:.2f}x |")
    import ray as ray_module

    ray_module.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
