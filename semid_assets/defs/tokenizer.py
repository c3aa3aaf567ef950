"""Stage 5 — per-version tokenizers (registered in MLflow) and the semantic-ID tables."""


import dagster as dg
import pandas as pd
import pyarrow as pa

from semid_assets.core.embedding_table import embeddings_from_arrow
from semid_assets.core.markdown import markdown_table
from semid_assets.core.methods import make_tokenizer
from semid_assets.core.metrics import level_report
from semid_assets.core.sids import semantic_id_table
from semid_assets.defs.anchoring import fit_tokenizer
from semid_assets.partitions import SemidPartitions, method_of, month_of
from semid_assets.resources import CatalogResource, MlflowRegistry

GROUP = "tokenizer"


class TokenizerConfig(dg.Config):
    """Shape and training of the residual quantiser (OneRec uses 3 × 8192 on a far larger catalogue)."""

    levels: int = 3
    codebook_size: int = 256
    n_iter: int = 20
    seed: int = 0
    max_points_per_centroid: int = 256
    """k-means at each level trains on at most this many sampled points per centroid
    (faiss's default); every item is still encoded."""
    progressive_dim_steps: int = 10
    """Progressive-dimension k-means per level (faiss's residual-quantizer training); 0 =
    plain Lloyd, which can collapse a level on near-orthogonal residuals."""
    anchor_to_previous: bool = True
    """Warm-start from the newest stored earlier version of this method and keep its code labels
    (optimal matching), so SIDs — and embedding tables keyed by them — survive retraining. On the
    default data it keeps most items' SIDs for a small MSE cost (README, "Anchored retraining")."""


def config_class(default_codebook_size: int) -> type[TokenizerConfig]:
    """The config with this dataset's default codebook size, so the UI launchpad shows it."""
    return type("TokenizerConfig", (TokenizerConfig,), {
        "__annotations__": {"codebook_size": int}, "codebook_size": default_codebook_size,
        "__doc__": TokenizerConfig.__doc__})


def model_name(dataset: str, method: str) -> str:
    return f"semid-{dataset}-{method}"


def _level_metrics(report: pd.DataFrame) -> dict[str, float]:
    metrics = {}
    for row in report.itertuples(index=False):
        for column in ("mse", "relative_mse", "utilisation", "entropy", "entropy_norm", "collision_rate",
                       "largest_group"):
            metrics[f"{column}_l{row.level}"] = float(getattr(row, column))
    return metrics


def build(parts: SemidPartitions, default_codebook_size: int = 256) -> list:
    Config = config_class(default_codebook_size)

    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"faiss", "mlflow"})
    def tokenizer(context: dg.AssetExecutionContext, config: Config, aligned_embeddings: pa.Table,
                  catalog: CatalogResource, mlflow_registry: MlflowRegistry) -> dg.MaterializeResult:
        """A fitted residual quantiser for this month's items — one tokenizer version.

        Logged as an MLflow run (params, per-level metrics, codebooks) and registered as a
        model version that encodes embeddings to codes and decodes codes to vectors; the
        alias ``newest`` follows the newest month.
        """
        month, method = month_of(context), method_of(context)
        item_ids, vectors = embeddings_from_arrow(aligned_embeddings)
        model = make_tokenizer(method, levels=config.levels, codebook_size=config.codebook_size,
                               n_iter=config.n_iter, seed=config.seed,
                               max_points_per_centroid=config.max_points_per_centroid,
                               progressive_dim_steps=config.progressive_dim_steps)
        context.log.info(f"fitting {method} {config.levels}×{config.codebook_size} on "
                         f"{len(vectors)} items × {vectors.shape[1]} dims")
        dataset = catalog.source().name
        codes, anchoring = fit_tokenizer(context, parts, model, vectors, month, method, dataset,
                                         config.anchor_to_previous)
        report = level_report(vectors, codes, model.codebooks)
        name = model_name(dataset, method)
        registry = mlflow_registry.registry()
        version = registry.log_tokenizer(
            model, model_name=name, run_name=f"{method}-{month}",
            params={**config.model_dump(), "method": method, "n_items": len(vectors), "dim": vectors.shape[1],
                    "anchored_to": str(anchoring["anchored_to"])[:250]},
            metrics={**_level_metrics(report), "fit_seconds": float(model.fit_info.get("seconds", 0.0))},
            tags={"month": month, "method": method, "dataset": dataset, "dagster_run_id": context.run.run_id,
                  "dagster_asset": "tokenizer", "dagster_partition": str(context.partition_key)},
            tables={"levels": report})
        moved = registry.move_alias_if_newer(name, version.version, month)
        context.log.info(f"registered {name} version {version.version}"
                         + (" (alias newest)" if moved else " (newest stays on a later month)"))
        return dg.MaterializeResult(value=model, metadata={
            "levels": dg.MetadataValue.md(markdown_table(report)),
            "level_metrics": dg.MetadataValue.json(report.to_dict(orient="records")),
            "fit_seconds": float(model.fit_info.get("seconds", 0.0)),
            "n_items": len(vectors),
            "mlflow_run": dg.MetadataValue.url(mlflow_registry.run_url(version.experiment_id, version.run_id)),
            "mlflow_model_version": dg.MetadataValue.url(
                mlflow_registry.model_version_url(version.model_name, version.version)),
            "model_uri": f"models:/{version.model_name}/{version.version}",
            **anchoring,
        })

    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"parquet"})
    def semantic_ids(context: dg.AssetExecutionContext, tokenizer, aligned_embeddings: pa.Table) -> dg.MaterializeResult:
        """``item_id → (c1 … cL, suffix)``: every item's codes under this tokenizer version;
        ``suffix`` numbers the items that share a full code tuple (0 when unique), oldest first."""
        item_ids, vectors = embeddings_from_arrow(aligned_embeddings)
        codes = tokenizer.encode(vectors)
        table = semantic_id_table(item_ids, codes)
        collided = table["suffix"].to_numpy() > 0
        groups = table.groupby([f"c{i + 1}" for i in range(codes.shape[1])]).size()
        context.log.info(f"{len(table)} semantic IDs, {int(collided.sum())} needed a suffix")
        return dg.MaterializeResult(value=table, metadata={
            "dagster/row_count": len(table),
            "collision_rate": float(collided.mean()) if len(table) else 0.0,
            "largest_group": int(groups.max()) if len(groups) else 0,
            "distinct_sids": int(len(groups)),
            "sample": dg.MetadataValue.md(markdown_table(table.head(8))),
        })

    return [tokenizer, semantic_ids]
