"""Stability over time: this month's published IDs against those of a month `months_back` earlier."""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from semid_assets import metadata as md
from semid_assets.compute import ComputeEngineResource
from semid_assets.core.data.embedding_table import gather_vectors, vectors_of
from semid_assets.core.evaluation.plots import agreement_plot
from semid_assets.core.evaluation.stability import common_item_ids, compare_versions, knn_figures
from semid_assets.core.lifecycle.generations import published
from semid_assets.core.lifecycle.history import MethodHistory
from semid_assets.core.lifecycle.versions import VersionKey, months_apart
from semid_assets.partitions import SemidPartitions, method_of, month_of
from semid_assets.resources import AssetStoreResource, CatalogResource, MlflowRegistry

GROUP = "evaluation"


class StabilityConfig(dg.Config):
    months_back: int = 6
    """Compare with the newest published month at least this many months earlier (else the oldest one)."""
    knn_sample: int = 1000
    """Items whose embedding neighbourhoods are compared."""
    knn_k: int = 10
    seed: int = 0


def _earlier_vectors(store, month: str, ids: np.ndarray):
    """The earlier month's embeddings of ``ids``, read a row group at a time (None when not stored or
    some item is missing)."""
    if not store.exists("aligned_embeddings", month=month):
        return None
    return gather_vectors(store.iter_batches("aligned_embeddings", month=month), ids)


def build(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"scipy", "mlflow"})
    def sid_stability(context: dg.AssetExecutionContext, config: StabilityConfig, semantic_ids: pd.DataFrame,
                      aligned_embeddings: pa.Table, asset_store: AssetStoreResource, catalog: CatalogResource,
                      mlflow_registry: MlflowRegistry, compute_engine: ComputeEngineResource) -> dg.MaterializeResult:
        """The published IDs of this month against those of an earlier month, on the items both hold:
        per prefix length the share kept literally (``raw_unchanged``: what tables keyed by SID see) beside
        the share kept after the best renaming (``matched_kept``), ARI, NMI, AMI, prefix-neighbour Jaccard,
        code-usage drift; plus embedding kNN overlap. Within a generation the literal share is 1."""
        month, method, store = month_of(context), method_of(context), asset_store.store()
        earlier = MethodHistory(store, method).earlier(month, config.months_back)
        if earlier is None:
            return dg.MaterializeResult(value=pd.DataFrame({"prefix_length": pd.Series(dtype="int64")}), metadata={
                "compared_with": "none: no earlier month is published"})
        before, now = published(earlier.table), published(semantic_ids)
        report, figures = compare_versions(before.item_ids, before.codes, now.item_ids, now.codes)
        # Both months' vectors of the common items only: two whole catalogues' and their copies
        # were 13.5 GB at 1M items.
        common = common_item_ids(before.item_ids, now.item_ids)
        emb_a = _earlier_vectors(store, earlier.month, common)
        if emb_a is not None:
            figures.update(knn_figures(emb_a, vectors_of(aligned_embeddings, common), knn_sample=config.knn_sample,
                                       knn_k=config.knn_k, seed=config.seed, knn=compute_engine.knn_overlap()))
        gap, levels = months_apart(earlier.month, month), now.levels
        links = _attach(mlflow_registry, catalog, month, method, earlier.month, report.table, figures, gap)
        return dg.MaterializeResult(value=report.table.assign(earlier_month=earlier.month), metadata={
            **links, "literal_kept_full": md.number(report.figure("raw_unchanged", levels)),
            "matched_kept_full": md.number(report.figure("matched_kept", levels)),
            "ari_prefix_1": md.number(report.figure("ari", 1)), "compared_with_month": earlier.month,
            "months_apart": gap, "items_common": int(figures["items_common"]),
            **({"knn_overlap": md.number(figures["knn_overlap"])} if "knn_overlap" in figures else {}),
            "stability": md.table(report.table)})

    return [sid_stability]


def _attach(mlflow_registry, catalog, month, method, earlier, table, figures, gap) -> dict:
    """The figures and the agreement plot on the month's tokenizer run; its link."""
    metrics = {f"stability_{column}_p{row.prefix_length}": float(getattr(row, column))
               for row in table.itertuples(index=False)
               for column in ("ari", "nmi", "ami", "matched_kept", "prefix_jaccard", "usage_jsd", "raw_unchanged")}
    metrics.update(stability_months_apart=float(gap), stability_items_common=float(figures["items_common"]))
    with tempfile.TemporaryDirectory() as tmp:
        png = agreement_plot(table, f"{method}: {earlier} → {month}", Path(tmp) / "stability.png")
        return mlflow_registry.attach(VersionKey(catalog.source().name, month, method), metrics, [png],
                                      artifact_path="stability")
