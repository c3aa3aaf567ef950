"""The ranker's training options, importable without torch (Dagster config and reports read them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class RankerConfig:
    dim: int = 32
    hidden: int = 64
    max_epochs: int = 8
    checks_per_epoch: int = 4
    """Validation checks per epoch: the best point is often between two epochs."""
    patience: int = 3
    """Checks without a better validation log-loss before training stops."""
    validation_share: float = 0.1
    batch_size: int = 4096
    lr: float = 0.01
    weight_decay: float = 1e-5
    """L2 on every weight: slows the memorising of per-user and per-item rows."""
    seed: int = 0
    threads: int | None = None
    """torch threads; ``None`` = 1: the model's steps are a few milliseconds, where a second
    OpenMP thread gains little and loses much on a busy machine."""

    def to_dict(self) -> dict:
        return asdict(self)
