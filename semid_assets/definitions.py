"""The one ``Definitions`` object of semid, built from the environment (see ``settings.py``)."""

from __future__ import annotations

import dagster as dg

from semid_assets.compute import ComputeEngineResource
from semid_assets.defs import (alignment, automation, checks, collaborative, comparison, features, hierarchy, ingest,
                               pairs, ranking, stability, tokenizer)
from semid_assets.io_manager import SemidIOManager
from semid_assets.partitions import build_partitions
from semid_assets.resources import (CatalogResource, MlflowRegistry, PromotionThresholds, SidQualityThresholds,
                                   TextEncoderResource)
from semid_assets.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    source = settings.source()
    parts = build_partitions(source.months(), settings.methods)
    jobs, schedules, sensors = automation.build(parts)
    stability_assets, stability_checks = stability.build(parts)
    return dg.Definitions(
        assets=[*ingest.build(parts), *features.build(parts), *pairs.build(parts), *alignment.build(parts),
                *tokenizer.build(parts, settings.codebook_size), *collaborative.build(parts),
                *comparison.build(parts), *stability_assets, *hierarchy.build(parts),
                *ranking.build(parts)],
        asset_checks=[*checks.build(parts), *stability_checks],
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={
            "io_manager": SemidIOManager(root=str(settings.assets_dir(source.name))),
            "catalog": CatalogResource(
                dataset=settings.dataset, size=settings.size, seed=settings.seed,
                items_path=settings.items_path, interactions_path=settings.interactions_path,
                data_dir=str(settings.data_dir)),
            "text_encoder": TextEncoderResource(cache_dir=str(settings.cache_dir)),
            "mlflow_registry": MlflowRegistry(
                tracking_uri=settings.mlflow_tracking_uri, artifact_root=str(settings.mlflow_artifacts),
                ui_url=settings.mlflow_ui_url),
            "compute_engine": ComputeEngineResource(engine=settings.engine, address=settings.ray_address),
            "sid_thresholds": SidQualityThresholds(),
            "promotion_thresholds": PromotionThresholds(),
        },
    )


defs = build_definitions(Settings.from_env())
