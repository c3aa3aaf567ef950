"""A file format for fitted objects that never unpickles.

Fitted objects (tokenizers, feature bundles) expose ``to_arrays`` / ``from_arrays``
so they can be stored as a single ``.npz`` file loaded with ``allow_pickle=False``:
a stored artefact can never execute code when it is read back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from semid_assets.core.durable import atomic_write

_META_KEY = "__meta__"


@runtime_checkable
class Artifact(Protocol):
    """An object that round-trips through a dict of numpy arrays plus JSON metadata."""

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]: ...

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> "Artifact": ...


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write arrays + JSON metadata to ``path`` atomically and durably (:func:`~semid_assets.core.durable.atomic_write`)."""
    if _META_KEY in arrays:
        raise ValueError(f"array name {_META_KEY!r} is reserved for metadata")
    payload = dict(arrays)
    payload[_META_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    atomic_write(Path(path), lambda fh: np.savez(fh, **payload))


def load_npz(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read what :func:`save_npz` wrote, refusing pickled payloads."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != _META_KEY}
        meta = json.loads(bytes(data[_META_KEY]).decode()) if _META_KEY in data.files else {}
    return arrays, meta
