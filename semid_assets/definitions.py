"""The one ``Definitions`` object of semid, built from the environment (see ``settings.py``)."""

from __future__ import annotations

import dagster as dg

from semid_assets.defs import (alignment, automation, checks, collaborative, comparison, features, hierarchy, ingest,
                               pairs, publication, ranking, stability, tokenizer)
from semid_assets.core.tokenizers.methods import tokenizer_class
from semid_assets.io_manager import SemidIOManager
from semid_assets.partitions import build_partitions
from semid_assets.resources import (AlignerGateResource, AssetStoreResource, CatalogResource, GenerationPolicyResource,
                                   MlflowRegistry, SidQualityThresholds, TextEncoderResource)
from semid_assets.settings import Settings


def build_definitions(settings: Settings, resource_overrides: dict | None = None) -> dg.Definitions:
    """The definitions of ``settings``' dataset; ``resource_overrides`` replaces resources by key (tests)."""
    source = settings.source()
    parts = build_partitions(source.months(), settings.methods)
    # BPR factors are computed only when a method that reads them is run.
    collaborative_needed = any("collaborative" in tokenizer_class(m).side_inputs for m in settings.methods)
    jobs, schedules, sensors = automation.build(parts, collaborative_needed)
    return dg.Definitions(
        assets=[*ingest.build(parts), *features.build(parts), *pairs.build(parts), *alignment.build(parts),
                *(collaborative.build(parts) if collaborative_needed else []),
                *tokenizer.build(parts, settings.codebook_size_override, collaborative_needed),
                *publication.build(parts), *comparison.build(parts), *stability.build(parts),
                *hierarchy.build(parts), *ranking.build(parts)],
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
            "text_encoder": TextEncoderResource(cache_dir=str(settings.cache_dir)),
            "mlflow_registry": MlflowRegistry(
                tracking_uri=settings.mlflow_tracking_uri, artifact_root=str(settings.mlflow_artifacts),
                ui_url=settings.mlflow_ui_url),
            "sid_thresholds": SidQualityThresholds(),
            "generation_policy": GenerationPolicyResource(),
            "aligner_gate": AlignerGateResource(),
            **(resource_overrides or {}),
        },
    )


defs = build_definitions(Settings.from_env())
