"""The Ray engine: the chunks of a data-parallel stage as Ray tasks (``core/engine.py`` says the contract).

Each chunk is one task that runs :func:`semid_assets.core.engine.run_chunk` — the same
function, thread counts and chunk bounds as :class:`~semid_assets.core.engine.LocalEngine`,
so the outputs are the local engine's bit for bit. Shared arguments are put in Ray's object
store once and read by every task (numpy arrays without a copy on the same node); results
come back in chunk order. Workers import ``semid_assets`` by name: every node needs the
same install of semid and its dependencies (docs/scale-out.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from semid_assets.core.engine import concatenate_outputs, run_chunk, slice_columns
from semid_assets.core.validation import check_int

__all__ = ["RayEngine", "connect"]


def connect(address: str | None, num_cpus: int | None) -> bool:
    """Make this process a Ray driver; True when this call connected (the caller then shuts down).

    An existing connection is kept (a dagster-ray resource, a Ray job or a test made it).
    ``address`` names a running cluster (``"auto"``, ``host:port`` or ``ray://host:10001``);
    without one a private single-node cluster of ``num_cpus`` CPUs starts on 127.0.0.1.
    """
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level="WARNING")
    else:
        # "local": a new cluster even if another was started on this machine; workers reach it at
        # the loopback address (Ray's own servers still listen on every interface).
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 logging_level="WARNING")
    return True


def _task(function: Callable[..., Any], threads: int, columns: list[Any], *shared: Any) -> Any:
    return run_chunk(function, threads, columns, shared)


class RayEngine:
    """Runs each chunk as a Ray task of ``cpus_per_task`` CPUs with ``threads`` torch/faiss threads."""

    name = "ray"

    def __init__(self, threads: int = 1, cpus_per_task: float | None = None):
        self.threads = check_int("threads", threads, 1)
        self.cpus_per_task = float(cpus_per_task if cpus_per_task is not None else self.threads)

    def __repr__(self) -> str:
        return f"RayEngine(threads={self.threads}, cpus_per_task={self.cpus_per_task})"

    def map_chunks(self, function: Callable[..., Any], columns: Sequence[Any], *, chunk_rows: int,
                   shared: Sequence[Any] = (), min_rows: int = 1) -> Any:
        import ray

        if not ray.is_initialized():
            raise RuntimeError("the Ray engine needs a Ray connection: use it through ComputeEngineResource "
                               "(engine='ray'), or call semid_assets.ray_engine.connect() first")
        chunks = slice_columns(columns, min_rows, chunk_rows)
        shared_refs = [ray.put(value) for value in shared]
        # Tasks are pure functions of their inputs, so Ray may retry one a lost worker ran.
        remote = ray.remote(num_cpus=self.cpus_per_task)(_task)
        refs = [remote.remote(function, self.threads, chunk, *shared_refs) for chunk in chunks]
        return concatenate_outputs(ray.get(refs))
