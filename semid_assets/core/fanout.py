"""The data-parallel stages of the lineage as maps over item chunks on an engine (``core/engine.py``).

Each function here gives bit for bit what the plain library call gives, on any engine:

============================  =====================================================
``encode_texts``              ``encoder.encode(texts)``
``embed_items``               ``aligner.embed(features, rows, store)``
``encode_catalogue``          ``tokenizer.encode_catalogue(X)``
``knn_overlap``               ``evaluation.stability.knn_overlap(emb_a, emb_b, …)``
============================  =====================================================

Why chunking cannot change the bits, stage by stage:

- *Text encoding*: every forward pass of :class:`~semid_assets.core.features.text_encoder.TextEncoder`
  has the shape ``[batch_size, L]`` with no padding, so a text's vectors do not depend on the
  other texts of the call (measured there); any chunk size gives the same bits.
- *Aligner inference*: :meth:`Aligner.embed` runs fixed ``[EMBED_BATCH, max_tokens]`` batches
  topped up with filler rows; chunks are whole multiples of ``EMBED_BATCH``, so the chunked
  calls run exactly the forward passes the single call runs.
- *SID encoding*: every tokenizer encodes in row blocks (faiss searches of 65,536 or 8,192
  queries, RQ-VAE encoder batches of 8,192) and a faiss search of fewer than its BLAS
  threshold (20) queries takes another algorithm whose distances differ in the last bits.
  Chunks are whole multiples of :data:`SID_CHUNK_ALIGN`, a multiple of every block, so each
  chunk issues exactly the searches and batches the single call issues for those rows.
  Balanced RQ-Kmeans' ``encode_catalogue`` is not per item: each code's capacity is shared by
  the whole population, so the catalogue is one chunk (one task), never split.
- *Stability kNN*: each sampled query's neighbours are a search of that query against all
  items; queries are split into chunks of at least faiss' BLAS threshold, so every chunk
  takes the algorithm the single search takes. That faiss' matrix product gives a query the
  same distances whatever the number of queries beside it is what the tests check exactly;
  it holds for the BLAS faiss-cpu ships, not by a guarantee of BLAS.

Models go to the chunks as ``to_arrays`` payloads and are rebuilt with ``from_arrays`` (the
path every stored artefact takes), never as arbitrary pickled objects; item features go as
the chunk's own rows. Functions run on a cluster must read the text-token store at the same
path, so ``SEMID_HOME`` must be shared storage there (docs/scale-out.md).

Layer: this module sits above ``evaluation`` (it calls features, alignment, tokenizers
and evaluation); the engines it takes sit at the bottom (``core/engine.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import faiss
import numpy as np

from semid_assets.core.alignment.config import EMBED_BATCH
from semid_assets.core.alignment.content import is_trained
from semid_assets.core.engine import Engine
from semid_assets.core.evaluation.stability import (knn_inputs, knn_queries, nearest_neighbours,
                                                    neighbour_overlap)
from semid_assets.core.features.multimodal import MultimodalFeatures
from semid_assets.core.features.text_encoder import TextEncoder
from semid_assets.core.features.token_store import TokenStore, open_store, release_readers
from semid_assets.core.threads import uses_torch
from semid_assets.core.validation import check_int

__all__ = ["SID_CHUNK_ALIGN", "Shipped", "embed_items", "encode_catalogue", "encode_texts", "feature_rows",
           "knn_overlap", "round_up"]

# A multiple of every encode block of the tokenizers: 65,536 (RQ-Kmeans greedy, balanced
# RQ-Kmeans' search, residual.greedy_encode) and 8,192 (residual beam blocks, RQ-VAE batches).
SID_CHUNK_ALIGN = 65536


def round_up(rows: int, unit: int) -> int:
    """The smallest multiple of ``unit`` that is at least ``rows`` (and at least ``unit``)."""
    rows = check_int("chunk_rows", rows, 1)
    return -(-rows // unit) * unit


@dataclass(frozen=True)
class Shipped:
    """A model as it travels to a chunk: its class and its ``to_arrays`` payload."""

    cls: type
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    @classmethod
    def of(cls, obj: Any) -> Shipped:
        arrays, meta = obj.to_arrays()
        return cls(type(obj), arrays, meta)

    def rebuild(self) -> Any:
        return self.cls.from_arrays(self.arrays, self.meta)


# ---------------------------------------------------------------------- text encoding
def _encoder_spec(encoder: TextEncoder) -> tuple:
    # The chunk runs with the engine's thread count (engine.run_chunk), not the caller's encoder's.
    return (encoder.model_path, encoder.max_tokens, encoder.batch_size, encoder.precision, encoder.name)


@lru_cache(maxsize=4)
def _encoder_from_spec(spec: tuple, threads: int) -> TextEncoder:
    model_path, max_tokens, batch_size, precision, name = spec
    encoder = TextEncoder(model_path=model_path, max_tokens=max_tokens, batch_size=batch_size, threads=threads,
                          precision=precision)
    if encoder.name != name:
        raise ValueError(f"the rebuilt text encoder is {encoder.name!r}, the caller's {name!r}")
    return encoder


@uses_torch
def _encode_text_chunk(texts: list[str], spec: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import torch  # already imported by run_chunk (uses_torch); the name is needed here

    # The thread count run_chunk set, passed on: the encoder would otherwise set its default.
    tokens, pooled = _encoder_from_spec(spec, torch.get_num_threads()).encode(texts)
    lengths = np.array([len(t) for t in tokens], dtype=np.int64)
    flat = np.concatenate(tokens, axis=0) if tokens else np.zeros((0, pooled.shape[1]), np.float32)
    return flat, lengths, pooled


def encode_texts(engine: Engine, encoder: TextEncoder, texts: Sequence[str], *,
                 chunk_rows: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``encoder.encode(texts)`` in chunks of ``chunk_rows`` texts on ``engine``: the same
    ``(tokens, pooled)``. Pass texts sorted by token length (as ``build_multimodal_features``
    does): the encoder tops up each length's partial batch per call."""
    texts = list(texts)
    if not texts:
        return encoder.encode(texts)
    flat, lengths, pooled = engine.map_chunks(_encode_text_chunk, [texts], chunk_rows=chunk_rows,
                                              shared=(_encoder_spec(encoder),))
    tokens = np.split(flat, np.cumsum(lengths)[:-1])
    return tokens, pooled


# ---------------------------------------------------------------------- aligner inference
def feature_rows(features: MultimodalFeatures, rows: np.ndarray) -> MultimodalFeatures:
    """The items at positions ``rows`` as features of their own (same modalities, same token store)."""
    rows = np.asarray(rows, dtype=np.int64)
    dense = {}
    for m, (tokens, offsets) in features.dense_tokens.items():
        starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
        new_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        gather = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
        dense[m] = (tokens[gather], new_offsets)
    return MultimodalFeatures(
        item_ids=features.item_ids[rows], text_columns=list(features.text_columns),
        text_keys=features.text_keys[rows], modality_names=list(features.modality_names),
        pooled={m: p[rows] for m, p in features.pooled.items()}, dense_tokens=dense,
        store_root=features.store_root, encoder_name=features.encoder_name)


class _FeatureChunks:
    """Row-sliceable view of features: ``[lo:hi]`` is the payload of the items at ``rows[lo:hi]``."""

    def __init__(self, features: MultimodalFeatures, rows: np.ndarray):
        self.features, self.rows = features, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, part: slice) -> Shipped:
        return Shipped.of(feature_rows(self.features, self.rows[part]))


@uses_torch
def _embed_chunk(features: Shipped, aligner: Shipped, store: tuple[str, str] | None) -> np.ndarray:
    import torch

    model = aligner.rebuild()
    # The content embedding reads no token; a QFormer reads its items' text tokens from the store.
    opened = open_store(*store) if store is not None and is_trained(model) else None
    # The thread count run_chunk set, passed on: Aligner.embed would otherwise set its default.
    return model.embed(features.rebuild(), store=opened, threads=torch.get_num_threads())


def embed_items(engine: Engine, aligner, features: MultimodalFeatures, rows: np.ndarray | None = None,
                store: TokenStore | None = None, *, chunk_rows: int) -> np.ndarray:
    """``aligner.embed(features, rows, store)`` in chunks of ``chunk_rows`` items (rounded up to a
    multiple of ``EMBED_BATCH``) on ``engine``: the same float32 vectors."""
    aligner.check_features(features)
    rows = np.arange(features.n_items) if rows is None else np.asarray(rows, np.int64)
    if rows.size == 0:
        return aligner.embed(features, rows=rows, store=store)
    where = (str(store.root), store.encoder_name) if store is not None else None
    try:
        return engine.map_chunks(_embed_chunk, [_FeatureChunks(features, rows)],
                                 chunk_rows=round_up(chunk_rows, EMBED_BATCH), shared=(Shipped.of(aligner), where))
    finally:
        release_readers()  # the chunks of this call shared one; a run in one process goes on to other steps


# ---------------------------------------------------------------------- SID encoding
def _encode_chunk(X: np.ndarray, tokenizer: Shipped) -> np.ndarray:
    return tokenizer.rebuild().encode_catalogue(X)


def encode_catalogue(engine: Engine, tokenizer, X: np.ndarray, *, chunk_rows: int) -> np.ndarray:
    """``tokenizer.encode_catalogue(X)`` on ``engine``: the same int32 codes.

    Per-item tokenizers run in chunks of ``chunk_rows`` rows rounded up to a multiple of
    :data:`SID_CHUNK_ALIGN`; a tokenizer that assigns over the whole catalogue (balanced
    RQ-Kmeans) runs as one chunk.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    if len(X) == 0:
        return tokenizer.encode_catalogue(X)
    whole = tokenizer.population_codes
    rows = len(X) if whole else round_up(chunk_rows, SID_CHUNK_ALIGN)
    return engine.map_chunks(_encode_chunk, [X], chunk_rows=rows, shared=(Shipped.of(tokenizer),))


# ---------------------------------------------------------------------- stability kNN
def _neighbours_chunk(queries: np.ndarray, emb_a: np.ndarray, emb_b: np.ndarray,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
    return nearest_neighbours(queries, emb_a, k), nearest_neighbours(queries, emb_b, k)


def knn_overlap(engine: Engine, emb_a: np.ndarray, emb_b: np.ndarray, sample: int = 1000, k: int = 10,
                seed: int = 0, *, chunk_rows: int) -> float:
    """``stability.knn_overlap(emb_a, emb_b, sample, k, seed)`` with the sampled queries searched in
    chunks of ``chunk_rows`` (at least faiss' BLAS threshold) on ``engine``: the same figure."""
    emb_a, emb_b = knn_inputs(emb_a, emb_b, k)
    if emb_a.shape == emb_b.shape and np.array_equal(emb_a, emb_b):
        return 1.0
    queries = knn_queries(emb_a.shape[0], sample, seed)
    found_a, found_b = engine.map_chunks(_neighbours_chunk, [queries], chunk_rows=chunk_rows,
                                         shared=(emb_a, emb_b, k),
                                         min_rows=int(faiss.cvar.distance_compute_blas_threshold))
    return neighbour_overlap(queries, found_a, found_b, k)
