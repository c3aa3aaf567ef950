"""The trained QFormer aligner as stored, and applying it (no orchestrator import).

:class:`Aligner` is the trained model: the config, the float32 state dict and the caption
vocabulary; it round-trips through ``to_arrays``/``from_arrays`` (``.npz``, no pickle) and
through ``torch.save``/``torch.load(weights_only=True)`` (the MLflow copy). torch is imported
only when the network is built (to embed items) or the torch copy is written or read: a step
that only passes a stored aligner on (the publication stages of an RQ-Kmeans month) reads it
without torch. Training is in ``core/alignment/training.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from semid_assets.core.alignment.config import EMBED_BATCH, QFormerConfig
from semid_assets.core.features.multimodal import MultimodalFeatures
from semid_assets.core.threads import compute_threads

if TYPE_CHECKING:
    import torch

    from semid_assets.core.alignment.qformer import AlignerNet


@dataclass(eq=False)
class Aligner:
    """A trained QFormer aligner: config + float32 weights + caption vocabulary + training facts."""

    config: QFormerConfig
    state: dict[str, np.ndarray]
    vocabulary: np.ndarray  # original token ids of compact caption rows 2 … vocab_size - 1
    info: dict[str, Any]

    _net: AlignerNet | None = field(default=None, init=False, repr=False)

    @property
    def out_dim(self) -> int:
        return self.config.out_dim

    def net(self) -> AlignerNet:
        if self._net is None:
            import torch

            from semid_assets.core.alignment.qformer import AlignerNet

            net = AlignerNet(self.config)
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state.items()}, strict=True)
            net.eval()
            self._net = net
        return self._net

    @classmethod
    def from_net(cls, net: AlignerNet, vocabulary: np.ndarray, info: dict[str, Any]) -> Aligner:
        state = {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in net.state_dict().items()}
        return cls(net.config, state, np.asarray(vocabulary, np.int64), dict(info))

    # ------------------------------------------------------------------ applying
    def check_features(self, features: MultimodalFeatures) -> None:
        want = dict(zip(self.config.modalities, self.config.modality_dims))
        have = features.dims
        if want != have:
            raise ValueError(f"the aligner was trained on modalities {want} (name: dim) but the items have {have}; "
                             f"bring the same text and emb_* columns as the training catalogue.")

    def embed(self, features: MultimodalFeatures, rows: np.ndarray | None = None, store=None,
              log: Callable[[str], None] = lambda s: None, threads: int | None = None) -> np.ndarray:
        """float32 ``[len(rows), out_dim]`` unit vectors of the items at ``rows`` (all by default).

        Every forward pass has the same shape (``EMBED_BATCH`` rows, each modality padded
        or truncated to ``config.max_tokens``; a short last batch is topped up with copies
        of its first row), so an item's vector is bit-identical whichever items it is
        embedded with.
        """
        import torch

        self.check_features(features)
        rows = np.arange(features.n_items) if rows is None else np.asarray(rows, np.int64)
        net = self.net()
        pad_to = dict(zip(self.config.modalities, self.config.max_tokens))
        out = np.zeros((len(rows), self.out_dim), np.float32)
        with torch.inference_mode(), compute_threads(threads):
            for start in range(0, len(rows), EMBED_BATCH):
                chunk = rows[start : start + EMBED_BATCH]
                filled = np.concatenate([chunk, np.repeat(chunk[:1], EMBED_BATCH - len(chunk))])
                tokens, masks = feature_tensors(features.token_matrices(filled, store, pad_to=pad_to), features)
                _, v = net.qformer(tokens, masks)
                out[start : start + len(chunk)] = v[: len(chunk)].numpy()
                if (start // EMBED_BATCH) % 20 == 19:
                    log(f"embedded {start + len(chunk)}/{len(rows)} items")
        return out

    def truncated_items(self, features: MultimodalFeatures, store=None) -> dict[str, int]:
        """Per modality, how many items have more tokens than ``config.max_tokens`` (their tail is not read)."""
        counts = features.token_counts(store)
        return {m: int((counts[m] > t).sum()) for m, t in zip(self.config.modalities, self.config.max_tokens)}

    # ------------------------------------------------------------------ storage
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        names = sorted(self.state)
        arrays = {f"w{i}": np.asarray(self.state[k], np.float32) for i, k in enumerate(names)}
        arrays["vocabulary"] = np.asarray(self.vocabulary, np.int64)
        meta = {"kind": "Aligner", "version": 1, "config": self.config.to_json(), "state_names": names,
                "info": self.info}
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Aligner:
        if meta.get("kind") != "Aligner":
            raise ValueError(f"not an Aligner artefact (kind={meta.get('kind')!r})")
        state = {k: arrays[f"w{i}"].astype(np.float32) for i, k in enumerate(meta["state_names"])}
        return cls(QFormerConfig.from_json(meta["config"]), state, arrays["vocabulary"].astype(np.int64),
                   dict(meta.get("info", {})))

    def save_torch(self, path) -> None:
        """The weights for ``torch.load(path, weights_only=True)``: tensors, vocabulary, config and info as JSON."""
        import json

        import torch

        torch.save({"state": {k: torch.from_numpy(np.array(v)) for k, v in self.state.items()},
                    "vocabulary": torch.from_numpy(np.asarray(self.vocabulary, np.int64)),
                    "config": json.dumps(self.config.to_json()), "info": json.dumps(self.info)}, path)

    @classmethod
    def load_torch(cls, path) -> Aligner:
        import json

        import torch

        blob = torch.load(path, weights_only=True, map_location="cpu")
        state = {k: v.numpy().astype(np.float32) for k, v in blob["state"].items()}
        return cls(QFormerConfig.from_json(json.loads(blob["config"])), state, blob["vocabulary"].numpy(),
                   json.loads(blob["info"]))


def feature_tensors(matrices: dict[str, tuple[np.ndarray, np.ndarray]],
             features: MultimodalFeatures) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    import torch

    tokens = [torch.from_numpy(matrices[m][0]) for m in features.modality_names]
    masks = [torch.from_numpy(matrices[m][1]) for m in features.modality_names]
    return tokens, masks
