"""Residual k-means (RQ-Kmeans) tokenizer: embeddings -> coarse-to-fine code tuples.

This is the tokenizer of OneRec: level 1 clusters the embeddings, every later level
clusters what the previous levels left unexplained::

    R_1 = X
    C_l = kmeans(R_l, K)                    # codebook of level l, K x d
    s_l = argmin_k ||R_l - C_l[k]||         # code of level l
    R_{l+1} = R_l - C_l[s_l]

so ``decode(codes) = sum_l C_l[s_l]`` approximates ``X`` better with every level and the
tuple ``(s_1, ..., s_L)`` reads from coarse (which big cluster) to fine.

Each level's k-means is a ``faiss.Kmeans`` on a seeded sample of the residuals;
assignment is an exact ``IndexFlatL2`` search over every point. The level-by-level fit,
the warm start and the artefact are the k-means family's (``kmeans_family.py``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from semid_assets.core.tokenizers.base import store_checked
from semid_assets.core.tokenizers.kmeans_family import KMeansOptions, ResidualKMeans
from semid_assets.core.tokenizers.residual import assign_and_subtract
from semid_assets.core.validation import check_bool, check_int

__all__ = ["RQKMeans", "RQKMeansOptions"]

# faiss prints a C-level warning below 39 points per centroid; we warn from Python
# instead so the message reaches ``warnings`` filters and logs rather than raw stderr.
_MIN_POINTS_PER_CENTROID = 39


@dataclass(frozen=True, kw_only=True)
class RQKMeansOptions(KMeansOptions):
    """Options of RQ-Kmeans (``rq_kmeans``)."""

    n_redo: int = 1
    """k-means restarts per level; faiss keeps the run with the lowest objective. A warm start
    runs once (restarts from the same centroids would repeat the same run)."""
    progressive_dim_steps: int = 10
    """Train each level with faiss's progressive-dimension k-means (the training of
    ``faiss.ResidualQuantizer``): k-means first runs on the top PCA dimensions of the residuals
    and warm-starts in ever more of them, in this many steps up to the full dimension. 0 runs
    plain Lloyd k-means from random points. After a level or two the residuals are close to
    orthogonal in high dimension, so every point is nearest to whichever initial centroid has
    the smallest norm; plain Lloyd can then let that centroid absorb the others' points until
    the whole level collapses into one code, which progressive k-means avoids, spreading codes
    more evenly at a slower fit (encoding is unchanged). A level with fewer training points
    than dimensions trains with plain Lloyd (faiss's PCA cannot rank more dimensions than it has
    points), and so does a warm start (it starts from given centroids)."""
    verbose: bool = False
    """Let faiss print its per-iteration k-means log."""

    def __post_init__(self) -> None:
        super().__post_init__()
        store_checked(self, n_redo=check_int("n_redo", self.n_redo, 1),
                      progressive_dim_steps=check_int("progressive_dim_steps", self.progressive_dim_steps, 0),
                      verbose=check_bool("verbose", self.verbose))


class RQKMeans(ResidualKMeans):
    """Residual k-means tokenizer (OneRec's RQ-Kmeans) on faiss.

    ``fit_info["levels"]`` adds ``kmeans_objective`` per level: faiss's final sum of squared
    distances on the training sample.

    A warm start (``WarmStart``, ``Anchoring.CODEBOOKS``) runs every level's Lloyd iterations
    from that level's given centroids — plain Lloyd, since progressive-dimension k-means cannot
    start from given centroids and a trained codebook does not have the random-start collapse
    progressive k-means guards against. Code ``k`` then tends to stay near the earlier code
    ``k``; ``core/tokenizers/anchoring.py`` makes the label correspondence exact. Every
    iteration lets border items drift to another code, so few iterations keep more IDs.

    Example::

        rq = RQKMeans(levels=3, codebook_size=256, seed=0)
        codes = rq.fit_encode(X)          # int32 [n, 3]
        X_hat = rq.decode(codes)          # float32 [n, dim]
    """

    method = "rq_kmeans"
    Options = RQKMeansOptions
    artifact_format = "semid.RQKMeans"

    def _check_training_size(self, n_train: int) -> None:
        K = self.codebook_size
        if n_train < _MIN_POINTS_PER_CENTROID * K:
            warnings.warn(
                f"RQKMeans trains {K} centroids per level on {n_train} points "
                f"(< {_MIN_POINTS_PER_CENTROID} per centroid): codebooks will be noisy; "
                "consider a smaller codebook_size",
                UserWarning,
                stacklevel=4,
            )

    def _train_level(self, sample: np.ndarray, rng: np.random.Generator, init: np.ndarray | None,
                     iterations: int) -> tuple[np.ndarray, dict[str, Any]]:
        # Points an earlier level already reconstructed exactly (singleton codes) sit at
        # the origin; picked as an initial centroid, the origin is every near-orthogonal
        # residual's nearest point and the level collapses. They carry nothing to learn.
        exact = ~np.any(sample, axis=1)
        if exact.any() and int((~exact).sum()) >= self.codebook_size:
            sample = sample[~exact]
        # A fresh faiss seed per level: faiss's ResidualQuantizer reuses one seed, so on
        # a fixed training set every level starts from the same points, whose residuals
        # the previous level already shrank, and its level 2 then barely helps.
        faiss_seed = int(rng.integers(0, 2**31 - 1))
        centroids, objective = self._kmeans(sample, faiss_seed, init, iterations)
        return centroids, {"train_points": int(len(sample)), "kmeans_objective": objective}

    def _assign_level(self, residual: np.ndarray, centroids: np.ndarray, out_codes: np.ndarray) -> dict[str, Any]:
        return {"sse": assign_and_subtract(residual, centroids, out_codes)}

    def _kmeans(self, sample: np.ndarray, faiss_seed: int, init: np.ndarray | None,
                iterations: int) -> tuple[np.ndarray, float]:
        n_train, d = sample.shape
        K = self.codebook_size
        options = self.options
        # Progressive k-means ranks dimensions by a PCA of the sample, which faiss cannot fit
        # from fewer points than dimensions: a catalogue that small trains with plain Lloyd.
        progressive = options.progressive_dim_steps and init is None and n_train >= d
        kmeans = faiss.Kmeans(
            d,
            K,
            niter=iterations,
            # Restarts from the same given centroids would only repeat the same run.
            nredo=options.n_redo if init is None else 1,
            seed=faiss_seed,
            verbose=options.verbose,
            # We sampled already (reproducibly, with numpy): stop faiss from subsampling
            # again, and from printing its too-few-points warning (we warn in Python).
            max_points_per_centroid=n_train // K + 1,
            min_points_per_centroid=1,
            # faiss switches to progressive clustering whenever the keyword is present.
            **({"progressive_dim_steps": options.progressive_dim_steps} if progressive else {}),
        )
        objective = kmeans.train(sample, init_centroids=init)
        return np.ascontiguousarray(kmeans.centroids, dtype=np.float32), float(objective)
