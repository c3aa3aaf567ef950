"""The tokenizer methods a ``method`` partition can name, built from one set of options.

Every method is a class with ``fit``/``fit_encode``/``encode``/``decode``, a
``codebooks`` array [L, K, d_q] and ``to_arrays``/``from_arrays``. Where they differ, the
functions here say how to treat each one:

- options: one flat set of named options (the tokenizer config) feeds every method;
  each takes the ones its constructor names (``make_tokenizer``).
- side inputs: LETTER also trains on collaborative embeddings (``needs_collaborative``).
- the quantised space: RQ-Kmeans quantises the embedding itself, RQ-VAE / LETTER the
  encoder's latent (``quantised_space``), which is where beam search and collision
  re-assignment look for codes.
- the catalogue's own codes: balanced RQ-Kmeans applies its capacity over a whole
  catalogue (``encode_catalogue``); the others encode each item independently.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd

from semid_assets.core.tokenizers.balanced_kmeans import RQKMeansBalanced
from semid_assets.core.tokenizers.letter import LETTER
from semid_assets.core.tokenizers.metrics import level_report, prefix_group_ids
from semid_assets.core.tokenizers.residual import last_level_candidates
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans
from semid_assets.core.tokenizers.rq_vae import RQVAE

METHODS: dict[str, type] = {
    "rq_kmeans": RQKMeans,
    "rq_kmeans_balanced": RQKMeansBalanced,
    "rq_vae": RQVAE,
    "letter": LETTER,
}


def _accepted(cls: type) -> set[str]:
    names = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
    return names


def method_class(method: str) -> type:
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(f"unknown tokenizer method {method!r}; known: {', '.join(METHODS)}") from None


def make_tokenizer(method: str, **options: Any):
    """An unfitted tokenizer of ``method`` from the options its constructor takes (others are ignored:
    one config serves every method, e.g. ``epochs`` means nothing to RQ-Kmeans)."""
    cls = method_class(method)
    accepted = _accepted(cls)
    return cls(**{k: v for k, v in options.items() if k in accepted})


def needs_collaborative(method: str) -> bool:
    return issubclass(method_class(method), LETTER)


def quantised_space(tokenizer, X: np.ndarray) -> np.ndarray:
    """The vectors the codebooks quantise: the encoder latent for RQ-VAE / LETTER, else ``X``."""
    return tokenizer.embed(X) if isinstance(tokenizer, RQVAE) else np.asarray(X, dtype=np.float32)


def candidates_for(tokenizer, X: np.ndarray, codes: np.ndarray, k: int = 16) -> np.ndarray:
    """Each item's ``k`` nearest last-level codes given its own first L - 1 codes."""
    return last_level_candidates(quantised_space(tokenizer, X), tokenizer.codebooks, codes, k)


def tokenizer_level_report(tokenizer, X: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
    """``metrics.level_report`` for any method: per level, MSE of the reconstruction from the first
    l codes in the input space (RQ-VAE / LETTER: the decoder's output), utilisation, entropy,
    collisions of the prefix."""
    if not isinstance(tokenizer, RQVAE):
        return level_report(X, codes, tokenizer.codebooks)
    X = np.asarray(X, dtype=np.float32)
    n, d = X.shape
    K = tokenizer.codebook_size
    centred = X - X.mean(axis=0, dtype=np.float64).astype(np.float32)
    total_ss = float(np.einsum("ij,ij->", centred, centred, dtype=np.float64))
    groups = prefix_group_ids(codes)
    rows = []
    for lvl in range(codes.shape[1]):
        diff = X - tokenizer.decode_prefix(codes, lvl + 1)
        sse = float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
        counts = np.bincount(codes[:, lvl], minlength=K)
        p = counts[counts > 0] / n
        entropy = max(float(-(p * np.log(p)).sum()), 0.0)
        group_sizes = np.bincount(groups[lvl])
        rows.append({"level": lvl + 1, "mse": sse / (n * d), "relative_mse": sse / total_ss if total_ss else float("nan"),
                     "utilisation": float(np.count_nonzero(counts)) / K, "entropy": entropy,
                     "entropy_norm": entropy / np.log(K), "collision_rate": 1.0 - len(group_sizes) / n,
                     "largest_group": int(group_sizes.max())})
    return pd.DataFrame(rows)
