"""Options of RQ-VAE and LETTER, importable without torch (the launchpad config is generated from them)."""

from __future__ import annotations

from dataclasses import dataclass

from semid_assets.core.tokenizers.base import QuantiserOptions, store_checked
from semid_assets.core.validation import check_bool, check_float, check_int, check_optional_int

__all__ = ["LETTEROptions", "RQVAEOptions"]


@dataclass(frozen=True, kw_only=True)
class RQVAEOptions(QuantiserOptions):
    """Options of RQ-VAE (``rq_vae``): the networks, their training, and a warm start's gentleness."""

    latent_dim: int = 128
    """Width of the latent the codebooks quantise (the Google setting: 256)."""
    hidden_dims: tuple[int, ...] = (512,)
    """Hidden layer widths of the encoder ``dim -> hidden_dims... -> latent_dim`` (ReLU between
    layers); the decoder is its mirror image. Empty: a single linear layer each way."""
    epochs: int = 6
    """Passes over the catalogue in shuffled mini-batches (order seeded by ``seed``)."""
    batch_size: int = 512
    """Items per optimiser step (at least 2)."""
    min_steps: int = 100
    """Train at least this many optimiser steps, adding epochs when ``epochs`` alone would take
    fewer (a catalogue of a few hundred items is one batch an epoch)."""
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam weight decay."""
    beta: float = 0.25
    """Commitment weight: how strongly the encoder's output is pulled towards its chosen codes
    (0.25 in the papers)."""
    kmeans_init_points: int | None = None
    """The codebooks start from residual k-means on the latents of this many items (the first of
    the seeded order). None: ``max(batch_size, 40 * codebook_size)``, capped at the item count."""
    dead_code_reset: bool = True
    """After every step, move codes no item chose for ``dead_code_window`` steps onto the residual of
    a random item of the batch, so they start where data is (fights codebook collapse). No resets
    happen in the last epoch, so the final codes are ones training settled."""
    dead_code_window: int | None = None
    """Steps a code may go unused before it is reset. None: the window in which an evenly used
    code expects 16 hits, ``ceil(16 * codebook_size / batch_size)``; a shorter window resets rarely
    chosen but useful codes so often that fewer codes stay in use than without resets."""
    warm_lr_scale: float = 0.1
    """A warm-started fit (anchored retraining) trains at ``lr * warm_lr_scale``: every step
    re-decides border items, i.e. changes their IDs, so a gentler warm fit keeps more IDs for a
    somewhat higher error."""
    warm_dead_code_reset: bool = False
    """Whether a warm-started fit resets dead codes. Off by default: the starting codes are all in
    use, and every reset re-decides items' IDs."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.hidden_dims, (str, bytes)) or not hasattr(self.hidden_dims, "__iter__"):
            raise ValueError(f"hidden_dims must be a sequence of layer widths, got {self.hidden_dims!r}")
        store_checked(
            self, latent_dim=check_int("latent_dim", self.latent_dim, 1),
            hidden_dims=tuple(check_int("hidden_dims[]", h, 1) for h in self.hidden_dims),
            epochs=check_int("epochs", self.epochs, 1), batch_size=check_int("batch_size", self.batch_size, 2),
            min_steps=check_int("min_steps", self.min_steps, 0),
            lr=check_float("lr", self.lr, inclusive=False),
            weight_decay=check_float("weight_decay", self.weight_decay), beta=check_float("beta", self.beta),
            kmeans_init_points=check_optional_int("kmeans_init_points", self.kmeans_init_points, 2),
            dead_code_reset=check_bool("dead_code_reset", self.dead_code_reset),
            dead_code_window=check_optional_int("dead_code_window", self.dead_code_window, 1),
            warm_lr_scale=check_float("warm_lr_scale", self.warm_lr_scale, inclusive=False),
            warm_dead_code_reset=check_bool("warm_dead_code_reset", self.warm_dead_code_reset))


@dataclass(frozen=True, kw_only=True)
class LETTEROptions(RQVAEOptions):
    """Options of LETTER (``letter``): RQ-VAE's, plus the weights of its two regularisers."""

    cf_weight: float = 0.1
    """Weight of the collaborative term (0: none): InfoNCE over the batch between an item's quantised
    latent (through a learned linear head) and its collaborative embedding, so items users co-consume
    get nearby codes. Items without a collaborative embedding take no part."""
    diversity_weight: float = 0.01
    """Weight of the code-diversity term, summed over levels (0: none): the code an item chose is pulled
    towards another code of its group and away from the level's other codes, spreading items over codes."""
    diversity_clusters: int = 10
    """Groups of code vectors per level for the diversity term (capped at ``codebook_size // 2`` so every
    group has two or more codes)."""
    temperature: float = 0.1
    """Softmax temperature of both contrastive terms."""

    def __post_init__(self) -> None:
        super().__post_init__()
        store_checked(self, cf_weight=check_float("cf_weight", self.cf_weight),
                      diversity_weight=check_float("diversity_weight", self.diversity_weight),
                      diversity_clusters=check_int("diversity_clusters", self.diversity_clusters, 1),
                      temperature=check_float("temperature", self.temperature, inclusive=False))
