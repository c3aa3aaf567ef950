"""The ``mlflow.pyfunc`` models of semid's registered versions (see the package docstring)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from semid_assets.core.storage import load_artifact

TOKENIZER_ARTIFACT = "tokenizer"  # the name under which a version stores its tokenizer.npz
ALIGNER_ARTIFACT = "aligner"      # … and an aligner version its aligner.npz
TOKENIZER_CODE = Path(__file__).with_name("tokenizer_model.py")
ALIGNER_CODE = Path(__file__).with_name("aligner_model.py")


def embedding_matrix(model_input) -> np.ndarray:
    """float32 ``[n, d]`` from a 2-D array, or a DataFrame with an ``embedding`` column (one vector
    per row) or with only numeric columns."""
    if isinstance(model_input, pd.DataFrame):
        if "embedding" in model_input.columns:
            return np.stack(model_input["embedding"].to_numpy()).astype(np.float32)
        return model_input.to_numpy(dtype=np.float32)
    return np.asarray(model_input, dtype=np.float32)


class TokenizerModel(mlflow.pyfunc.PythonModel):
    """``predict`` encodes embeddings to codes; ``params={"direction": "decode"}`` decodes codes.

    Input for encoding: a DataFrame with an ``embedding`` column or only numeric columns (a 2-D
    array works too). Output: a DataFrame ``c1 … cL``. Input for decoding: a DataFrame or array
    of codes; output: a DataFrame with an ``embedding`` column.
    """

    def load_context(self, context) -> None:
        self.tokenizer = load_artifact(Path(context.artifacts[TOKENIZER_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        direction = (params or {}).get("direction", "encode")
        if direction == "decode":
            vectors = self.tokenizer.decode(np.asarray(model_input, dtype=np.int64))
            return pd.DataFrame({"embedding": list(vectors)})
        if direction != "encode":
            raise ValueError(f"direction must be 'encode' or 'decode', not {direction!r}")
        codes = self.tokenizer.encode(embedding_matrix(model_input))
        return pd.DataFrame(codes, columns=[f"c{i + 1}" for i in range(codes.shape[1])])


class AlignerModel(mlflow.pyfunc.PythonModel):
    """A trained QFormer aligner: an item table in, a DataFrame ``item_id, embedding`` out.

    The input is a DataFrame (``item_id`` plus the catalogue's text and ``emb_*`` columns).
    Texts are encoded by all-MiniLM-L6-v2 into a token cache: ``params={"cache_dir": ...}``
    names one (e.g. ``$SEMID_HOME/cache/text``), else a temporary one is used.
    ``params={"text_precision": "bf16"}`` when the pipeline encoded texts in bf16
    (``SEMID_TEXT_PRECISION``), so that new items are encoded as the catalogue was.
    """

    def load_context(self, context) -> None:
        self.aligner = load_artifact(Path(context.artifacts[ALIGNER_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        import pyarrow as pa

        from semid_assets.core.features.multimodal import build_multimodal_features
        from semid_assets.core.features.text_encoder import TextEncoder
        from semid_assets.core.features.token_store import TokenStore

        items = model_input if isinstance(model_input, pa.Table) else pa.Table.from_pandas(
            model_input, preserve_index=False)
        # The precision the pipeline encoded texts with (SEMID_TEXT_PRECISION), so new items match.
        encoder = TextEncoder(precision=(params or {}).get("text_precision") or "fp32")
        cache_dir = (params or {}).get("cache_dir")
        with tempfile.TemporaryDirectory() as tmp:
            store = TokenStore(cache_dir or tmp, encoder.name)
            features, _ = build_multimodal_features(items, encoder, store)
            vectors = self.aligner.embed(features, store=store)
        return pd.DataFrame({"item_id": features.item_ids, "embedding": list(vectors)})
