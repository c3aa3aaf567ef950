"""Thread counts of faiss, torch and BLAS, set for the duration of one step and restored afterwards.

Each of these libraries keeps a process-wide setting whose default depends on how the
process was started (``OMP_NUM_THREADS``, the number of cores, whatever an earlier step left).
A different thread count changes floating-point rounding: faiss' k-means and BLAS matrix
products split their sums differently, and a fit can then land on other codes. So every
fit and encode runs inside :func:`compute_threads` with a count taken from its options,
and every setter here is a context manager that puts the previous setting back: a step
never changes what a later step of the same process computes.

``None`` means one thread everywhere, never "whatever the process has".

torch is pinned only once it is imported: a torch model's module imports it before its fit or
encode starts, and a step that never imported torch (an RQ-Kmeans month) runs no torch op, so
it never has to pay for the import. A function that imports torch itself says so with
:func:`uses_torch`, and :func:`semid_assets.core.engine.run_chunk` imports torch before it runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

import faiss

__all__ = ["blas_threads", "compute_threads", "faiss_threads", "torch_threads", "uses_torch", "wanted_threads"]

_F = TypeVar("_F", bound=Callable[..., Any])


def uses_torch(function: _F) -> _F:
    """Mark ``function`` as importing and running torch itself, so its caller imports torch first."""
    function.uses_torch = True
    return function


def wanted_threads(n_threads: int | None) -> int:
    """The count a setter applies: ``n_threads``, or 1 for None."""
    if n_threads is None:
        return 1
    n = int(n_threads)
    if n < 1:
        raise ValueError(f"a thread count must be >= 1 (or None for 1), got {n_threads!r}")
    return n


@contextmanager
def faiss_threads(n_threads: int | None) -> Iterator[int]:
    """Run with ``n_threads`` OpenMP threads in faiss (None: 1), restoring the previous setting."""
    wanted = wanted_threads(n_threads)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(wanted)
    try:
        yield wanted
    finally:
        faiss.omp_set_num_threads(before)


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[int]:
    """Run with ``n_threads`` torch threads (``None``: 1), restoring the previous setting.

    One by default: the library's torch models run many small operations per step, where a
    second OpenMP thread waits at every barrier for its sibling."""
    import torch

    wanted = wanted_threads(n_threads)
    before = torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)


@contextmanager
def blas_threads(n_threads: int | None) -> Iterator[int]:
    """Run numpy's and scipy's BLAS (and faiss' own) with ``n_threads`` threads (None: 1), restoring them.

    numpy reads its count from ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` when it loads, so a
    matrix product in a process started with another value rounds differently."""
    from threadpoolctl import threadpool_limits

    wanted = wanted_threads(n_threads)
    with threadpool_limits(limits=wanted, user_api="blas"):
        yield wanted


@contextmanager
def compute_threads(n_threads: int | None) -> Iterator[int]:
    """faiss, BLAS and (once imported) torch with ``n_threads`` threads (None: 1) for one fit or encode."""
    wanted = wanted_threads(n_threads)
    with ExitStack() as stack:
        # BLAS first: faiss' OpenBLAS is the OpenMP build, whose thread count faiss_threads sets last.
        stack.enter_context(blas_threads(wanted))
        stack.enter_context(faiss_threads(wanted))
        if "torch" in sys.modules:
            stack.enter_context(torch_threads(wanted))
        yield wanted
