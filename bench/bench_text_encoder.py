"""The text encoder in fp32 and in bf16, side by side: texts per second, vectors, and the SIDs they give.

    python bench/bench_text_encoder.py [--size small|default|N] [--threads 1,2] [--seeds 3]

1. Speed: every text field of the synthetic catalogue of ``--size`` (the demo's own texts) encoded
   by ``TextEncoder(precision=..., threads=...)`` for each precision and thread count, in one
   process, alternating; texts/s and the ratio to fp32 on one thread (the default).
2. Vectors: the cosine of every bf16 pooled vector and token vector to its fp32 one (min, 1st
   percentile, mean).
3. SIDs: the content embedding (the demo's aligner before one serves) of the catalogue from each
   precision's vectors, tokenised by RQ-Kmeans with seeds 0 … ``--seeds``-1. Run-to-run noise is
   what changing the seed does to fp32's SIDs; bf16 is within it when bf16 against fp32 (same seed)
   differs less than two fp32 seeds do. Compared per seed pair: the normalised mutual information
   of the first-level codes, the relative reconstruction error, and the collision rate.

Not a test: nothing is timed against a limit. bf16 is fast only on a CPU with native bf16 dot
products (AVX512-BF16 or AMX); the script prints whether this one has them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semid_assets.core.data.synthetic import generate, spec_for_size  # noqa: E402
from semid_assets.core.features.multimodal import build_multimodal_features, text_columns_of  # noqa: E402
from semid_assets.core.features.text_encoder import TextEncoder, native_bf16  # noqa: E402
from semid_assets.core.features.token_store import TokenStore  # noqa: E402
from semid_assets.core.tokenizers.methods import make_tokenizer  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def catalogue_texts(items) -> list[str]:
    """Every non-blank text of the catalogue, shortest first (as build_multimodal_features orders them)."""
    texts = [t for column in text_columns_of(items) for t in items.column(column).to_pylist() if t and t.strip()]
    return sorted(set(texts), key=len)


def speeds(texts: list[str], threads: list[int], repeats: int) -> dict[tuple[str, int], float]:
    """Best texts/s of each (precision, threads) over ``repeats`` rounds, the settings alternating."""
    best: dict[tuple[str, int], float] = {}
    for _ in range(repeats):
        for precision in PRECISIONS:
            for n in threads:
                encoder = TextEncoder(precision=precision, threads=n)
                encoder.encode(texts[:64])  # loads the model
                started = time.perf_counter()
                encoder.encode(texts)
                rate = len(texts) / (time.perf_counter() - started)
                best[precision, n] = max(best.get((precision, n), 0.0), rate)
    return best


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def vector_agreement(texts: list[str]) -> dict[str, np.ndarray]:
    out = {}
    encoded = {p: TextEncoder(precision=p).encode(texts) for p in PRECISIONS}
    (tok32, pooled32), (tok16, pooled16) = encoded["fp32"], encoded["bf16"]
    out["pooled"] = cosines(pooled16, pooled32)
    out["tokens"] = cosines(np.concatenate(tok16), np.concatenate(tok32))
    return out


def content_vectors(items, precision: str, cache: Path) -> np.ndarray:
    encoder = TextEncoder(precision=precision)
    features, _ = build_multimodal_features(items, encoder, TokenStore(cache, encoder.name))
    return features.content_embedding()


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised mutual information of two labelings (arithmetic mean of the entropies)."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1)
    joint /= joint.sum()
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = (joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz])).sum()
    ha, hb = -(pa[pa > 0] * np.log(pa[pa > 0])).sum(), -(pb[pb > 0] * np.log(pb[pb > 0])).sum()
    return float(2 * mi / (ha + hb))


def sid_figures(vectors: np.ndarray, seed: int) -> dict:
    tokenizer = make_tokenizer("rq_kmeans", seed=seed)
    codes = tokenizer.fit_encode(vectors)
    error = ((tokenizer.decode(codes) - vectors) ** 2).sum() / (vectors ** 2).sum()
    collisions = 1 - len(np.unique(codes, axis=0)) / len(codes)
    return {"codes": codes, "relative_error": float(error), "collision_rate": float(collisions)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="small", help="synthetic catalogue size: tiny, small, default or a count")
    parser.add_argument("--threads", default="1,2", help="thread counts to time")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*precision='bf16'.*")
    platform = generate(spec_for_size(args.size))
    items = platform.items_as_of(platform.months[-1])
    texts = catalogue_texts(items)
    print(f"{items.num_rows:,} items, {len(texts):,} distinct texts; native bf16 on this CPU: {native_bf16()}")

    threads = [int(n) for n in args.threads.split(",")]
    best = speeds(texts, threads, args.repeats)
    base = best["fp32", 1]
    print("\n| precision | threads | texts/s | × fp32 on 1 thread |\n| --- | --- | --- | --- |")
    for (precision, n), rate in best.items():
        print(f"| {precision} | {n} | {rate:,.0f} | {rate / base:.2f} |")

    agreement = vector_agreement(texts)
    print("\n| bf16 vs fp32 cosine | min | 1st percentile | mean |\n| --- | --- | --- | --- |")
    for name, cos in agreement.items():
        print(f"| {name} | {cos.min():.5f} | {np.percentile(cos, 1):.5f} | {cos.mean():.6f} |")

    with tempfile.TemporaryDirectory() as cache:
        vectors = {p: content_vectors(items, p, Path(cache)) for p in PRECISIONS}
    runs = {(p, s): sid_figures(vectors[p], s) for p in PRECISIONS for s in range(args.seeds)}
    print("\n| compared | level-1 NMI | same SID | relative error | collision rate |\n| --- | --- | --- | --- | --- |")
    pairs = [(("fp32", s), ("fp32", t)) for s in range(args.seeds) for t in range(s + 1, args.seeds)]
    pairs += [(("fp32", s), ("bf16", s)) for s in range(args.seeds)]
    for a, b in pairs:
        ca, cb = runs[a]["codes"], runs[b]["codes"]
        print(f"| {a[0]} seed {a[1]} vs {b[0]} seed {b[1]} | {nmi(ca[:, 0], cb[:, 0]):.4f} | "
              f"{(ca == cb).all(1).mean():.3f} | {runs[a]['relative_error']:.4f} vs {runs[b]['relative_error']:.4f} | "
              f"{runs[a]['collision_rate']:.4f} vs {runs[b]['collision_rate']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
