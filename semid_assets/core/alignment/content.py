"""The content embedding as a stand-in aligner: what serves while no trained aligner has earned it.

``aligned_embeddings`` applies the month's *serving* aligner to every item. Until a trained
QFormer beats the content embedding on held-out pairs, the content embedding itself serves;
this class gives it the aligner's interface (``embed``, ``out_dim``, ``info``, storage), so the
stages downstream never ask which kind they hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from semid_assets.core.features.multimodal import MultimodalFeatures

__all__ = ["ContentAligner", "is_trained"]


class ContentAligner:
    """Serves ``MultimodalFeatures.content_embedding()``: each modality's pooled vector, equally weighted."""

    def __init__(self, modality_dims: dict[str, int], info: dict[str, Any] | None = None):
        self.modality_dims = {str(k): int(v) for k, v in modality_dims.items()}
        self.info = dict(info or {})

    @property
    def out_dim(self) -> int:
        return sum(self.modality_dims.values())

    def check_features(self, features: MultimodalFeatures) -> None:
        if dict(features.dims) != self.modality_dims:
            raise ValueError(f"the content embedding was defined on modalities {self.modality_dims} (name: dim) "
                             f"but the items have {dict(features.dims)}; bring the same columns as the catalogue.")

    def embed(self, features: MultimodalFeatures, rows: np.ndarray | None = None, store=None,
              log: Callable[[str], None] = lambda s: None, threads: int | None = None) -> np.ndarray:
        self.check_features(features)
        # Only the rows asked for: an engine embeds the catalogue chunk by chunk.
        return features.content_embedding(rows)

    def truncated_items(self, features: MultimodalFeatures, store=None) -> dict[str, int]:
        return {}

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"kind": "ContentAligner", "version": 1, "modality_dims": self.modality_dims, "info": self.info}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> ContentAligner:
        if meta.get("kind") != "ContentAligner":
            raise ValueError(f"not a ContentAligner artefact (kind={meta.get('kind')!r})")
        return cls(meta["modality_dims"], meta.get("info", {}))


def is_trained(aligner: Any) -> bool:
    """Whether ``aligner`` is a trained QFormer (not the content-embedding stand-in)."""
    return not isinstance(aligner, ContentAligner)
