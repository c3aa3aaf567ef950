"""RQ-VAE tokenizer: encoder -> residual quantisation -> decoder, trained end to end.

The tokenizer of TIGER and of Google's "Better Generalization with Semantic IDs"::

    z   = E(x)                                   # MLP encoder, latent_dim
    r_1 = z;  c_l = argmin_k ||r_l - C_l[k]||;  r_{l+1} = r_l - C_l[c_l]
    q   = sum_l C_l[c_l];   x_hat = D(z + sg[q - z])     # straight-through
    loss = ||x - x_hat||^2 + sum_l ( ||sg[r_l] - C_l[c_l]||^2 + beta ||r_l - sg[C_l[c_l]]||^2 )

Codebooks start from residual k-means on the latents of the first batches (an untrained
encoder's latents; k-means there beats random codes, which mostly never get used).
Codebook collapse is fought as in the Google paper: after every step, a code that no
item of the last ``dead_code_window`` steps chose is moved onto the residual (at that
level) of a random item of the batch, so it starts where data is.

A fit can warm-start from an earlier fitted version of the same shape
(``warm_start=WarmStart(previous)``, ``Anchoring.WHOLE_MODEL``):
encoder, decoder and codebooks are copied and training continues from them instead of
from a fresh encoder and its k-means codebooks — what anchored retraining
(``core/tokenizers/anchoring.py``) uses to keep codes stable across versions.

Inputs are centred and divided by one scalar (their root-mean-square deviation) inside
the model, so the loss terms have unit scale whatever the embedding norm; ``decode``
undoes it. The Google setting is ``levels=8, codebook_size=2048, latent_dim=256,
hidden_dims=()`` (one linear layer each way).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from semid_assets.core.tokenizers.base import Anchoring, Progress, Tokenizer, WarmStart
from semid_assets.core.tokenizers.metrics import decoded_level_report, decoded_relative_mse
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans
from semid_assets.core.tokenizers.vae_options import RQVAEOptions

__all__ = ["RQVAE", "RQVAEOptions"]

_ENCODE_BATCH = 8192


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _Net(nn.Module):
    def __init__(self, dim: int, hidden_dims: list[int], latent_dim: int, levels: int, K: int):
        super().__init__()
        self.encoder = _mlp([dim, *hidden_dims, latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden_dims), dim])
        self.codebooks = nn.Parameter(torch.zeros(levels, K, latent_dim))


def _rms_deviation(X: np.ndarray, mean: np.ndarray) -> float:
    """The root-mean-square deviation of ``X`` from ``mean`` (1.0 when it is 0): the model's input scale.

    Squared in place, so one catalogue-sized temporary, not two; the float64 mean is taken over the
    same float32 squares as ``np.mean(np.square(X - mean))``, so the scale is the same bit for bit."""
    squares = np.subtract(X, mean)
    np.square(squares, out=squares)
    centred_ms = float(np.mean(squares, dtype=np.float64))
    return float(math.sqrt(centred_ms)) if centred_ms > 0 else 1.0


def _nearest(r: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    # ||r - c||^2 up to the per-row constant ||r||^2.
    scores = (codebook * codebook).sum(1)[None, :] - 2.0 * (r @ codebook.T)
    return scores.argmin(dim=1)


class RQVAE(Tokenizer):
    """Residual-quantised VAE tokenizer (torch, CPU).

    ``codebooks`` live in the latent space (``quantised`` gives the latents); ``decode`` runs the
    decoder. ``fit_info`` after a fit: ``n``, ``dim``, ``seconds``, ``epochs`` (per epoch: the mean of
    every loss term), ``dead_code_resets``, ``dead_code_window``, ``warm_started``, and the ``lr`` and
    ``dead_code_reset`` the fit used.

    A warm start (``WarmStart(previous, steps=epochs)``) copies encoder, decoder and codebooks from
    ``previous`` (same shape, see :meth:`warm_start_mismatch`) and trains from them (no k-means init),
    ``steps`` epochs (default: ``epochs`` and ``min_steps``, as from scratch). Its input
    standardisation (``mean``, ``scale``) is kept rather than recomputed: the copied encoder was
    trained on inputs standardised that way, so the starting model is exactly the previous version
    as a function of raw embeddings. Training-only state (Adam's moments, LETTER's projection head)
    starts fresh: the stored artefact does not hold it.
    """

    method = "rq_vae"
    Options = RQVAEOptions
    anchoring = Anchoring.WHOLE_MODEL
    artifact_format = "semid.RQVAE"

    def __init__(self, options: RQVAEOptions | None = None, /, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self.net: _Net | None = None
        self.mean: np.ndarray | None = None
        self.scale: float = 1.0

    @property
    def is_fitted(self) -> bool:
        return self.net is not None

    @property
    def codebooks(self) -> np.ndarray | None:
        """float32 [levels, K, latent_dim]: the code vectors (in the latent space).

        Assigning copies into the network (anchoring permutes the rows of each level to rename
        codes; encoder and decoder are untouched, so ``decode`` of renamed codes is unchanged)."""
        if self.net is None:
            return None
        return self.net.codebooks.detach().numpy().copy()

    @codebooks.setter
    def codebooks(self, value: np.ndarray) -> None:
        self._check_fitted("set codebooks of")
        net = self.net
        value = np.asarray(value, dtype=np.float32)
        if value.shape != tuple(net.codebooks.shape):
            raise ValueError(f"codebooks must have shape {tuple(net.codebooks.shape)}, got {value.shape}")
        with torch.no_grad():
            net.codebooks.copy_(torch.from_numpy(np.ascontiguousarray(value)))

    def _shape(self, dim: int | None) -> dict[str, Any]:
        """A warm start copies every weight: input ``dim``, ``hidden_dims``, ``latent_dim``, ``levels``
        and ``codebook_size`` must agree."""
        return {"dim": dim, "hidden_dims": list(self.options.hidden_dims), "latent_dim": self.options.latent_dim,
                "levels": self.levels, "codebook_size": self.codebook_size}

    # ------------------------------------------------------------------ fitting

    def _fit_encode(self, X: Any, progress: Progress | None, warm_start: WarmStart | None,
                    side: dict[str, Any]) -> np.ndarray:
        X = self._training_matrix(X, warm_start)
        self._prepare_side(X, **side)
        if warm_start is None:
            self._train(X, progress, None, None)
        else:
            self._train(X, progress, warm_start.previous, warm_start.steps)
        return self.encode(X)

    def _prepare_side(self, X: np.ndarray, **side: Any) -> None:
        """Hook: check and keep a subclass's side inputs (plain RQ-VAE has none)."""

    def _side_info(self) -> dict[str, Any]:
        """Hook: ``fit_info`` entries about a subclass's side inputs."""
        return {}

    def _extra_loss(self, batch: torch.Tensor, z_q: torch.Tensor, codes: list[torch.Tensor],
                    epoch: int) -> dict[str, torch.Tensor]:
        """Extra loss terms of a subclass (LETTER's regularisers); none for plain RQ-VAE."""
        return {}

    def _on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        """Hook for per-epoch work of a subclass."""

    def _extra_parameters(self) -> list[nn.Parameter]:
        """Training-only parameters of a subclass (created after the network)."""
        return []

    def _standardised(self, X: np.ndarray, previous: RQVAE | None) -> torch.Tensor:
        """Set ``dim``, ``mean`` and ``scale`` (a warm start keeps the previous version's) and return
        the standardised inputs."""
        self.dim = int(X.shape[1])
        if previous is None:
            self.mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
            self.scale = _rms_deviation(X, self.mean)
        else:
            self.mean, self.scale = previous.mean.copy(), float(previous.scale)
        # In place: one catalogue-sized array beside X instead of two (the same values).
        standardised = np.subtract(X, self.mean)
        standardised /= np.float32(self.scale)
        return torch.from_numpy(standardised)

    def _epochs(self, n: int, steps: int | None) -> int:
        """A warm start's ``steps``, else ``epochs`` raised until ``min_steps`` optimiser steps are reached."""
        if steps is not None:
            return steps
        batch = self.options.batch_size
        steps_per_epoch = sum(1 for s in range(0, n, batch) if min(batch, n - s) >= 2)
        return max(self.options.epochs, math.ceil(self.options.min_steps / max(steps_per_epoch, 1)))

    def _train(self, X: np.ndarray, progress: Progress | None, previous: RQVAE | None, steps: int | None) -> None:
        options = self.options
        n, d = X.shape
        K, L = self.codebook_size, self.levels
        t_start = time.perf_counter()
        # Taken before anything is replaced, so a model can warm-start from itself.
        warm_state = None if previous is None else {k: v.clone() for k, v in previous.net.state_dict().items()}
        rng = np.random.default_rng(options.seed)
        torch.manual_seed(int(rng.integers(0, 2**31 - 1)))
        Xs = self._standardised(X, previous)
        self.net = net = _Net(d, list(options.hidden_dims), options.latent_dim, L, K)
        epochs = self._fit_epochs = self._epochs(n, steps)
        if warm_state is not None:
            net.load_state_dict(warm_state)
        else:
            self._kmeans_init(net, Xs, rng)
        warm = warm_state is not None
        lr = options.lr * options.warm_lr_scale if warm else options.lr
        reset_dead = options.warm_dead_code_reset if warm else options.dead_code_reset
        # Training-only parameters (LETTER's projection head) start fresh even in a warm start,
        # so they keep the full learning rate.
        optimiser = torch.optim.Adam([{"params": list(net.parameters()), "lr": lr},
                                      {"params": self._extra_parameters(), "lr": options.lr}],
                                     lr=lr, weight_decay=options.weight_decay)
        window = options.dead_code_window or max(1, math.ceil(16 * K / options.batch_size))
        unused_steps = torch.zeros(L, K, dtype=torch.int64)
        resets = 0
        history = []
        for epoch in range(epochs):
            self._on_epoch_start(epoch, rng)
            reset = reset_dead and (epoch < epochs - 1 or epochs == 1)
            means, epoch_resets = self._train_epoch(Xs, rng, optimiser, epoch, reset, unused_steps, window)
            resets += epoch_resets
            history.append({"epoch": epoch + 1, **{k: round(v, 6) for k, v in means.items()}})
            if progress is not None and ((epoch + 1) % max(1, epochs // 10) == 0 or epoch + 1 == epochs):
                progress(f"{type(self).__name__} epoch {epoch + 1}/{epochs}: "
                         + ", ".join(f"{k} {v:.4g}" for k, v in means.items())
                         + f"; dead codes reset so far {resets}")
        self.fit_info = {"n": int(n), "dim": int(d), "seconds": round(time.perf_counter() - t_start, 4),
                         "dead_code_resets": int(resets), "dead_code_window": int(window), "epochs": history,
                         "warm_started": warm, "lr": lr, "dead_code_reset": reset_dead, **self._side_info()}

    def _train_epoch(self, Xs: torch.Tensor, rng: np.random.Generator, optimiser: torch.optim.Optimizer,
                     epoch: int, reset: bool, unused_steps: torch.Tensor, window: int) -> tuple[dict[str, float], int]:
        """One pass over the catalogue in a seeded order; returns the mean of every loss term and the
        number of dead codes reset."""
        batch_size = self.options.batch_size
        perm = torch.from_numpy(rng.permutation(Xs.shape[0]))
        totals: dict[str, float] = {}
        steps = resets = 0
        for start in range(0, Xs.shape[0], batch_size):
            idx = perm[start : start + batch_size]
            if len(idx) < 2:
                continue
            terms, codes, residuals = self._losses(Xs[idx], idx, epoch)
            loss = sum(terms.values())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if reset:
                resets += self._reset_dead(codes, residuals, unused_steps, window)
            for name, value in terms.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach())
            steps += 1
        return {k: v / max(steps, 1) for k, v in totals.items()}, resets

    def _losses(self, x: torch.Tensor, idx: torch.Tensor,
                epoch: int) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """The loss terms of one batch ``x`` (rows ``idx`` of the catalogue), and per level the codes
        chosen and the residuals they quantised."""
        net = self.net
        z = net.encoder(x)
        residual = z
        q = torch.zeros_like(z)
        codebook_loss = z.new_zeros(())
        codes, residuals = [], []
        for lvl in range(self.levels):
            C = net.codebooks[lvl]
            c = _nearest(residual.detach(), C.detach())
            # index_select, not C[c]: the backward of advanced indexing sums the rows' gradients in an
            # order that varies from run to run with more than one thread (the same fit, other weights).
            e = torch.index_select(C, 0, c)
            codebook_loss = codebook_loss + ((residual.detach() - e) ** 2).mean() \
                + self.options.beta * ((residual - e.detach()) ** 2).mean()
            codes.append(c)
            residuals.append(residual.detach())
            q = q + e
            residual = residual - e.detach()
        z_q = z + (q - z).detach()
        x_hat = net.decoder(z_q)
        recon = ((x_hat - x) ** 2).mean()
        terms = {"recon": recon, "codebook": codebook_loss,
                 # Value q; gradients reach the codebooks through q and, straight-through,
                 # the encoder through z (q alone would leave the encoder out of extra losses).
                 **self._extra_loss(idx, q + z - z.detach(), codes, epoch)}
        return terms, codes, residuals

    def _kmeans_init(self, net: _Net, Xs: torch.Tensor, rng: np.random.Generator) -> None:
        n, K, L = Xs.shape[0], self.codebook_size, self.levels
        options = self.options
        order = rng.permutation(n)
        init_n = min(n, options.kmeans_init_points or max(options.batch_size, 40 * K))
        with torch.no_grad():
            z0 = net.encoder(Xs[torch.from_numpy(np.sort(order[:init_n]))]).numpy()
        init = RQKMeans(levels=L, codebook_size=K, n_iter=10, seed=int(rng.integers(0, 2**31 - 1)),
                        progressive_dim_steps=10 if options.latent_dim > 16 else 0, n_threads=options.n_threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # few points per centroid is expected here
            init.fit(z0)
        with torch.no_grad():
            net.codebooks.copy_(torch.from_numpy(init.codebooks))

    def _reset_dead(self, codes: list[torch.Tensor], residuals: list[torch.Tensor],
                    unused_steps: torch.Tensor, window: int) -> int:
        K = self.codebook_size
        resets = 0
        with torch.no_grad():
            for lvl, (c, r) in enumerate(zip(codes, residuals)):
                used = torch.bincount(c, minlength=K) > 0
                unused_steps[lvl][used] = 0
                unused_steps[lvl][~used] += 1
                dead = torch.nonzero(unused_steps[lvl] >= window).flatten()
                if dead.numel():
                    pick = torch.randint(0, r.shape[0], (dead.numel(),))
                    self.net.codebooks[lvl, dead] = r[pick]
                    unused_steps[lvl, dead] = 0
                    resets += int(dead.numel())
        return resets

    # ---------------------------------------------------------------- encoding

    def embed(self, X: Any) -> np.ndarray:
        """The encoder's latents of ``X``: float32 [n, latent_dim] (what the codes quantise)."""
        self._check_fitted("embed")
        X = self._checked_input(X)
        out = np.empty((X.shape[0], self.options.latent_dim), dtype=np.float32)
        with torch.no_grad(), self._threads():
            for start in range(0, X.shape[0], _ENCODE_BATCH):
                block = torch.from_numpy((X[start : start + _ENCODE_BATCH] - self.mean) / np.float32(self.scale))
                out[start : start + _ENCODE_BATCH] = self.net.encoder(block).numpy()
        return out

    def quantised(self, X: Any) -> np.ndarray:
        """The encoder's latents of ``X`` (:meth:`embed`)."""
        return self.embed(X)

    def decode_prefix(self, codes: Any, levels: int) -> np.ndarray:
        """The decoder's reconstruction from the first ``levels`` codes: float32 [n, dim]."""
        q = super().decode_prefix(codes, levels)
        out = np.empty((q.shape[0], self.dim), dtype=np.float32)
        with torch.no_grad(), self._threads():
            for start in range(0, len(q), _ENCODE_BATCH):
                block = torch.from_numpy(q[start : start + _ENCODE_BATCH])
                out[start : start + _ENCODE_BATCH] = self.net.decoder(block).numpy()
        # In place: the same values as ``out * scale + mean`` without two more [n, dim] arrays.
        out *= np.float32(self.scale)
        out += self.mean
        return out

    def level_report(self, X: Any, codes: Any) -> pd.DataFrame:
        """Per level: error of the decoder's reconstruction from the first l codes (in the input space),
        utilisation, entropy and collisions of the prefix."""
        self._check_fitted("level_report")
        return decoded_level_report(X, codes, self.decode_prefix, self.codebook_size)

    def relative_mse(self, X: Any, codes: Any) -> float:
        """The last level's ``relative_mse`` of :meth:`level_report`, decoding once instead of per level."""
        self._check_fitted("relative_mse")
        return decoded_relative_mse(X, codes, self.decode_prefix, self.codebook_size)

    # --------------------------------------------------------------- artefact

    def _state_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"net.{k}": v.detach().numpy().copy() for k, v in self.net.state_dict().items()}
        arrays["mean"] = self.mean.copy()
        return arrays, {"scale": self.scale}

    def _load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        options = self.options
        self.scale = float(meta["scale"])
        self.mean = np.ascontiguousarray(arrays["mean"], dtype=np.float32)
        net = _Net(self.dim, list(options.hidden_dims), options.latent_dim, self.levels, self.codebook_size)
        state = {k[len("net."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")}
        net.load_state_dict(state, strict=True)
        net.eval()
        self.net = net
