"""LETTER-style tokenizer: RQ-VAE plus collaborative and diversity regularisation.

LETTER (Wang et al., 2024) adds two losses to RQ-VAE training (REFERENCE.md §3):

- collaborative: InfoNCE between an item's quantised latent ``q_i = sum_l C_l[c_l]`` and
  its collaborative embedding ``h_i`` over the batch, so items users co-consume get
  nearby codes. Our ``h`` is BPR matrix factorisation on the month's positives
  (``core/collaborative/bpr.py``). The two spaces differ in dimension, so ``q`` goes through a learned
  linear head; both sides are L2-normalised and divided by ``temperature`` (cosine
  InfoNCE: the raw dot product of the paper is scale-sensitive, and our latents and BPR
  factors have unrelated norms). Items without a collaborative embedding (nobody liked
  them yet) are left out of this term.
- diversity: at the start of every epoch each level's K code vectors are clustered into
  ``diversity_clusters`` equal-size groups (constrained k-means: the balanced k-means of
  ``core/tokenizers/balanced_kmeans.py``); for the code an item chose, a random other code of the
  same group is the positive and all other codes of the level the negatives. It spreads
  items over codes instead of letting a few popular codes absorb them.

The head is training-only: encoding and decoding are RQ-VAE's, so a LETTER version in
the registry needs no collaborative data to tokenize new items. For the same reason a
warm start (``fit(X, collaborative=H, warm_start=WarmStart(previous))``, anchored retraining)
copies encoder, decoder and codebooks but trains a fresh head against this month's ``H``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from semid_assets.core.tokenizers.balanced_kmeans import RQKMeansBalanced
from semid_assets.core.tokenizers.rq_vae import RQVAE
from semid_assets.core.tokenizers.vae_options import LETTEROptions

__all__ = ["LETTER", "LETTEROptions"]


class LETTER(RQVAE):
    """RQ-VAE with LETTER's collaborative and diversity losses.

    ``fit(X, collaborative=H)`` takes ``H`` float [n, h_dim] aligned with ``X``; rows of
    zeros mark items without a collaborative embedding. ``fit_info`` adds ``items_with_cf`` and
    ``cf_dim``.
    """

    method = "letter"
    Options = LETTEROptions
    side_inputs = ("collaborative",)

    def __init__(self, options: LETTEROptions | None = None, /, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self._cf: torch.Tensor | None = None
        self._has_cf: torch.Tensor | None = None
        self._head: nn.Linear | None = None
        self._groups: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._side: dict[str, int] = {}

    def _prepare_side(self, X: np.ndarray, collaborative: Any = None, **side: Any) -> None:
        H = np.asarray(collaborative, dtype=np.float32)
        if H.ndim != 2 or H.shape[0] != X.shape[0]:
            raise ValueError(f"collaborative must be [n_items, dim] with {X.shape[0]} rows, got {H.shape}")
        if not np.isfinite(H).all():
            raise ValueError("collaborative embeddings contain NaN or inf")
        norms = np.linalg.norm(H, axis=1)
        self._has_cf = torch.from_numpy(norms > 0)
        self._cf = torch.from_numpy(H / np.maximum(norms, 1e-12)[:, None])
        self._side = {"items_with_cf": int((norms > 0).sum()), "cf_dim": int(H.shape[1])}

    def _side_info(self) -> dict[str, Any]:
        return dict(self._side)

    def _extra_parameters(self) -> list[nn.Parameter]:
        self._recluster_every = max(1, self._fit_epochs // 10)
        torch.manual_seed(self.options.seed + 7)
        self._head = nn.Linear(self.options.latent_dim, int(self._cf.shape[1]), bias=False)
        return list(self._head.parameters())

    def _on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        # Code vectors drift slowly: re-cluster at most ~10 times a fit (a small catalogue may
        # train hundreds of one-batch epochs, see RQVAE's min_steps).
        if self.options.diversity_weight == 0 or epoch % self._recluster_every:
            return
        books = self.codebooks
        K = self.codebook_size
        groups = max(1, min(self.options.diversity_clusters, K // 2))
        self._groups = []
        for lvl in range(self.levels):
            clusterer = RQKMeansBalanced(levels=1, codebook_size=groups, n_iter=10,
                                         seed=int(rng.integers(0, 2**31 - 1)), n_threads=self.options.n_threads)
            label = clusterer.fit_encode(books[lvl])[:, 0].astype(np.int64)
            members = np.argsort(label, kind="stable")
            sizes = np.bincount(label, minlength=groups)
            starts = np.r_[0, np.cumsum(sizes)[:-1]]
            position = np.empty(K, dtype=np.int64)
            position[members] = np.arange(K) - starts[label[members]]
            self._groups.append(tuple(torch.from_numpy(a) for a in (label, members, starts, sizes, position)))

    def _diversity(self, codes: list[torch.Tensor]) -> torch.Tensor:
        total = self.net.codebooks.new_zeros(())
        for lvl, c in enumerate(codes):
            label, members, starts, sizes, position = self._groups[lvl]
            g = label[c]
            ok = sizes[g] > 1
            if not bool(ok.any()):
                continue
            c, g = c[ok], g[ok]
            # A uniform other member of the anchor's group: draw among size-1 slots, skip the anchor's own.
            draw = (torch.rand(len(c)) * (sizes[g] - 1).float()).long()
            draw = draw + (draw >= position[c]).long()
            positive = members[starts[g] + draw]
            C = self.net.codebooks[lvl]
            logits = (torch.index_select(C, 0, c) @ C.T) / self.options.temperature  # not C[c]: see RQVAE._losses
            logits = logits.masked_fill(torch.nn.functional.one_hot(c, C.shape[0]).bool(), float("-inf"))
            total = total + torch.nn.functional.cross_entropy(logits, positive)
        return total

    def _extra_loss(self, batch: torch.Tensor, z_q: torch.Tensor, codes: list[torch.Tensor],
                    epoch: int) -> dict[str, torch.Tensor]:
        options = self.options
        terms = {}
        if options.cf_weight > 0:
            rows = batch[self._has_cf[batch]]
            keep = self._has_cf[batch]
            if len(rows) >= 2:
                kept = torch.index_select(z_q, 0, torch.nonzero(keep).flatten())  # not z_q[keep]: see RQVAE._losses
                p = torch.nn.functional.normalize(self._head(kept), dim=1)
                logits = p @ self._cf[rows].T / options.temperature
                terms["cf"] = options.cf_weight * torch.nn.functional.cross_entropy(
                    logits, torch.arange(len(rows)))
        if options.diversity_weight > 0:
            terms["diversity"] = options.diversity_weight * self._diversity(codes)
        return terms
