"""A content-addressed, append-only cache of token matrices and pooled vectors.

A text already encoded in an earlier month must not be encoded again, so encoder outputs
are stored under a key derived only from the encoder and the text
(:func:`content_key`).

Layout under ``root/<encoder_name>/``, one *shard* per :meth:`TokenStore.put`::

    shard-000007-<uuid>-<writer>.tokens.npy     float16 [Σ n_tokens, d]  all token rows, concatenated
    shard-000007-<uuid>-<writer>.pooled.npy     float32 [n, d]           pooled vectors, in put order
    shard-000007-<uuid>-<writer>.index.parquet  key, shard, row, offset, n_tokens

(``<writer>`` is the writing process, :func:`~semid_assets.core.durable.writer_tag`; shards
of an older semid have none.) The two ``.npy`` files are written first and the index last,
each through :func:`~semid_assets.core.durable.atomic_write` (fsynced file, rename, fsynced
folder): a shard only becomes visible once its index exists, and the index only exists once
its data is complete. A crash mid-put leaves at worst orphaned ``.npy`` files, which are
ignored (:meth:`TokenStore.orphans` lists them; :meth:`TokenStore.sweep` removes those whose
writer has ended).

Reading loads every index (in file-name order, i.e. oldest shard first); a key present in
several shards resolves to the first. Shards are memory-mapped, so opening a store of
~80k texts costs the index only (a few MB).

Concurrency: designed for one writer at a time. Readers never see a half-written shard.
Two simultaneous writers would not corrupt anything (file names carry a uuid) but may
encode and store the same texts twice. A store instance does not notice shards written by
another process after it was opened; open a new instance to see them.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from semid_assets.core.durable import (
    TEMP_SUFFIX,
    atomic_write,
    is_temporary,
    remove_abandoned,
    tag_state,
    temporary_writer,
    writer_tag,
)

_SHARD_RE = re.compile(r"^shard-(\d{6,})-([0-9a-f]{32})(?:-(?P<writer>[A-Za-z0-9-]*-\d+))?$")
_INDEX_SUFFIX = ".index.parquet"
_TOKENS_SUFFIX = ".tokens.npy"
_POOLED_SUFFIX = ".pooled.npy"
_INDEX_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("shard", pa.string()),
        ("row", pa.int64()),
        ("offset", pa.int64()),
        ("n_tokens", pa.int64()),
    ]
)


def content_key(encoder_name: str, text: str) -> str:
    """sha256 hex of ``encoder_name + "\\0" + text`` (UTF-8): the cache key of one text."""
    return hashlib.sha256((encoder_name + "\0" + text).encode("utf-8")).hexdigest()


class TokenStore:
    """Append-only store of (float16 token matrix, float32 pooled vector) per content key."""

    def __init__(self, root: str | os.PathLike, encoder_name: str) -> None:
        if not encoder_name or "/" in encoder_name or "\\" in encoder_name or encoder_name in (".", ".."):
            raise ValueError(f"encoder_name must be a plain directory name, got {encoder_name!r}")
        self.root = Path(root)
        self.encoder_name = encoder_name
        self.dir = self.root / encoder_name
        self.dim: int | None = None
        # key -> (shard position in self._shards, row, offset, n_tokens)
        self._index: dict[str, tuple[int, int, int, int]] = {}
        self._shards: list[str] = []
        self._mmaps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._max_counter = -1
        self._load_indexes()

    # ------------------------------------------------------------------ reading
    def _load_indexes(self) -> None:
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.iterdir()):
            m = _SHARD_RE.match(path.name.split(".", 1)[0])
            if m:
                self._max_counter = max(self._max_counter, int(m.group(1)))
        for path in sorted(self.dir.glob("shard-*" + _INDEX_SUFFIX)):
            shard = path.name[: -len(_INDEX_SUFFIX)]
            if not _SHARD_RE.match(shard):
                continue
            table = pq.read_table(path)
            self._register(
                shard,
                table.column("key").to_pylist(),
                table.column("row").to_numpy(),
                table.column("offset").to_numpy(),
                table.column("n_tokens").to_numpy(),
            )
            if self.dim is None and table.num_rows:
                self.dim = int(self._arrays(len(self._shards) - 1)[1].shape[1])

    def _register(self, shard: str, keys, rows, offsets, n_tokens) -> None:
        pos = len(self._shards)
        self._shards.append(shard)
        index = self._index
        for key, r, o, t in zip(keys, rows.tolist(), offsets.tolist(), n_tokens.tolist()):
            if key not in index:  # first shard wins
                index[key] = (pos, r, o, t)

    def _arrays(self, pos: int) -> tuple[np.ndarray, np.ndarray]:
        got = self._mmaps.get(pos)
        if got is None:
            shard = self._shards[pos]
            tokens = np.load(self.dir / (shard + _TOKENS_SUFFIX), mmap_mode="r", allow_pickle=False)
            pooled = np.load(self.dir / (shard + _POOLED_SUFFIX), mmap_mode="r", allow_pickle=False)
            got = (tokens, pooled)
            self._mmaps[pos] = got
        return got

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __repr__(self) -> str:
        return f"TokenStore({str(self.dir)!r}, keys={len(self)}, shards={len(self._shards)})"

    @property
    def n_shards(self) -> int:
        return len(self._shards)

    def keys(self) -> list[str]:
        return list(self._index)

    def contains(self, keys: Sequence[str]) -> np.ndarray:
        """Bool array: which of ``keys`` are stored."""
        index = self._index
        return np.fromiter((k in index for k in keys), dtype=bool, count=len(keys))

    def _locate(self, keys: Sequence[str]) -> list[tuple[int, int, int, int]]:
        index = self._index
        missing = [k for k in keys if k not in index]
        if missing:
            raise KeyError(
                f"{len(missing)} of {len(keys)} keys are not in the token store {str(self.dir)!r} "
                f"(first: {missing[0]!r}); encode and put() them first"
            )
        return [index[k] for k in keys]

    def pooled(self, keys: Sequence[str]) -> np.ndarray:
        """float32 ``[n, d]`` pooled vectors of ``keys`` (KeyError if any is missing)."""
        locs = self._locate(keys)
        if self.dim is None:  # empty store, so keys is empty too
            return np.zeros((0, 0), np.float32)
        out = np.empty((len(locs), self.dim), np.float32)
        if not locs:
            return out
        loc = np.asarray(locs, dtype=np.int64)
        for pos in np.unique(loc[:, 0]).tolist():
            sel = np.flatnonzero(loc[:, 0] == pos)
            out[sel] = self._arrays(pos)[1][loc[sel, 1]]
        return out

    def n_tokens(self, keys: Sequence[str]) -> np.ndarray:
        """int64 token count of each of ``keys`` (KeyError if any is missing), read from the index only."""
        return np.fromiter((loc[3] for loc in self._locate(keys)), dtype=np.int64, count=len(keys))

    def tokens(self, keys: Sequence[str]) -> list[np.ndarray]:
        """float16 ``[n_tokens_i, d]`` token matrices of ``keys`` (copies, not views of the map)."""
        locs = self._locate(keys)
        out = []
        for pos, _, offset, n in locs:
            out.append(np.array(self._arrays(pos)[0][offset : offset + n], dtype=np.float16, copy=True))
        return out

    def orphans(self) -> list[Path]:
        """Shard data files without an index (left by an interrupted put); safe to delete when no writer runs."""
        if not self.dir.is_dir():
            return []
        indexed = {p.name[: -len(_INDEX_SUFFIX)] for p in self.dir.glob("shard-*" + _INDEX_SUFFIX)}
        out = []
        for p in sorted(self.dir.glob("shard-*.npy")):
            if p.name.split(".", 1)[0] not in indexed:
                out.append(p)
        return out

    def sweep(self, log: Callable[[str], None] = print) -> list[Path]:
        """Remove the orphan shard files (:meth:`orphans`) and temporary files whose writer has
        ended, one log line each; what a live writer is still producing is never touched."""
        if not self.dir.is_dir():
            return []
        temporaries = sorted(p for p in self.dir.glob("*" + TEMP_SUFFIX) if is_temporary(p))
        return (remove_abandoned(self.orphans(), _shard_writer, log)
                + remove_abandoned(temporaries, temporary_writer, log))

    # ------------------------------------------------------------------ writing
    def put(self, keys: Sequence[str], token_arrays: list[np.ndarray], pooled: np.ndarray) -> None:
        """Write one new shard holding ``keys``; keys already stored keep their old values."""
        keys = [str(k) for k in keys]
        n = len(keys)
        if len(token_arrays) != n:
            raise ValueError(f"put: {n} keys but {len(token_arrays)} token arrays")
        pooled = np.asarray(pooled)
        if pooled.ndim != 2 or pooled.shape[0] != n:
            raise ValueError(f"put: pooled must be [n={n}, d], got shape {pooled.shape}")
        if n == 0:
            return
        d = int(pooled.shape[1])
        if self.dim is not None and d != self.dim:
            raise ValueError(f"put: dimension {d} does not match the store's dimension {self.dim}")
        n_tokens = np.empty(n, np.int64)
        for i, t in enumerate(token_arrays):
            t = np.asarray(t)
            if t.ndim != 2 or t.shape[1] != d:
                raise ValueError(f"put: token array {i} has shape {t.shape}, expected [n_tokens, {d}]")
            n_tokens[i] = t.shape[0]
        offsets = np.zeros(n, np.int64)
        np.cumsum(n_tokens[:-1], out=offsets[1:])
        # float16 tops out at 65504: overflow is detected below rather than warned about here.
        with np.errstate(over="ignore", invalid="ignore"):
            if n_tokens.sum():
                all_tokens = np.concatenate([np.asarray(t, dtype=np.float16) for t in token_arrays], axis=0)
            else:
                all_tokens = np.zeros((0, d), np.float16)
        if not np.isfinite(all_tokens).all():
            raise ValueError("put: token values are not finite in float16 (NaN, inf or |x| > 65504)")

        self.dir.mkdir(parents=True, exist_ok=True)
        self._max_counter += 1
        # The writer in the name lets a later sweep tell this put's files from a dead writer's orphans.
        shard = f"shard-{self._max_counter:06d}-{uuid.uuid4().hex}-{writer_tag()}"
        atomic_write(self.dir / (shard + _TOKENS_SUFFIX), lambda fh: np.save(fh, all_tokens, allow_pickle=False))
        atomic_write(
            self.dir / (shard + _POOLED_SUFFIX),
            lambda fh: np.save(fh, np.ascontiguousarray(pooled, dtype=np.float32), allow_pickle=False),
        )
        rows = np.arange(n, dtype=np.int64)
        table = pa.table(
            {
                "key": pa.array(keys, pa.string()),
                "shard": pa.array([shard] * n, pa.string()),
                "row": rows,
                "offset": offsets,
                "n_tokens": n_tokens,
            },
            schema=_INDEX_SCHEMA,
        )
        # Index last: its appearance is what commits the shard.
        atomic_write(self.dir / (shard + _INDEX_SUFFIX), lambda fh: pq.write_table(table, fh))
        self._register(shard, keys, rows, offsets, n_tokens)
        if self.dim is None:
            self.dim = d


def open_store(root: str | os.PathLike, encoder_name: str) -> TokenStore:
    """A reader of the store at ``root`` / ``encoder_name``, shared by the calls of one process while its
    shards stay the same: opening reads every shard's index (seconds for a million texts), and an
    engine's chunks each need the store. A shard written since gives a new reader, which sees it.
    :func:`release_readers` lets the shared readers go (their indexes are gigabytes at that size)."""
    folder = Path(root) / encoder_name
    shards = tuple(sorted(p.name for p in folder.glob("shard-*" + _INDEX_SUFFIX))) if folder.is_dir() else ()
    return _reader(str(root), encoder_name, shards)


@lru_cache(maxsize=2)
def _reader(root: str, encoder_name: str, shards: tuple[str, ...]) -> TokenStore:
    return TokenStore(root, encoder_name)


def release_readers() -> None:
    """Drop the readers :func:`open_store` shares."""
    _reader.cache_clear()


def _shard_writer(path: Path):
    """The state of the process that wrote shard file ``path`` (untagged for an older semid's shard)."""
    match = _SHARD_RE.match(path.name.split(".", 1)[0])
    return tag_state(None if match is None else match["writer"])
