"""Stage 5 — per-version tokenizers (registered in MLflow) and the semantic-ID tables."""


import time
from typing import Literal

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pydantic

from semid_assets.config import config_class, to_options
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.markdown import markdown_table
from semid_assets.core.options import options_of
from semid_assets.core.tokenizers.base import QuantiserOptions
from semid_assets.core.tokenizers.collisions import reassign_collisions
from semid_assets.core.tokenizers.methods import METHODS, make_tokenizer, tokenizer_class
from semid_assets.core.tokenizers.metrics import collision_stats
from semid_assets.core.tokenizers.sids import semantic_id_table
from semid_assets.defs.anchoring import fit_tokenizer
from semid_assets.partitions import SemidPartitions, method_of, month_of
from semid_assets.resources import CatalogResource, MlflowRegistry

GROUP = "tokenizer"


_PIPELINE_FIELDS = {
    "anchor_to_previous": (bool, pydantic.Field(default=True, description=(
        "Warm-start from the newest stored earlier version of this method and keep its code labels "
        "(optimal matching), so SIDs — and embedding tables keyed by them — survive retraining. The k-means "
        "methods start from the earlier partition carried into this month's space; RQ-VAE/LETTER warm-start "
        "the whole model (encoder, decoder, codebooks; same shape needed) and keep fewer full SIDs. "
        "A version of another shape is not anchored (the run says why)."))),
    "anchor_iterations": (int, pydantic.Field(default=3, ge=1, description=(
        "k-means methods: Lloyd iterations per level after an anchored warm start (an unanchored fit runs "
        "its n_iter; RQ-VAE/LETTER train their epochs). Every iteration lets more border items change code "
        "for little gain in error."))),
}
_SHARED = tuple(option.name for option in options_of(QuantiserOptions))


def _section(method: str) -> type[dg.Config]:
    cls = tokenizer_class(method)
    summary = (cls.__doc__ or "").strip().splitlines()[0]
    return config_class(f"{cls.__name__}Config", cls.Options, exclude=_SHARED,
                        doc=f"Options of {method} only ({summary}); shared options are set at the top level.")


def tokenizer_config_class(default_codebook_size: int = 256) -> type[dg.Config]:
    """The tokenizer asset's launchpad config: the options every method shares at the top level (with this
    dataset's default ``codebook_size``), one section per method holding that method's own options, and the
    pipeline's anchoring fields. Each field's default and description come from the library's options."""
    return config_class(
        "TokenizerConfig", QuantiserOptions, defaults={"codebook_size": default_codebook_size},
        sections={method: _section(method) for method in METHODS}, extra=_PIPELINE_FIELDS,
        doc="Shape and training of the residual quantiser (OneRec uses 3 × 8192 on a far larger catalogue). "
            "The method partition picks which section applies.")


TokenizerConfig = tokenizer_config_class()


def tokenizer_options(config: dg.Config, method: str) -> QuantiserOptions:
    """The options of ``method`` from a tokenizer config: the shared fields plus that method's section."""
    shared = {name: getattr(config, name) for name in _SHARED}
    return to_options(getattr(config, method), tokenizer_class(method).Options, **shared)


class SemanticIdConfig(dg.Config):
    collision_strategy: Literal["suffix", "reassign"] = "suffix"
    """``suffix``: keep the codes, the ``suffix`` column numbers items sharing a tuple.
    ``reassign``: later items of a shared tuple move to their nearest free last-level code
    (L tokens kept); ``suffix`` then only separates items with no free candidate."""
    reassign_candidates: int = 16
    """Nearest last-level codes a colliding item may move to."""


def _collaborative_rows(item_ids: np.ndarray, collaborative_embeddings: pa.Table, month: str) -> np.ndarray:
    """The collaborative embedding of every item of ``item_ids``, in that order."""
    cf_ids, cf_vectors = embeddings_from_arrow(collaborative_embeddings)
    rows = pd.Index(cf_ids).get_indexer(item_ids)
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} item(s) of aligned_embeddings have no row in "
                         f"collaborative_embeddings [{month}]; rematerialise collaborative_embeddings")
    return cf_vectors[rows]


# How the asset provides each side input a method may declare (``Tokenizer.side_inputs``).
_SIDE_INPUTS = {"collaborative": _collaborative_rows}


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
    Config = tokenizer_config_class(default_codebook_size)

    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"faiss", "torch", "mlflow"})
    def tokenizer(context: dg.AssetExecutionContext, config: Config, aligned_embeddings: pa.Table,
                  collaborative_embeddings: pa.Table, catalog: CatalogResource,
                  mlflow_registry: MlflowRegistry) -> dg.MaterializeResult:
        """A fitted residual quantiser for this month's items — one tokenizer version.

        The ``method`` partition picks RQ-Kmeans, balanced RQ-Kmeans, RQ-VAE or LETTER
        (which alone reads ``collaborative_embeddings``). Logged as an MLflow run (params,
        per-level metrics, codebooks) and registered as a model version that encodes
        embeddings to codes and decodes codes to vectors; the alias ``newest`` follows the
        newest month.
        """
        month, method = month_of(context), method_of(context)
        item_ids, vectors = embeddings_from_arrow(aligned_embeddings)
        model = make_tokenizer(method, tokenizer_options(config, method))
        side = {name: _SIDE_INPUTS[name](item_ids, collaborative_embeddings, month) for name in model.side_inputs}
        context.log.info(f"fitting {model!r} on {len(vectors)} items × {vectors.shape[1]} dims")
        dataset = catalog.source().name
        codes, anchoring = fit_tokenizer(context, parts, model, vectors, month, method, dataset,
                                         config.anchor_to_previous, item_ids,
                                         anchor_iterations=config.anchor_iterations, **side)
        report = model.level_report(vectors, codes)
        name = model_name(dataset, method)
        registry = mlflow_registry.registry()
        version = registry.log_tokenizer(
            model, model_name=name, run_name=f"{method}-{month}",
            params={**model.get_params(), "anchor_to_previous": config.anchor_to_previous,
                    "anchor_iterations": config.anchor_iterations, "method": method, "n_items": len(vectors),
                    "dim": vectors.shape[1], "anchored_to": str(anchoring["anchored_to"])[:250]},
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
    def semantic_ids(context: dg.AssetExecutionContext, config: SemanticIdConfig, tokenizer,
                     aligned_embeddings: pa.Table) -> dg.MaterializeResult:
        """``item_id → (c1 … cL, suffix)``: every item's codes under this tokenizer version,
        collisions handled by ``collision_strategy``; ``suffix`` numbers the items that still
        share a full code tuple (0 when unique), oldest first."""
        item_ids, vectors = embeddings_from_arrow(aligned_embeddings)
        started = time.perf_counter()
        codes = tokenizer.encode_catalogue(vectors)
        encode_seconds = time.perf_counter() - started
        rate_before, largest_before = collision_stats(codes)
        resolution = {"collision_rate_before": rate_before, "largest_group_before": largest_before}
        if config.collision_strategy == "reassign":
            codes, resolution = reassign_collisions(
                codes, tokenizer.last_level_candidates(vectors, codes, config.reassign_candidates))
        table = semantic_id_table(item_ids, codes)
        collided = table["suffix"].to_numpy() > 0
        groups = table.groupby([f"c{i + 1}" for i in range(codes.shape[1])]).size()
        context.log.info(f"{len(table)} semantic IDs ({config.collision_strategy}), "
                         f"{int(collided.sum())} needed a suffix")
        return dg.MaterializeResult(value=table, metadata={
            "dagster/row_count": len(table),
            "collision_strategy": config.collision_strategy,
            "collision_rate": float(collided.mean()) if len(table) else 0.0,
            "largest_group": int(groups.max()) if len(groups) else 0,
            "collision_rate_before": float(resolution["collision_rate_before"]),
            "largest_group_before": int(resolution["largest_group_before"]),
            **({"moved_to_free_code": int(resolution["moved"]), "no_free_code": int(resolution["stuck"])}
               if "moved" in resolution else {}),
            "distinct_sids": int(len(groups)),
            "encode_seconds": round(encode_seconds, 4),
            "sample": dg.MetadataValue.md(markdown_table(table.head(8))),
        })

    return [tokenizer, semantic_ids]
