"""The aligner's training options, importable without torch (the Dagster config reads their defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class AlignerTrainConfig:
    """Shape and training of the aligner; the defaults train a 20k-item month in about a minute on 2 cores."""

    n_queries: int = 4
    n_blocks: int = 4
    width: int = 64
    heads: int = 4
    ffn_mult: int = 2
    pool: Literal["mean", "concat"] = "concat"
    max_text_tokens: int = 128
    decoder_layers: int = 1
    caption_vocab_size: int = 4096
    caption_max_tokens: int = 24
    epochs: float = 1.0
    steps: int | None = None  # explicit step count; None = ceil(epochs × training pairs / batch_pairs)
    batch_pairs: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 30
    temperature: float = 0.07
    learn_temperature: bool = True
    contrastive_weight: float = 1.0
    caption_weight: float = 0.5
    caption_items_per_step: int = 64
    stability_weight: float = 100.0  # pull toward the warm-start aligner's vectors; see core/alignment/aligner.py
    seed: int = 0
    threads: int | None = None
    log_every: int = 50

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"AlignerTrainConfig.steps must be >= 1 or None, got {self.steps!r}.")
        if not self.epochs > 0:
            raise ValueError(f"AlignerTrainConfig.epochs must be > 0, got {self.epochs!r}.")
        for name in ("batch_pairs", "max_text_tokens", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"AlignerTrainConfig.{name} must be >= 1, got {getattr(self, name)!r}.")
        if not self.temperature > 0:
            raise ValueError(f"AlignerTrainConfig.temperature must be > 0, got {self.temperature!r}.")
        for name in ("contrastive_weight", "caption_weight", "stability_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"AlignerTrainConfig.{name} is a loss weight and must be >= 0, "
                                 f"got {getattr(self, name)!r}.")
        if self.contrastive_weight == 0 and self.caption_weight == 0:
            raise ValueError("at least one of contrastive_weight and caption_weight must be > 0.")
