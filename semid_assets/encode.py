"""``semid encode`` / ``semid embed``: semantic IDs / aligned vectors for items a registered model never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from semid_assets.core.data import schema
from semid_assets.core.data.contracts import ContractError, validate_items
from semid_assets.core.data.embedding_table import EMBEDDING, embeddings_from_arrow
from semid_assets.core.data.parquet_files import read_parquet_file
from semid_assets.core.storage import write_parquet_atomically
from semid_assets.registry import NEWEST_ALIAS, load_tokenizer
from semid_assets.settings import Settings


def model_uri(spec: str) -> str:
    """``NAME`` (→ @newest), ``NAME@ALIAS`` or ``NAME/VERSION`` as an MLflow registry URI."""
    if spec.startswith("models:/"):
        return spec
    if "@" in spec:
        return f"models:/{spec}"
    name, _, version = spec.rpartition("/")
    if name and version.isdigit():
        return f"models:/{name}/{version}"
    return f"models:/{spec}@{NEWEST_ALIAS}"


def item_embeddings(items: pa.Table, settings: Settings, aligner=None) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the items: their ``embedding`` column if present, else their text and ``emb_*`` columns
    through ``aligner`` (as ``aligned_embeddings`` does by default) or, without one, the content
    embedding (``aligner="none"``)."""
    if EMBEDDING in items.column_names:
        return embeddings_from_arrow(items)
    features, store = item_features(items, settings)
    if aligner is not None:
        return features.item_ids, aligner.embed(features, store=store)
    return features.item_ids, features.content_embedding()


def aligner_of_tokenizer(settings: Settings, model: str, dim: int):
    """The aligner whose space a tokenizer version was fitted in, or None for the content embedding.

    A tokenizer version records the month of the aligner serving when it was fitted
    (``aligner_month``, ``none`` for the content embedding); that month's registered aligner is
    the one. Versions registered before the tag existed fall back to their own month's aligner,
    kept only when its width is the one the tokenizer expects.
    """
    from semid_assets.core.lifecycle.versions import ALIGNER, model_name
    from semid_assets.registry import Registry, load_aligner

    registry = Registry(settings.mlflow_tracking_uri, settings.mlflow_artifacts)
    tags = registry.resolve(model_uri(model)).tags or {}
    month = tags.get("aligner_month", tags.get("month"))
    if not tags.get("dataset") or not month or month == "none":
        return None
    found = registry.find_version(model_name(tags["dataset"], ALIGNER), month)
    if found is None:
        return None
    aligner = load_aligner(f"models:/{found.model_name}/{found.version}", settings.mlflow_tracking_uri)
    return aligner if aligner.out_dim == dim else None


def item_features(items: pa.Table, settings: Settings, where: str = "items to encode"):
    """``(MultimodalFeatures, token store)`` of an item table, texts cached in ``$SEMID_HOME/cache`` as the
    pipeline's own ``multimodal_features`` does."""
    from semid_assets.core.features.multimodal import build_multimodal_features
    from semid_assets.core.features.text_encoder import TextEncoder
    from semid_assets.core.features.token_store import TokenStore

    items = validate_items(items, where=where)
    encoder = TextEncoder(precision=settings.text_precision)
    store = TokenStore(settings.cache_dir / "text", encoder.name)
    features, _ = build_multimodal_features(items, encoder, store)
    return features, store


def embed_file(settings: Settings, model: str, items_path: str | Path, out_path: str | Path) -> pa.Table:
    """``semid embed``: aligned vectors of the items in ``items_path`` by a registered aligner version."""
    from semid_assets.core.data.embedding_table import embeddings_to_arrow
    from semid_assets.registry import load_aligner

    items = read_parquet_file(items_path, "the --items file")
    if schema.ITEM_ID not in items.column_names:
        raise ContractError(f"{items_path} has no 'item_id' column (it has {items.column_names}).")
    aligner = load_aligner(model_uri(model), settings.mlflow_tracking_uri)
    features, store = item_features(items, settings, where="items to embed")
    vectors = aligner.embed(features, store=store)
    table = embeddings_to_arrow(features.item_ids, vectors)
    write_parquet_atomically(table, Path(out_path))
    return table


def encode_file(settings: Settings, model: str, items_path: str | Path, out_path: str | Path) -> pd.DataFrame:
    items = read_parquet_file(items_path, "the --items file")
    if schema.ITEM_ID not in items.column_names:
        raise ContractError(f"{items_path} has no 'item_id' column (it has {items.column_names}).")
    tokenizer = load_tokenizer(model_uri(model), settings.mlflow_tracking_uri)
    expected = tokenizer.dim
    aligner = None if EMBEDDING in items.column_names else aligner_of_tokenizer(settings, model, expected)
    item_ids, vectors = item_embeddings(items, settings, aligner)
    if vectors.shape[1] != expected:
        raise ContractError(
            f"{items_path} gives {vectors.shape[1]}-dim embeddings but {model} was trained on {expected}-dim ones; "
            f"bring the same text and emb_* columns as the training catalogue, or an 'embedding' column of "
            f"dimension {expected}.")
    codes = tokenizer.encode(vectors)
    table = pd.DataFrame(codes, columns=[f"c{i + 1}" for i in range(codes.shape[1])])
    table.insert(0, schema.ITEM_ID, item_ids)
    write_parquet_atomically(pa.Table.from_pandas(table, preserve_index=False), Path(out_path))
    return table
