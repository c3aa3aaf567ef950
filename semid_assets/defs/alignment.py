"""Stage 4 — the collaborative-aware QFormer aligner and the aligned item representation."""


from typing import Literal

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from semid_assets.core.data import schema
from semid_assets.core.alignment.config import AlignerTrainConfig
from semid_assets.core.alignment.monthly import align_month
from semid_assets.core.alignment.captions import caption_column
from semid_assets.core.data.embedding_table import embeddings_to_arrow
from semid_assets.core.features.multimodal import MultimodalFeatures, text_columns_of
from semid_assets.core.markdown import markdown_table
from semid_assets.partitions import SemidPartitions, month_of
from semid_assets.resources import AssetStoreResource, CatalogResource, MlflowRegistry, TextEncoderResource

GROUP = "alignment"
ALIGNER_METHOD = "aligner"  # model name: semid-<dataset>-aligner


# The library's defaults are the one source; the config restates the fields so the launchpad
# shows them with their docs.
_TRAINING = AlignerTrainConfig()


class AlignerConfig(dg.Config):
    """QFormer shape, losses and training (see ``core/alignment/aligner.py``); the defaults train a 20k-item month in 1-2 min
    on one core."""

    n_queries: int = _TRAINING.n_queries
    n_blocks: int = _TRAINING.n_blocks
    width: int = _TRAINING.width
    heads: int = _TRAINING.heads
    ffn_mult: int = _TRAINING.ffn_mult
    pool: Literal["mean", "concat"] = _TRAINING.pool
    """How the N_q query tokens become one vector: their concatenation (N_q × width dims, default) or
    their mean (width dims). On the default data concatenation found held-out partners more often
    (Recall@10 0.042 vs 0.040, baseline 0.035; see the README)."""
    max_text_tokens: int = _TRAINING.max_text_tokens
    decoder_layers: int = _TRAINING.decoder_layers
    caption_vocab_size: int = _TRAINING.caption_vocab_size
    caption_max_tokens: int = _TRAINING.caption_max_tokens
    caption_column: str | None = None
    """Text column the caption loss predicts; default ``caption`` when present, else the first text column."""
    epochs: float = _TRAINING.epochs
    """Passes over the month's training pairs (sets the step count unless ``steps`` is given)."""
    steps: int | None = _TRAINING.steps
    batch_pairs: int = _TRAINING.batch_pairs
    lr: float = _TRAINING.lr
    weight_decay: float = _TRAINING.weight_decay
    warmup_steps: int = _TRAINING.warmup_steps
    temperature: float = _TRAINING.temperature
    learn_temperature: bool = _TRAINING.learn_temperature
    contrastive_weight: float = _TRAINING.contrastive_weight
    caption_weight: float = _TRAINING.caption_weight
    caption_items_per_step: int = _TRAINING.caption_items_per_step
    stability_weight: float = _TRAINING.stability_weight
    """With ``warm_start``: weight of the term pulling every item's vector toward the previous month's
    aligner's vector of it. 0 lets fine-tuning move the whole space (fine SIDs then churn); larger keeps
    consecutive versions in one space at some cost in held-out recall (trade-off table in the README)."""
    holdout: float = 0.1
    """Share of distinct pairs held out of training (by a stable hash of the pair) for the recall report."""
    caption_holdout: float = 0.1
    """Share of items (by id hash) whose captions never train the caption loss."""
    warm_start: bool = True
    """Start from the previous month's registered aligner (its newest version for that month) instead of
    from scratch; falls back to scratch, with a warning, when there is none. On by default: tokenizer
    anchoring, ``sid_stability`` and the ranker's older-version check compare versions months apart,
    which only means something while consecutive aligners embed into a continuing space."""
    seed: int = _TRAINING.seed
    threads: int | None = _TRAINING.threads
    log_every: int = _TRAINING.log_every


class AlignmentConfig(dg.Config):
    aligner: Literal["qformer", "none"] = "qformer"
    """``qformer``: the month's trained aligner (default). ``none``: the pooled multimodal
    content embedding (the TIGER / Google setting), the baseline the aligner has to beat."""


def _train_config(config: AlignerConfig) -> AlignerTrainConfig:
    fields = set(AlignerTrainConfig.__dataclass_fields__)
    options = config.model_dump()
    missing = sorted(fields - set(options))
    if missing:  # a library option the launchpad cannot set would silently keep its default
        raise TypeError(f"AlignerConfig lacks AlignerTrainConfig field(s) {missing}")
    return AlignerTrainConfig(**{k: v for k, v in options.items() if k in fields})


def _previous_aligner(context, registry, name: str, month: str):
    from semid_assets.registry import load_aligner

    previous = (pd.Period(month, freq="M") - 1).strftime("%Y-%m")
    found = registry.find_version(name, previous)
    if found is None:
        context.log.warning(f"warm_start: no {name} version registered for {previous}; training from scratch")
        return None
    context.log.info(f"warm_start: from {name} version {found.version} ({previous})")
    return load_aligner(f"models:/{name}/{found.version}", registry.tracking_uri)


def build(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month, group_name=GROUP, kinds={"torch", "mlflow"},
              ins={"raw_items": dg.AssetIn(metadata={"exclude_prefixes": [schema.EMBEDDING_PREFIX]})})
    def aligner(context: dg.AssetExecutionContext, config: AlignerConfig, multimodal_features: MultimodalFeatures,
                item_pairs: pd.DataFrame, raw_items: pa.Table, text_encoder: TextEncoderResource,
                catalog: CatalogResource, mlflow_registry: MlflowRegistry,
                asset_store: AssetStoreResource) -> dg.MaterializeResult:
        """The QFormer aligner of this month: N_q learnable queries read each item's multimodal
        token matrix through N_c cross-attention + FFN blocks; trained on the month's item
        pairs with symmetric InfoNCE (in-batch negatives, known pairs never negatives) plus a
        caption next-token loss; a month warm-started from the previous month's aligner adds a
        stability term that keeps item vectors near the previous aligner's, so tokenizer
        versions months apart stay comparable. Logged as an MLflow run with loss curves and
        registered as ``semid-<dataset>-aligner`` (alias ``newest``). The metadata compares it
        with the ``aligner="none"`` content embedding (and the previous aligner) on held-out
        pairs and says how far it moved the space (``moved_from_previous``)."""
        from semid_assets.defs.tokenizer import model_name

        month = month_of(context)
        store = asset_store.store()
        store.sweep_temporaries(log=context.log.info)
        features = multimodal_features
        ids = raw_items.column(schema.ITEM_ID).to_numpy(zero_copy_only=False)
        if not np.array_equal(np.asarray(ids).astype(str), np.asarray(features.item_ids).astype(str)):
            raise ValueError("raw_items and multimodal_features list different items; re-materialise this month.")
        column = caption_column(text_columns_of(raw_items), config.caption_column)
        token_ids = None
        if column is not None and config.caption_weight > 0:
            texts = [t or "" for t in raw_items.column(column).to_pylist()]
            token_ids = text_encoder.encoder().tokenize(texts)
        topics = (np.asarray(raw_items.column(schema.TRUTH_TOPIC).to_pylist()).astype(str)
                  if schema.TRUTH_TOPIC in raw_items.column_names else None)

        dataset = catalog.source().name
        name = model_name(dataset, ALIGNER_METHOD)
        registry = mlflow_registry.registry()
        previous = _previous_aligner(context, registry, name, month) if config.warm_start else None
        result = align_month(features, item_pairs, _train_config(config), caption_token_ids=token_ids,
                             caption_column=column, topics=topics, holdout=config.holdout,
                             caption_holdout=config.caption_holdout, warm_start=previous,
                             store=text_encoder.store(), log=context.log.info)
        model = result.aligner
        truncated = model.truncated_items(features, text_encoder.store())

        from semid_assets.registry import NEWEST_ALIAS

        path = store.write_artifact("aligner", model, month=month)
        version = registry.register_aligner(
            path, result.history, model_name=name, run_name=f"aligner-{month}",
            params={**config.model_dump(), "n_items": features.n_items, "out_dim": model.out_dim,
                    "max_tokens": dict(zip(model.config.modalities, model.config.max_tokens)),
                    "caption_column_used": column or "none"},
            metrics=result.metrics,
            tags={"month": month, "method": ALIGNER_METHOD, "dataset": dataset, "dagster_run_id": context.run.run_id,
                  "dagster_asset": "aligner", "dagster_partition": str(context.partition_key)},
            tables={"retrieval": result.retrieval, "captions": result.captions})
        context.log.info(f"{'same content as' if version.reused else 'registered'} {name} version {version.version}"
                         + (f" (alias {NEWEST_ALIAS})" if version.newest else f" ({NEWEST_ALIAS} stays on a later month)"))
        first, last = result.history.iloc[0], result.history.iloc[-1]
        qformer = result.retrieval.set_index("aligner")
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(path)),
            "retrieval": dg.MetadataValue.md(markdown_table(result.retrieval)),
            "captions": dg.MetadataValue.md(markdown_table(result.captions) if len(result.captions) else "caption loss off"),
            "heldout_recall_at_10": float(qformer.loc["qformer", "heldout_recall@10"]),
            "baseline_heldout_recall_at_10": float(qformer.loc["none", "heldout_recall@10"]),
            "loss_first_last": f"{first['loss']:.4f} → {last['loss']:.4f}",
            "train_seconds": float(model.info["train_seconds"]),
            "pairs_train": int(result.metrics["pairs_train"]),
            "pairs_heldout": int(result.metrics["pairs_heldout"]),
            "out_dim": model.out_dim,
            "caption_column": column or "none",
            "items_truncated": dg.MetadataValue.json(truncated),
            "warm_started": bool(previous is not None),
            **({"moved_from_previous": float(result.metrics["moved_from_previous"])}
               if "moved_from_previous" in result.metrics else {}),
            "mlflow_run": dg.MetadataValue.url(mlflow_registry.run_url(version.experiment_id, version.run_id)),
            "mlflow_model_version": dg.MetadataValue.url(
                mlflow_registry.model_version_url(version.model_name, version.version)),
            "model_uri": f"models:/{version.model_name}/{version.version}",
        })

    @dg.asset(partitions_def=parts.month, group_name=GROUP, kinds={"torch"})
    def aligned_embeddings(context: dg.AssetExecutionContext, config: AlignmentConfig,
                           multimodal_features: MultimodalFeatures, aligner) -> dg.MaterializeResult:
        """One float32 unit vector per item: the input of every tokenizer.

        ``aligner="qformer"``: the month's QFormer applied to every item (the registered model
        version gives the same bits for the same items). ``aligner="none"``: the content
        embedding — each modality's pooled vector, L2-normalised, concatenated with equal weight.
        """
        if config.aligner == "qformer":
            vectors = aligner.embed(multimodal_features, log=context.log.info)
        else:
            vectors = multimodal_features.content_embedding()
        norms = np.linalg.norm(vectors, axis=1)
        context.log.info(f"{len(vectors)} items × {vectors.shape[1]} dims (aligner={config.aligner})")
        return dg.MaterializeResult(
            value=embeddings_to_arrow(multimodal_features.item_ids, vectors),
            metadata={
                "dagster/row_count": len(vectors),
                "dim": int(vectors.shape[1]),
                "aligner": config.aligner,
                "mean_norm": float(norms.mean()) if len(norms) else 0.0,
            })

    return [aligner, aligned_embeddings]
