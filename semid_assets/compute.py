"""The ``compute_engine`` resource: where the data-parallel stages run, ``local`` (default) or ``ray``.

Assets ask it for an engine (``resource.get_engine()``) and pass that, with
``resource.chunk_rows``, to the stage functions of ``semid_assets.core.fanout``. The
outputs do not depend on the choice (``core/fanout.py`` says why).

With ``engine: ray`` the resource connects when a step first asks for the engine and
disconnects when the step ends. A Ray connection that already exists is used as it is and
left open: one made by a dagster-ray resource (``LocalRay``, ``KubeRayCluster``), by
dagster-ray's run launcher or executor (the step then runs inside a Ray job), or by a test.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from semid_assets.core.engine import Engine, LocalEngine

ENGINES = ("local", "ray")


class ComputeEngineResource(dg.ConfigurableResource):
    """Where text encoding, aligner inference, SID encoding and the stability kNN run."""

    engine: str = Field(default="local", description="'local': chunks run one after another in the step's "
                                                       "process; 'ray': each chunk is a Ray task.")
    address: str | None = Field(default=None, description="Ray cluster to join ('auto', 'host:6379' or "
                                                          "'ray://host:10001'); none starts a private local one.")
    num_cpus: int | None = Field(default=None, description="CPUs of the private local Ray cluster "
                                                           "(ignored with an address).")
    chunk_rows: int = Field(default=65536, ge=1, description="Items per chunk (rounded up per stage to a "
                                                             "whole number of its fixed batches).")
    threads_per_task: int = Field(default=1, ge=1, description="torch and faiss threads inside each chunk.")
    _connected: bool = PrivateAttr(default=False)

    def _check(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"compute_engine.engine is {self.engine!r}; set it to one of {', '.join(ENGINES)}")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._check()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False

    def get_engine(self) -> Engine:
        """The engine; with ``ray``, connects on the first call (a step that never asks pays nothing,
        and other resources of the step, such as dagster-ray's, have connected by then)."""
        self._check()
        if self.engine == "ray":
            from semid_assets.ray_engine import RayEngine, connect

            self._connected = connect(self.address, self.num_cpus) or self._connected
            return RayEngine(threads=self.threads_per_task)
        return LocalEngine(threads=self.threads_per_task)

    def encode_catalogue(self):
        """``(tokenizer, X) -> codes`` on this engine: ``tokenizer.encode_catalogue(X)``, bit for bit."""
        from functools import partial

        from semid_assets.core import fanout

        return partial(fanout.encode_catalogue, self.get_engine(), chunk_rows=self.chunk_rows)

    def embed(self, aligner, features, store=None, rows=None):
        """``aligner.embed(features, rows, store=store)`` on this engine, bit for bit."""
        from semid_assets.core import fanout

        return fanout.embed_items(self.get_engine(), aligner, features, rows, store=store, chunk_rows=self.chunk_rows)

    def knn_overlap(self):
        """``stability.knn_overlap`` on this engine (the ``knn=`` of ``compare_versions``)."""
        from functools import partial

        from semid_assets.core import fanout

        return partial(fanout.knn_overlap, self.get_engine(), chunk_rows=self.chunk_rows)
