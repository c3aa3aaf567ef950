"""Thread counts of faiss and torch, set for the duration of one step and restored afterwards.

Both libraries keep a process-wide setting. A step that changes it and does not restore it
changes what every later step of the same process computes, so every setter here is a
context manager.

torch is imported only by a setter that is used: a function that runs torch says so with
:func:`uses_torch`, and code that never touches torch (an RQ-Kmeans month) never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import faiss

__all__ = ["faiss_threads", "torch_threads", "uses_torch"]

_F = TypeVar("_F", bound=Callable[..., Any])


def uses_torch(function: _F) -> _F:
    """Mark ``function`` as running torch ops whose thread count its caller sets
    (:func:`semid_assets.core.engine.run_chunk` sets torch threads for marked functions only)."""
    function.uses_torch = True
    return function


@contextmanager
def faiss_threads(n_threads: int | None) -> Iterator[None]:
    if n_threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n_threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run with ``n_threads`` torch threads (``None``: 1), restoring the previous setting.

    One by default: the library's torch models run many small operations per step, where a
    second OpenMP thread waits at every barrier for its sibling."""
    import torch

    wanted = n_threads if n_threads is not None else 1
    before = torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)
