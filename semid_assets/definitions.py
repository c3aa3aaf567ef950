"""The one ``Definitions`` object of semid, built from the environment (see ``settings.py``)."""

from __future__ import annotations

import hashlib
import inspect
import sys

import dagster as dg

from semid_assets.compute import ComputeEngineResource
from semid_assets.defs import (alignment, automation, checks, collaborative, comparison, features, hierarchy, ingest,
                               pairs, publication, ranking, stability, tokenizer)
from semid_assets.core.tokenizers.methods import declared
from semid_assets.io_manager import SemidIOManager
from semid_assets.partitions import build_partitions
from semid_assets.resources import (AlignerGateResource, AssetStoreResource, CatalogResource, GenerationPolicyResource,
                                   MlflowRegistry, SidQualityThresholds, TextEncoderResource)
from semid_assets.settings import Settings


OWNERS = ["team:semid"]


def _code_version(assets_def) -> str:
    """The stage module's text, hashed: a change to a stage's code shows its assets as stale."""
    module = sys.modules[assets_def.op.compute_fn.decorated_fn.__module__]
    return hashlib.sha256(inspect.getsource(module).encode()).hexdigest()[:12]


def _described(assets: list) -> list:
    """Owners, a stage tag, code versions, and the automation condition of the stages after the monthly ones."""
    def apply(spec: dg.AssetSpec, version: str) -> dg.AssetSpec:
        return spec.replace_attributes(
            owners=OWNERS, code_version=version, tags={**spec.tags, "stage": spec.group_name or "semid"},
            automation_condition=automation.downstream_condition() if spec.key.to_user_string() in automation.AUTOMATED
            else spec.automation_condition)

    return [assets_def.map_asset_specs(lambda spec, v=_code_version(assets_def): apply(spec, v)) for assets_def in assets]


def executor_of(settings: Settings) -> dg.ExecutorDefinition:
    """Every step in the run's process (the default), or each in a process of its own (``SEMID_STEP_PROCESSES``)."""
    if settings.step_processes == 0:
        return dg.in_process_executor
    return dg.multiprocess_executor.configured({"max_concurrent": settings.step_processes})


def build_definitions(settings: Settings, resource_overrides: dict | None = None) -> dg.Definitions:
    """The definitions of ``settings``' dataset; ``resource_overrides`` replaces resources by key (tests)."""
    source = settings.source()
    parts = build_partitions(source.months(), settings.methods, open_ended=getattr(source, "growing", False))
    # BPR factors are computed only when a method that reads them is run.
    collaborative_needed = any("collaborative" in declared(m).side_inputs for m in settings.methods)
    jobs, schedules, sensors = automation.build(parts, source.months, collaborative_needed)
    return dg.Definitions(
        executor=executor_of(settings),
        assets=_described([*ingest.build(parts), *features.build(parts), *pairs.build(parts), *alignment.build(parts),
                *(collaborative.build(parts) if collaborative_needed else []),
                *tokenizer.build(parts, settings.codebook_size_override, collaborative_needed),
                *publication.build(parts), *comparison.build(parts), *stability.build(parts),
                *hierarchy.build(parts), *ranking.build(parts)]),
        asset_checks=checks.build(parts),
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={
            "io_manager": SemidIOManager(root=str(settings.assets_dir(source.name))),
            "asset_store": AssetStoreResource(root=str(settings.assets_dir(source.name))),
            "catalog": CatalogResource(
                dataset=settings.dataset, size=settings.size, seed=settings.seed,
                items_path=settings.items_path, interactions_path=settings.interactions_path,
                data_dir=str(settings.data_dir)),
            "text_encoder": TextEncoderResource(cache_dir=str(settings.cache_dir), precision=settings.text_precision,
                                                threads=settings.text_threads),
            "mlflow_registry": MlflowRegistry(
                tracking_uri=settings.mlflow_tracking_uri, artifact_root=str(settings.mlflow_artifacts),
                ui_url=settings.mlflow_ui_url),
            "compute_engine": ComputeEngineResource(engine=settings.engine, address=settings.ray_address),
            "sid_thresholds": SidQualityThresholds(),
            "generation_policy": GenerationPolicyResource(),
            "aligner_gate": AlignerGateResource(),
            **(resource_overrides or {}),
        },
    )


defs = build_definitions(Settings.from_env())
