"""Stage 5 — per-version tokenizers (registered in MLflow) and the semantic-ID tables."""


import time
from typing import Literal

import dagster as dg
import pandas as pd
import pyarrow as pa

from semid_assets.core.tokenizers.collisions import reassign_collisions
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.markdown import markdown_table
from semid_assets.core.tokenizers.residual import encode_catalogue
from semid_assets.core.tokenizers.methods import (candidates_for, make_tokenizer, needs_collaborative,
                                       tokenizer_level_report)
from semid_assets.core.tokenizers.metrics import collision_stats
from semid_assets.core.tokenizers.sids import semantic_id_table
from semid_assets.defs.anchoring import fit_tokenizer
from semid_assets.partitions import SemidPartitions, method_of, month_of
from semid_assets.resources import AssetStoreResource, CatalogResource, MlflowRegistry

GROUP = "tokenizer"


class TokenizerConfig(dg.Config):
    """Shape and training of the residual quantiser (OneRec uses 3 × 8192 on a far larger catalogue).

    One config for every method: each takes the fields its constructor names
    (``core/tokenizers/methods.py``); the others are ignored. Shared: ``levels``, ``codebook_size``,
    ``seed``, ``beam_size``. k-means methods: ``n_iter``, ``max_points_per_centroid``,
    ``progressive_dim_steps`` (``rq_kmeans``), ``balance_slack`` (``rq_kmeans_balanced``).
    RQ-VAE and LETTER: ``latent_dim``, ``hidden_dims``, ``epochs``, ``batch_size``, ``lr``,
    ``beta``, ``dead_code_reset``, ``n_threads``; LETTER adds ``cf_weight``,
    ``diversity_weight``, ``diversity_clusters``, ``temperature``.
    """

    levels: int = 3
    codebook_size: int = 256
    n_iter: int = 20
    """Lloyd iterations per level (k-means methods)."""
    seed: int = 0
    max_points_per_centroid: int = 256
    """k-means at each level trains on at most this many sampled points per centroid
    (faiss's default); every item is still encoded."""
    progressive_dim_steps: int = 10
    """Progressive-dimension k-means per level (faiss's residual-quantizer training); 0 =
    plain Lloyd, which can collapse a level on near-orthogonal residuals."""
    beam_size: int = 1
    """Paths kept per level when encoding (1 = greedy); training is unchanged."""
    balance_slack: float = 0.0
    """rq_kmeans_balanced: a code holds at most ceil(n / K × (1 + slack)) items; 0 = equal split."""
    latent_dim: int = 128
    """RQ-VAE/LETTER: the quantised latent's width (the Google setting: 256)."""
    hidden_dims: list[int] = [512]
    """RQ-VAE/LETTER: encoder hidden widths (decoder mirrored); [] = one linear layer each way."""
    epochs: int = 6
    """RQ-VAE/LETTER training epochs: about 25 s for 20k items × 1.1k dims on one core."""
    batch_size: int = 512
    lr: float = 1e-3
    beta: float = 0.25
    """RQ-VAE commitment weight."""
    dead_code_reset: bool = True
    """RQ-VAE/LETTER: move codes unused for a while onto random batch residuals."""
    warm_lr_scale: float = 0.1
    """RQ-VAE/LETTER anchored (warm-started) fits train at ``lr`` × this: fewer border items change code."""
    warm_dead_code_reset: bool = False
    """RQ-VAE/LETTER: dead-code resets during an anchored fit (off: a reset re-decides items' IDs)."""
    n_threads: int | None = None
    """torch threads of RQ-VAE/LETTER/BPR (None = 1: faster than 2 on a shared 2-core box)."""
    cf_weight: float = 0.1
    """LETTER: weight of the collaborative InfoNCE term."""
    diversity_weight: float = 0.01
    """LETTER: weight of the code-diversity term."""
    diversity_clusters: int = 10
    """LETTER: constrained k-means groups of each level's code vectors."""
    temperature: float = 0.1
    """LETTER: temperature of both contrastive terms."""

    anchor_to_previous: bool = True
    """Warm-start from the newest stored earlier version of this method and keep its code labels
    (optimal matching), so SIDs — and embedding tables keyed by them — survive retraining. On the
    default data it keeps most items' SIDs for a small MSE cost (README, "Anchored retraining").
    RQ-VAE/LETTER warm-start the whole model (encoder, decoder, codebooks; same shape needed) and
    train their ``epochs``; they keep far fewer full SIDs (README, "Stability over time")."""
    anchor_iterations: int = 3
    """k-means methods: Lloyd iterations per level after an anchored warm start (unanchored fits use
    ``n_iter``; RQ-VAE/LETTER train their ``epochs``). Every
    iteration lets more border items change code for little gain in error: on the default data 3
    iterations keep 90 % of full SIDs, 20 keep 82 %, at the same relative MSE to 3 decimals."""


class SemanticIdConfig(dg.Config):
    collision_strategy: Literal["suffix", "reassign"] = "suffix"
    """``suffix``: keep the codes, the ``suffix`` column numbers items sharing a tuple.
    ``reassign``: later items of a shared tuple move to their nearest free last-level code
    (L tokens kept); ``suffix`` then only separates items with no free candidate."""
    reassign_candidates: int = 16
    """Nearest last-level codes a colliding item may move to."""


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

    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"faiss", "torch", "mlflow"})
    def tokenizer(context: dg.AssetExecutionContext, config: Config, aligned_embeddings: pa.Table,
                  collaborative_embeddings: pa.Table, catalog: CatalogResource,
                  mlflow_registry: MlflowRegistry, asset_store: AssetStoreResource) -> dg.MaterializeResult:
        """A fitted residual quantiser for this month's items — one tokenizer version.

        The ``method`` partition picks RQ-Kmeans, balanced RQ-Kmeans, RQ-VAE or LETTER
        (which alone reads ``collaborative_embeddings``). Logged as an MLflow run (params,
        per-level metrics, codebooks) and registered as a model version that encodes
        embeddings to codes and decodes codes to vectors; the alias ``newest`` follows the
        newest month. The file is written (durably) before it is registered, and registering
        the same content again reuses its version.
        """
        month, method = month_of(context), method_of(context)
        store = asset_store.store()
        store.sweep_temporaries(log=context.log.info)
        item_ids, vectors = embeddings_from_arrow(aligned_embeddings)
        model = make_tokenizer(method, **config.model_dump())
        side = {}
        if needs_collaborative(method):
            cf_ids, cf_vectors = embeddings_from_arrow(collaborative_embeddings)
            rows = pd.Index(cf_ids).get_indexer(item_ids)
            if (rows < 0).any():
                raise ValueError(f"{int((rows < 0).sum())} item(s) of aligned_embeddings have no row in "
                                 f"collaborative_embeddings [{month}]; rematerialise collaborative_embeddings")
            side["collaborative"] = cf_vectors[rows]
        context.log.info(f"fitting {model!r} on {len(vectors)} items × {vectors.shape[1]} dims")
        dataset = catalog.source().name
        codes, anchoring = fit_tokenizer(context, parts, model, vectors, month, method, dataset,
                                         config.anchor_to_previous, item_ids,
                                         anchor_iterations=config.anchor_iterations, **side)
        report = tokenizer_level_report(model, vectors, codes)
        name = model_name(dataset, method)
        registry = mlflow_registry.registry()
        path = store.write_artifact("tokenizer", model, month=month, method=method)
        version = registry.register_tokenizer(
            path, model_name=name, run_name=f"{method}-{month}",
            params={**config.model_dump(), "method": method, "n_items": len(vectors), "dim": vectors.shape[1],
                    "anchored_to": str(anchoring["anchored_to"])[:250]},
            metrics={**_level_metrics(report), "fit_seconds": float(model.fit_info.get("seconds", 0.0))},
            tags={"month": month, "method": method, "dataset": dataset, "dagster_run_id": context.run.run_id,
                  "dagster_asset": "tokenizer", "dagster_partition": str(context.partition_key)},
            tables={"levels": report})
        context.log.info(f"{'same content as' if version.reused else 'registered'} {name} version {version.version}"
                         + (" (alias newest)" if version.newest else " (newest stays on a later month)"))
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(path)),
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
        codes = encode_catalogue(tokenizer, vectors)
        encode_seconds = time.perf_counter() - started
        rate_before, largest_before = collision_stats(codes)
        resolution = {"collision_rate_before": rate_before, "largest_group_before": largest_before}
        if config.collision_strategy == "reassign":
            codes, resolution = reassign_collisions(
                codes, candidates_for(tokenizer, vectors, codes, config.reassign_candidates))
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
