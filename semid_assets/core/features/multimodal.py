"""Per-item multimodal features: token matrices per modality plus pooled content vectors.

Modalities:

* ``"text"`` (when the table has text columns): each text cell is encoded by
  :class:`~semid_assets.core.features.text_encoder.TextEncoder`; its token matrix lives in the
  :class:`~semid_assets.core.features.token_store.TokenStore` (content-addressed, so unchanged
  texts are never re-encoded) and :class:`MultimodalFeatures` keeps only the keys.
* one modality per ``emb_<name>`` column (modality ``<name>``): precomputed vectors, one or
  several tokens per item, kept in memory as flat ``(tokens, offsets)``.

Pooled vectors (all L2-normalised, zeros when the item lacks the modality):

* text: per text column the sentence embedding of the cell; the modality's vector is the
  mean over the columns where the item has text, re-normalised;
* ``emb_`` modality: mean of the item's tokens.

``truth_*`` columns are never read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from semid_assets.core.data.embedding_columns import embedding_columns, read_embedding_column
from semid_assets.core.data.schema import EMBEDDING_PREFIX, ITEM_ID, TRUTH_PREFIX
from semid_assets.core.features.text_encoder import TextEncoder, is_blank
from semid_assets.core.features.token_store import TokenStore, content_key

TEXT_MODALITY = "text"
_KEY_DTYPE = "<U64"  # sha256 hex
_ENCODE_CHUNK = 2048  # texts per store shard: progress survives an interruption, shards stay few
_POOL_CHUNK = 65536  # items pooled at a time (bounds the float64 temporaries)


_CONTENT_BLOCK = 65536  # items per block of content_embedding


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float64, rows of zeros left at zero; returns float32."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return out.astype(np.float32)


@dataclass(eq=False)  # field-wise == is meaningless for arrays; identity it is
class MultimodalFeatures:
    """Everything later stages need about each item's content, stored without pickle.

    ``text_keys[i, j]`` is the token-store key of item ``i``'s text in ``text_columns[j]``
    (``""`` when the item has no such text); the text token matrices themselves stay in the
    store at ``store_root`` / ``encoder_name``. ``dense_tokens[m] = (tokens, offsets)``
    holds the ``emb_`` tokens of item ``i`` in ``tokens[offsets[i]:offsets[i + 1]]``.
    """

    item_ids: np.ndarray
    text_columns: list[str]
    text_keys: np.ndarray
    modality_names: list[str]
    pooled: dict[str, np.ndarray]
    dense_tokens: dict[str, tuple[np.ndarray, np.ndarray]]
    store_root: str
    encoder_name: str
    _store: TokenStore | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def n_items(self) -> int:
        return int(len(self.item_ids))

    @property
    def dims(self) -> dict[str, int]:
        """Modality -> vector dimension."""
        return {m: int(self.pooled[m].shape[1]) for m in self.modality_names}

    def content_embedding(self, rows: np.ndarray | None = None) -> np.ndarray:
        """float32 ``[n, Σ d_m]``: the no-aligner baseline (concatenated pooled vectors); with ``rows``,
        those items' rows only (each row is computed from that item alone: the same values).

        Each modality's unit vector is scaled by ``1/sqrt(n_modalities)``, so an item that
        has every modality gets a unit-norm concatenation with the modalities weighted
        equally. An item missing some modality is re-normalised to unit norm over the ones
        it has (keeping items comparable by cosine); an item with no content stays zero.
        """
        rows = np.arange(self.n_items) if rows is None else np.asarray(rows, np.int64).reshape(-1)
        if not self.modality_names:
            return np.zeros((len(rows), 0), np.float32)
        scale = 1.0 / np.sqrt(len(self.modality_names))
        out = np.empty((len(rows), sum(self.dims.values())), np.float32)
        # In row blocks: every step is row-wise, and the float64 temporaries of a whole
        # million-item catalogue are several gigabytes.
        for start in range(0, len(rows), _CONTENT_BLOCK):
            block = rows[start : start + _CONTENT_BLOCK]
            parts = [self.pooled[m][block].astype(np.float64) * scale for m in self.modality_names]
            out[start : start + len(block)] = _l2_normalise(np.concatenate(parts, axis=1))
        return out

    def _open_store(self, store: TokenStore | None) -> TokenStore:
        if store is not None:
            return store
        if self._store is None:
            self._store = TokenStore(self.store_root, self.encoder_name)
        return self._store

    def token_matrices(
        self, rows: np.ndarray, store: TokenStore | None = None, pad_to: dict[str, int] | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Padded token matrices of the items at positions ``rows``, for a QFormer-style aligner.

        Returns ``{modality: (tokens float32 [b, T_m, d_m], mask bool [b, T_m])}`` in
        :attr:`modality_names` order. ``mask`` is True on real tokens; real tokens come
        first in each row. ``T_m`` is the longest sequence among ``rows`` (at least 1, so
        shapes are never empty): an item without the modality has an all-False mask row,
        which the caller must handle (e.g. attend to a learned null token).

        Text tokens are the text columns' token matrices (each ``[CLS] … [SEP]``)
        concatenated in :attr:`text_columns` order, read from ``store`` (by default the
        store at ``store_root`` / ``encoder_name``).

        ``pad_to`` fixes ``T_m`` per modality instead: shorter rows are padded, longer ones
        keep their first ``T_m`` tokens (fixed shapes make a model's output for an item
        independent of the batch it sits in).
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_items):
            raise IndexError(f"rows must be positions in [0, {self.n_items}), got {rows.min()}..{rows.max()}")
        b = len(rows)
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for m in self.modality_names:
            d = self.dims[m]
            if m == TEXT_MODALITY:
                per_row = self._text_tokens(rows, store)
            else:
                tokens, offsets = self.dense_tokens[m]
                per_row = [tokens[offsets[r] : offsets[r + 1]] for r in rows]
            t_max = max([len(x) for x in per_row] + [1]) if pad_to is None else int(pad_to[m])
            padded = np.zeros((b, t_max, d), np.float32)
            mask = np.zeros((b, t_max), bool)
            for i, x in enumerate(per_row):
                x = x[:t_max]
                padded[i, : len(x)] = x
                mask[i, : len(x)] = True
            out[m] = (padded, mask)
        return out

    def token_counts(self, store: TokenStore | None = None) -> dict[str, np.ndarray]:
        """``{modality: int64 [n_items]}``: how many tokens each item has per modality (no token is read)."""
        counts: dict[str, np.ndarray] = {}
        for m in self.modality_names:
            if m == TEXT_MODALITY:
                flat = self.text_keys.reshape(-1)
                n = np.zeros(flat.size, np.int64)
                has = np.flatnonzero(flat != "")
                if has.size:
                    n[has] = self._open_store(store).n_tokens(flat[has].tolist())
                counts[m] = n.reshape(self.text_keys.shape).sum(axis=1)
            else:
                counts[m] = np.diff(self.dense_tokens[m][1]).astype(np.int64)
        return counts

    def _text_tokens(self, rows: np.ndarray, store: TokenStore | None) -> list[np.ndarray]:
        d = self.dims[TEXT_MODALITY]
        keys = self.text_keys[rows]
        wanted = sorted({k for k in keys.reshape(-1).tolist() if k})
        # The store is only opened when needed, so text-less batches work without it.
        by_key = dict(zip(wanted, self._open_store(store).tokens(wanted))) if wanted else {}
        per_row = []
        for row_keys in keys:
            parts = [by_key[k] for k in row_keys.tolist() if k]
            per_row.append(np.concatenate(parts, axis=0) if parts else np.zeros((0, d), np.float32))
        return per_row

    # ------------------------------------------------------------------ artifact
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        ids = np.asarray(self.item_ids)
        id_kind = "int64" if ids.dtype.kind in "iu" else "str"
        arrays: dict[str, np.ndarray] = {
            "item_ids": ids.astype(np.int64) if id_kind == "int64" else ids.astype(str),
            "text_keys": np.asarray(self.text_keys, dtype=_KEY_DTYPE).reshape(self.n_items, len(self.text_columns)),
        }
        for i, m in enumerate(self.modality_names):
            arrays[f"pooled_{i}"] = np.asarray(self.pooled[m], np.float32)
            if m in self.dense_tokens:
                tokens, offsets = self.dense_tokens[m]
                arrays[f"tokens_{i}"] = np.asarray(tokens, np.float32)
                arrays[f"offsets_{i}"] = np.asarray(offsets, np.int64)
        meta = {
            "kind": "MultimodalFeatures",
            "version": 1,
            "item_id_kind": id_kind,
            "text_columns": list(self.text_columns),
            "modality_names": list(self.modality_names),
            "dense_modalities": [m for m in self.modality_names if m in self.dense_tokens],
            "store_root": self.store_root,
            "encoder_name": self.encoder_name,
        }
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> MultimodalFeatures:
        if meta.get("kind") != "MultimodalFeatures":
            raise ValueError(f"not a MultimodalFeatures artefact (kind={meta.get('kind')!r})")
        names = list(meta["modality_names"])
        dense = set(meta["dense_modalities"])
        ids = arrays["item_ids"]
        ids = ids.astype(np.int64) if meta["item_id_kind"] == "int64" else ids.astype(str)
        return cls(
            item_ids=ids,
            text_columns=list(meta["text_columns"]),
            text_keys=arrays["text_keys"].astype(_KEY_DTYPE),
            modality_names=names,
            pooled={m: arrays[f"pooled_{i}"].astype(np.float32) for i, m in enumerate(names)},
            dense_tokens={
                m: (arrays[f"tokens_{i}"].astype(np.float32), arrays[f"offsets_{i}"].astype(np.int64))
                for i, m in enumerate(names)
                if m in dense
            },
            store_root=str(meta["store_root"]),
            encoder_name=str(meta["encoder_name"]),
        )


# ---------------------------------------------------------------------- table readers
def _is_text_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def text_columns_of(items: pa.Table) -> list[str]:
    """String columns other than ``item_id`` and ``truth_*``, in table order."""
    return [
        f.name
        for f in items.schema
        if f.name != ITEM_ID and not f.name.startswith(TRUTH_PREFIX) and _is_text_type(f.type)
    ]


def _item_ids(items: pa.Table) -> np.ndarray:
    if ITEM_ID not in items.column_names:
        raise ValueError(f"item table has no {ITEM_ID!r} column (columns: {items.column_names})")
    col = items.column(ITEM_ID)
    if col.null_count:
        raise ValueError(f"{ITEM_ID!r} has {col.null_count} null values")
    if pa.types.is_integer(col.type):
        ids = col.to_numpy().astype(np.int64)
    elif _is_text_type(col.type):
        ids = np.asarray(col.to_pylist(), dtype=str)
    else:
        raise TypeError(f"{ITEM_ID!r} must be string or integer, got {col.type}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{ITEM_ID!r} is not unique: {len(ids) - len(np.unique(ids))} duplicate rows")
    return ids


def _mean_pool(tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """float32 ``[n, d]``: each item's tokens averaged and L2-normalised (in float64), zeros for none.

    In chunks of ``_POOL_CHUNK`` items: every figure is a row's own, so the bits are those of one
    pass, and the float64 temporaries stay a chunk's (a million 256-d items at once took ~8 GB)."""
    n = len(offsets) - 1
    out = np.zeros((n, tokens.shape[1]), np.float32)
    for start in range(0, n, _POOL_CHUNK):
        end = min(n, start + _POOL_CHUNK)
        first = offsets[start]
        out[start:end] = _mean_pool_rows(tokens[first : offsets[end]], offsets[start : end + 1] - first)
    return out


def _mean_pool_rows(tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    n = len(offsets) - 1
    counts = np.diff(offsets)
    sums = np.zeros((n, tokens.shape[1]), np.float64)
    has = counts > 0
    if has.any():
        # reduceat over the starts of non-empty items only: empty items own no rows, so each
        # segment between consecutive starts is exactly one item's tokens.
        sums[has] = np.add.reduceat(tokens.astype(np.float64), offsets[:-1][has], axis=0)
    means = np.divide(sums, counts[:, None], out=np.zeros_like(sums), where=counts[:, None] > 0)
    return _l2_normalise(means)


def _pooled_text(text_keys: np.ndarray, store: TokenStore, d: int) -> np.ndarray:
    """float32 ``[n, d]``: per item the L2-normalised sum of its text columns' pooled vectors (the mean
    over present columns normalised is the normalised sum; zero rows stay zero). In chunks of
    ``_POOL_CHUNK`` items, with the bits of one pass (every figure is a row's own)."""
    n = len(text_keys)
    out = np.zeros((n, d), np.float32)
    for start in range(0, n, _POOL_CHUNK):
        keys = text_keys[start : start + _POOL_CHUNK]
        sums = np.zeros((len(keys), d), np.float64)
        for j in range(keys.shape[1]):
            present = np.flatnonzero(keys[:, j] != "")
            if len(present):
                sums[present] += store.pooled(keys[present, j].tolist())
        out[start : start + len(keys)] = _l2_normalise(sums)
    return out


def _text_values(items: pa.Table, name: str) -> list[str]:
    col = items.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    return ["" if v is None else v for v in col.to_pylist()]


# ---------------------------------------------------------------------- build
def build_multimodal_features(
    items: pa.Table,
    encoder: TextEncoder,
    store: TokenStore,
    *,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[MultimodalFeatures, dict]:
    """Build :class:`MultimodalFeatures` for ``items``, encoding only texts the store lacks.

    Identical texts are encoded once. New texts go into the store in shards of a few
    thousand, so an interrupted build keeps what it finished. ``emb_`` columns are read
    through pyarrow's flat buffers and validated (finite values, one dimension per column).

    Returns ``(features, stats)`` with stats ``n_items, texts_total`` (distinct non-empty
    texts), ``text_cells`` (non-empty cells), ``texts_encoded`` (new), ``texts_cached``,
    ``seconds`` and ``texts_per_s`` (encoding throughput, 0 when nothing was encoded).
    """
    t_start = time.perf_counter()
    if store.encoder_name != encoder.name:
        raise ValueError(
            f"token store is keyed for encoder {store.encoder_name!r} but the encoder is {encoder.name!r}; "
            f"open the store as TokenStore(root, encoder.name)"
        )
    ids = _item_ids(items)
    n = len(ids)
    text_columns = text_columns_of(items)
    emb_columns = embedding_columns(items)
    emb_modalities = [c[len(EMBEDDING_PREFIX) :] for c in emb_columns]
    for c, m in zip(emb_columns, emb_modalities):
        if not m:
            raise ValueError(f"column {c!r}: an embedding column needs a modality name after {EMBEDDING_PREFIX!r}")
        if m == TEXT_MODALITY:
            raise ValueError(f"column {c!r} clashes with the text modality name {TEXT_MODALITY!r}; rename it")

    # emb_ columns first: they are cheap, and a bad column should fail before minutes of encoding.
    dense_tokens = {m: read_embedding_column(items, c) for c, m in zip(emb_columns, emb_modalities)}

    text_keys = np.full((n, len(text_columns)), "", dtype=_KEY_DTYPE)
    key_to_text: dict[str, str] = {}
    for j, c in enumerate(text_columns):
        for i, text in enumerate(_text_values(items, c)):
            if is_blank(text):
                continue
            key = content_key(store.encoder_name, text)
            text_keys[i, j] = key
            key_to_text.setdefault(key, text)
    text_cells = int((text_keys != "").sum())
    unique_keys = list(key_to_text)
    missing = [k for k, have in zip(unique_keys, store.contains(unique_keys)) if not have]
    log(
        f"text: {len(unique_keys)} distinct texts in {text_cells} cells over {len(text_columns)} columns; "
        f"{len(unique_keys) - len(missing)} cached, {len(missing)} to encode"
    )

    # The encoder tops up every partial batch of each token length with filler rows (its
    # price for batch-independent bits), so chunks cut from a length-sorted list each span
    # few lengths and waste little; cutting the unsorted list would waste ~25%.
    if missing:
        lengths = [len(ids) for ids in encoder.tokenize([key_to_text[k] for k in missing])]
        missing = [k for _, k in sorted(zip(lengths, missing))]
    encode_seconds = 0.0
    done = 0
    for start in range(0, len(missing), _ENCODE_CHUNK):
        chunk = missing[start : start + _ENCODE_CHUNK]
        t0 = time.perf_counter()
        toks, pooled = encoder.encode([key_to_text[k] for k in chunk])
        encode_seconds += time.perf_counter() - t0
        store.put(chunk, toks, pooled)
        done += len(chunk)
        log(f"text: encoded {done}/{len(missing)} new texts ({done / max(encode_seconds, 1e-9):.0f} texts/s)")

    modality_names: list[str] = []
    pooled_by_modality: dict[str, np.ndarray] = {}
    if text_columns:
        modality_names.append(TEXT_MODALITY)
        pooled_by_modality[TEXT_MODALITY] = _pooled_text(text_keys, store, encoder.dim)
    for m in emb_modalities:
        modality_names.append(m)
        pooled_by_modality[m] = _mean_pool(*dense_tokens[m])

    features = MultimodalFeatures(
        item_ids=ids,
        text_columns=text_columns,
        text_keys=text_keys,
        modality_names=modality_names,
        pooled=pooled_by_modality,
        dense_tokens=dense_tokens,
        store_root=str(store.root),
        encoder_name=store.encoder_name,
    )
    seconds = time.perf_counter() - t_start
    stats = {
        "n_items": n,
        "texts_total": len(unique_keys),
        "text_cells": text_cells,
        "texts_encoded": len(missing),
        "texts_cached": len(unique_keys) - len(missing),
        "seconds": round(seconds, 3),
        "texts_per_s": round(len(missing) / encode_seconds, 1) if encode_seconds > 0 else 0.0,
    }
    log(f"features: {n} items, modalities {modality_names}, {seconds:.1f}s")
    return features, stats
