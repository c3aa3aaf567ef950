"""The aligner's training options and its network's shape, importable without torch (the Dagster config is
generated from the options; a stored aligner is read without building its network)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

# The fixed inference batch of Aligner.embed: part of the numerics (see QFormerConfig.max_tokens).
EMBED_BATCH = 256


@dataclass(frozen=True, kw_only=True)
class AlignerTrainConfig:
    """Shape, losses and training of the QFormer aligner."""

    n_queries: int = 4
    """Learnable query tokens N_q (OneRec: 4)."""
    n_blocks: int = 4
    """Cross-attention + FFN blocks N_c (OneRec: 4)."""
    width: int = 64
    """Width of the query tokens and of every projected modality token."""
    heads: int = 4
    """Attention heads of each cross-attention."""
    ffn_mult: int = 2
    """Hidden width of each FFN as a multiple of ``width``."""
    pool: Literal["mean", "concat"] = "concat"
    """How the N_q query tokens become one vector: their concatenation (N_q × width dims) or their mean (width)."""
    max_text_tokens: int = 128
    """Tokens read per text field; an item's longer fields are cut (counted in the metadata)."""
    decoder_layers: int = 1
    """Layers of the small causal decoder the caption loss trains."""
    caption_vocab_size: int = 4096
    """Rows of the caption decoder's compact vocabulary (the most frequent training-caption tokens + PAD + UNK)."""
    caption_max_tokens: int = 24
    """Caption tokens predicted per item."""
    epochs: float = 1.0
    """Passes over the month's training pairs (sets the step count unless ``steps`` is given)."""
    steps: int | None = None
    """An explicit step count; None = ceil(epochs × training pairs / batch_pairs)."""
    batch_pairs: int = 256
    """Pairs per step; the other pairs of a batch are each pair's negatives."""
    lr: float = 2e-3
    """Peak learning rate (AdamW, linear warm-up, cosine decay)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup_steps: int = 30
    """Steps of linear learning-rate warm-up."""
    temperature: float = 0.07
    """Starting temperature of the InfoNCE softmax."""
    learn_temperature: bool = True
    """Learn the temperature (False: keep ``temperature`` fixed)."""
    contrastive_weight: float = 1.0
    """Weight of the symmetric item-to-item InfoNCE loss over the month's pairs."""
    caption_weight: float = 0.5
    """Weight of the caption next-token loss (0 turns it off)."""
    caption_items_per_step: int = 64
    """Items whose captions a step predicts."""
    stability_weight: float = 100.0
    """With a warm start: weight of the term pulling every item's vector toward the previous aligner's
    vector of it. 0 lets fine-tuning move the whole space; larger keeps consecutive versions in one space
    at some cost in held-out recall (docs/benchmarks.md)."""
    seed: int = 0
    """Seeds initialisation, batch order and the held-out split."""
    threads: int | None = None
    """torch, faiss and BLAS threads during training and embedding (None: 1), set for the call and restored."""
    log_every: int = 50
    """Steps between progress lines in the run log."""

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


@dataclass(frozen=True)
class QFormerConfig:
    """Shape of the QFormer and its caption decoder (everything needed to rebuild it).

    ``max_tokens`` caps each modality's token count; at inference every batch is padded to
    exactly these lengths, so an item's vector does not depend on the other items in its
    batch (CPU kernels give different bits for different shapes).
    """

    modalities: tuple[str, ...]
    modality_dims: tuple[int, ...]
    max_tokens: tuple[int, ...]
    n_queries: int = 4
    n_blocks: int = 4
    width: int = 128
    heads: int = 4
    ffn_mult: int = 2
    pool: Literal["mean", "concat"] = "mean"
    vocab_size: int = 2  # compact caption vocabulary incl. PAD and UNK; 2 = no caption head
    decoder_layers: int = 1
    caption_max_tokens: int = 24
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.modalities)
        if n == 0:
            raise ValueError("the QFormer needs at least one modality (the items have no text and no emb_* column).")
        if len(self.modality_dims) != n or len(self.max_tokens) != n:
            raise ValueError("modalities, modality_dims and max_tokens must have the same length.")
        for name, low in (("n_queries", 1), ("n_blocks", 1), ("width", 8), ("heads", 1), ("ffn_mult", 1),
                          ("decoder_layers", 1), ("caption_max_tokens", 2), ("vocab_size", 2)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"QFormerConfig.{name} must be >= {low}, got {getattr(self, name)!r}.")
        if self.pool not in ("mean", "concat"):
            raise ValueError(f"QFormerConfig.pool must be 'mean' or 'concat', got {self.pool!r}.")
        if self.width % self.heads:
            raise ValueError(f"QFormerConfig.width ({self.width}) must be a multiple of heads ({self.heads}).")

    @property
    def out_dim(self) -> int:
        return self.width * (self.n_queries if self.pool == "concat" else 1)

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("modalities", "modality_dims", "max_tokens"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_json(cls, d: dict) -> QFormerConfig:
        d = dict(d)
        for k in ("modalities", "modality_dims", "max_tokens"):
            d[k] = tuple(d[k])
        return cls(**d)
