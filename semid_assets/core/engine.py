"""Data-parallel stages run as a map over row chunks, in this process or on a cluster.

An *engine* runs ``function(*chunk_columns, *shared)`` once per chunk of rows and
concatenates each output along axis 0 in chunk order. ``columns`` are row-aligned and
sliceable (numpy arrays, lists, or any object with ``len`` and ``[lo:hi]``); ``shared``
arguments are the same for every chunk (a model, a whole matrix to search) and are sent
once. The function must be a module-level function (a cluster imports it by name) whose
output for a row depends only on that row and ``shared``.

:class:`LocalEngine` runs the chunks one after another here. The Ray engine
(``semid_assets.ray_engine``, outside this pure library) runs the same chunks as Ray tasks.
Both run each chunk through :func:`run_chunk`, which fixes the torch and faiss thread
counts, so for the same ``chunk_rows`` every engine makes exactly the same library calls
with the same shapes and the same thread counts: the engine is not part of the numerics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from semid_assets.core.threads import compute_threads
from semid_assets.core.validation import check_int

__all__ = ["Engine", "LocalEngine", "chunk_bounds", "concatenate_outputs", "run_chunk", "slice_columns"]


class Engine(Protocol):
    """What a data-parallel stage needs from an engine."""

    threads: int

    def map_chunks(self, function: Callable[..., Any], columns: Sequence[Any], *, chunk_rows: int,
                   shared: Sequence[Any] = (), min_rows: int = 1) -> Any: ...


def chunk_bounds(n_rows: int, chunk_rows: int, min_rows: int = 1) -> list[tuple[int, int]]:
    """``[(lo, hi), …]`` covering ``range(n_rows)`` in order, ``max(chunk_rows, min_rows)`` rows each.

    A last chunk shorter than ``min_rows`` is merged into the one before it, so no chunk is
    shorter than ``min_rows`` unless the whole input is (e.g. faiss searches fewer than its
    BLAS threshold of queries by another algorithm; see ``core/fanout.py``).
    """
    check_int("n_rows", n_rows, 0)
    min_rows = check_int("min_rows", min_rows, 1)
    chunk_rows = max(check_int("chunk_rows", chunk_rows, 1), min_rows)
    bounds = [(lo, min(lo + chunk_rows, n_rows)) for lo in range(0, n_rows, chunk_rows)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_rows:
        (lo, _), (_, hi) = bounds[-2], bounds[-1]
        bounds[-2:] = [(lo, hi)]
    return bounds


def run_chunk(function: Callable[..., Any], threads: int, columns: Sequence[Any], shared: Sequence[Any]) -> Any:
    """``function(*columns, *shared)`` with ``threads`` torch, faiss and BLAS threads, restored afterwards.

    torch is imported first only for a function marked :func:`~semid_assets.core.threads.uses_torch`,
    so an unmarked chunk (RQ-Kmeans codes, the stability kNN) never loads it."""
    if getattr(function, "uses_torch", False):
        import torch  # noqa: F401  (compute_threads pins torch once it is imported)
    with compute_threads(threads):
        return function(*columns, *shared)


def concatenate_outputs(outputs: Sequence[Any]) -> Any:
    """Join per-chunk outputs in order: an array, or a tuple of arrays joined position by position."""
    if not outputs:
        raise ValueError("no chunk outputs to join (the input had no rows)")
    if isinstance(outputs[0], tuple):
        return tuple(np.concatenate(parts, axis=0) for parts in zip(*outputs))
    return np.concatenate(outputs, axis=0)


def _n_rows(columns: Sequence[Any]) -> int:
    if not columns:
        raise ValueError("map_chunks needs at least one row-aligned column")
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise ValueError(f"the columns must have one row count each, got lengths {sorted(lengths)}")
    return lengths.pop()


def slice_columns(columns: Sequence[Any], min_rows: int, chunk_rows: int) -> Iterator[list[Any]]:
    """The chunks of ``columns``, one at a time: for each ``(lo, hi)`` of :func:`chunk_bounds`, every
    column's ``[lo:hi]`` (a chunk may be a payload made for it: only the one in use exists)."""
    for lo, hi in chunk_bounds(_n_rows(columns), chunk_rows, min_rows):
        yield [c[lo:hi] for c in columns]


class LocalEngine:
    """Runs the chunks one after another in this process, ``threads`` torch/faiss threads each."""

    name = "local"

    def __init__(self, threads: int = 1):
        self.threads = check_int("threads", threads, 1)

    def __repr__(self) -> str:
        return f"LocalEngine(threads={self.threads})"

    def map_chunks(self, function: Callable[..., Any], columns: Sequence[Any], *, chunk_rows: int,
                   shared: Sequence[Any] = (), min_rows: int = 1) -> Any:
        return concatenate_outputs([run_chunk(function, self.threads, chunk, shared)
                                    for chunk in slice_columns(columns, min_rows, chunk_rows)])
