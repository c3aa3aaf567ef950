"""The ranker's training options, importable without torch (Dagster config and reports read them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["RankerOptions"]


@dataclass(frozen=True, kw_only=True)
class RankerOptions:
    """How the CTR model of the ranking experiment is trained (the same for every variant)."""

    dim: int = 32
    """Width of the user and item vectors; every table row holds this many parameters."""
    hidden: int = 64
    """Width of the two hidden layers of the MLP over ``[u, v, u ⊙ v]``."""
    max_epochs: int = 8
    """Passes over the training impressions at most (early stopping usually ends sooner)."""
    checks_per_epoch: int = 4
    """Validation checks per epoch: the best point is often between two epochs."""
    patience: int = 3
    """Checks without a better validation log-loss before training stops."""
    validation_share: float = 0.1
    """The most recent share of the training impressions held out for early stopping."""
    batch_size: int = 4096
    """Impressions per Adam step."""
    lr: float = 0.01
    """Adam's learning rate."""
    weight_decay: float = 1e-5
    """L2 on every weight: slows the memorising of per-user and per-item rows."""
    seed: int = 0
    """Seeds the initial weights, the batch order and the bootstrap replicates."""
    threads: int | None = None
    """torch threads; ``None`` = 1: the model's steps are a few milliseconds, where a second
    OpenMP thread gains little and loses much on a busy machine."""

    def __post_init__(self):
        for name in ("dim", "hidden", "max_epochs", "checks_per_epoch", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"RankerOptions.{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.validation_share < 1:
            raise ValueError(f"RankerOptions.validation_share must lie in [0, 1), got {self.validation_share}")

    def validation_rows(self, n_rows: int) -> int:
        """How many of ``n_rows`` training impressions (the most recent) are held out for early stopping."""
        return int(round(n_rows * self.validation_share))

    def to_dict(self) -> dict:
        return asdict(self)
