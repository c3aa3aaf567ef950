"""Stage 4 — the QFormer aligner of each month, the aligner that serves, and the aligned embeddings."""

import dagster as dg
import numpy as np
import pyarrow as pa
import pydantic

from semid_assets import metadata as md
from semid_assets.compute import ComputeEngineResource
from semid_assets.config import config_class, to_options
from semid_assets.core.alignment.captions import caption_column
from semid_assets.core.alignment.config import AlignerTrainConfig
from semid_assets.core.alignment.content import is_trained
from semid_assets.core.alignment.reuse import embed_reusing
from semid_assets.core.data import schema
from semid_assets.core.data.embedding_table import embeddings_to_arrow
from semid_assets.core.features.multimodal import MultimodalFeatures, text_columns_of
from semid_assets.core.lifecycle.serving import CANDIDATE_VECTORS, align_and_serve, serving_month, stored_vectors
from semid_assets.core.lifecycle.versions import ALIGNER, SERVING_ALIAS, VersionKey, previous_month
from semid_assets.partitions import SemidPartitions, month_of
from semid_assets.resources import (AlignerGateResource, AssetStoreResource, CatalogResource, MlflowRegistry,
                                    TextEncoderResource)

GROUP = "alignment"
CANDIDATE, SERVING = "aligner_candidate", "aligner"

AlignerConfig = config_class("AlignerConfig", AlignerTrainConfig, extra={
    "holdout": (float, pydantic.Field(0.1, description="Share of distinct pairs held out of training (by a stable "
                                      "hash of the pair) to judge the aligner.")),
    "caption_holdout": (float, pydantic.Field(0.1, description="Share of items (by id hash) whose captions never "
                                              "train the caption loss.")),
    "caption_column": (str | None, pydantic.Field(None, description="Text column the caption loss predicts; default "
                                                  "`caption` when present, else the first text column.")),
    "heldout_sample": (int | None, pydantic.Field(None, ge=1, description="Judge the aligner on at most this many "
                       "held-out pairs (and held-out caption items), the same ones every month (lowest stable "
                       "hash); unset: all of them. Each judged pair costs an exact search over every item in "
                       "each space compared, which a large catalogue cannot afford for all of them.")),
    "warm_start": (bool, pydantic.Field(True, description="Continue training from the newest earlier month's "
                                        "aligner instead of from scratch.")),
})


def _captions(raw_items: pa.Table, config, text_encoder: TextEncoderResource):
    column = caption_column(text_columns_of(raw_items), config.caption_column)
    if column is None or config.caption_weight <= 0:
        return column, None
    return column, text_encoder.encoder().tokenize([t or "" for t in raw_items.column(column).to_pylist()])


def _stored_before(store, asset: str, month: str):
    found = previous_month(month, store.months(asset))
    return None if found is None else store.read_artifact(asset, month=found)


def _register(context, mlflow_registry, path, done, month: str, dataset: str) -> dict:
    """The trained candidate as a version of ``semid-<dataset>-aligner``; ``serving`` moves when it serves."""
    key = VersionKey(dataset, month, ALIGNER)
    result = done.result
    registry = mlflow_registry.registry()
    version = registry.register_aligner(
        path, result.history, model_name=key.model_name, run_name=f"aligner-{month}",
        params={**context.op_config, "n_items": len(result.vectors), "out_dim": result.aligner.out_dim},
        metrics=result.metrics, tags={**key.tags(), "serving": str(done.serving.accepted).lower(),
                                      "dagster_run_id": context.run.run_id},
        tables={"retrieval": result.retrieval, "captions": result.captions})
    if done.serving.accepted:
        registry.move_alias_if_newer(key.model_name, version.version, month, alias=SERVING_ALIAS)
    return md.links(mlflow_run=mlflow_registry.run_url(version.experiment_id, version.run_id),
                    mlflow_model_version=mlflow_registry.model_version_url(version.model_name, version.version))


def _serving_links(mlflow_registry, dataset: str, serving) -> dict:
    """The registered version of the serving aligner (none while the content embedding serves)."""
    month = serving_month(serving)
    if month is None:
        return {}
    key = VersionKey(dataset, month, ALIGNER)
    version = mlflow_registry.registry().find_version(key.model_name, month)
    if version is None:
        return {}
    return md.links(mlflow_model_version=mlflow_registry.model_version_url(version.model_name, version.version),
                    mlflow_run=mlflow_registry.run_url(version.experiment_id, version.run_id))


def _candidate_metadata(done) -> dict:
    if not done.trained:
        return {"trained": False, "verdict": done.summary}
    result = done.result
    rows = result.retrieval.set_index("aligner")
    return {"heldout_recall_at_10": md.number(rows.loc["qformer", "heldout_recall@10"]),
            "trained": True, "serves": done.serving.accepted, "verdict": done.summary,
            "retrieval": md.table(result.retrieval), "train_seconds": md.number(result.metrics["train_seconds"]),
            "pairs_train": int(result.metrics["pairs_train"]), "pairs_heldout": int(result.metrics["pairs_heldout"]),
            **({"moved_from_previous": md.number(result.metrics["moved_from_previous"])}
               if "moved_from_previous" in result.metrics else {})}


def build(parts: SemidPartitions) -> list:
    @dg.multi_asset(
        specs=[dg.AssetSpec(CANDIDATE, group_name=GROUP, kinds={"torch", "mlflow"},
                            deps=["multimodal_features", "item_pairs", "raw_items"], description="The QFormer trained on the month's item pairs (warm-started from the "
                                        "newest earlier one), registered in MLflow whether or not it serves."),
               dg.AssetSpec(SERVING, group_name=GROUP, kinds={"torch"}, deps=[CANDIDATE],
                            description="The aligner whose space the month's embeddings live in: the new one "
                                        "when it beats the content embedding and the serving aligner on "
                                        "held-out pairs beyond noise, else the one serving already.")],
        partitions_def=parts.month, can_subset=False,
        ins={"multimodal_features": dg.AssetIn(), "item_pairs": dg.AssetIn()})
    def aligners(context: dg.AssetExecutionContext, config: AlignerConfig, multimodal_features: MultimodalFeatures,
                 item_pairs, text_encoder: TextEncoderResource, catalog: CatalogResource,
                 asset_store: AssetStoreResource, mlflow_registry: MlflowRegistry,
                 aligner_gate: AlignerGateResource):
        """Train, judge, and pick the serving aligner of the month (see the two assets' descriptions)."""
        month, store = month_of(context), asset_store.store()
        # The catalogue's text columns (for captions) and evaluation labels, without its vectors.
        raw_items = store.read_table("raw_items", month=month, columns=[
            c for c in store.columns("raw_items", month=month) if not c.startswith(schema.EMBEDDING_PREFIX)])
        column, token_ids = _captions(raw_items, config, text_encoder)
        topics = (np.asarray(raw_items.column(schema.TRUTH_TOPIC).to_pylist()).astype(str)
                  if schema.TRUTH_TOPIC in raw_items.column_names else None)
        done = align_and_serve(
            multimodal_features, item_pairs, to_options(config, AlignerTrainConfig), month=month,
            gate=aligner_gate.options(), previous_candidate=_stored_before(store, CANDIDATE, month),
            previous_serving=_stored_before(store, SERVING, month), holdout=config.holdout,
            warm_start=config.warm_start, store=text_encoder.store(), log=context.log.info,
            caption_token_ids=token_ids, caption_column=column, topics=topics, caption_holdout=config.caption_holdout,
            heldout_sample=config.heldout_sample, stored_vectors=lambda aligner: stored_vectors(store, aligner))
        path = store.write_artifact(CANDIDATE, done.candidate, month=month)
        if done.trained:
            # aligned_embeddings (when it serves) and next month's warm start take them instead of embedding again.
            store.write_table(CANDIDATE_VECTORS, embeddings_to_arrow(multimodal_features.item_ids, done.result.vectors),
                              month=month)
        links = _register(context, mlflow_registry, path, done, month, catalog.source().name) if done.trained else {}
        yield dg.MaterializeResult(asset_key=CANDIDATE, metadata={
            **links, **_candidate_metadata(done), "path": dg.MetadataValue.path(str(path))})
        serving = done.serving.serving
        path = store.write_artifact(SERVING, serving, month=month)
        yield dg.MaterializeResult(asset_key=SERVING, metadata={
            **_serving_links(mlflow_registry, catalog.source().name, serving),
            "serving_aligner_month": serving_month(serving) or "none (content embedding)",
            "changed_this_month": done.serving.accepted, "verdict": done.serving.summary,
            "path": dg.MetadataValue.path(str(path))})

    @dg.asset(partitions_def=parts.month, group_name=GROUP, kinds={"torch"})
    def aligned_embeddings(context: dg.AssetExecutionContext, multimodal_features: MultimodalFeatures,
                           aligner, text_encoder: TextEncoderResource, asset_store: AssetStoreResource,
                           compute_engine: ComputeEngineResource) -> dg.MaterializeResult:
        """One float32 unit vector per item from the month's serving aligner: the input of every tokenizer.

        While the serving aligner does not change, neither does any earlier item's vector: those the
        serving aligner stored in an earlier month are taken from there, only the others embedded."""
        store = text_encoder.store()
        stored = stored_vectors(asset_store.store(), aligner)
        vectors = embed_reusing(multimodal_features.item_ids, stored, lambda rows: compute_engine.embed(
            aligner, multimodal_features, store=store, rows=rows))
        context.log.info(f"{len(vectors)} items × {vectors.shape[1]} dims from "
                         f"{'the ' + serving_month(aligner) + ' aligner' if is_trained(aligner) else 'the content embedding'}")
        return dg.MaterializeResult(value=embeddings_to_arrow(multimodal_features.item_ids, vectors), metadata={
            "dagster/row_count": len(vectors), "dim": int(vectors.shape[1]),
            "serving_aligner_month": serving_month(aligner) or "none (content embedding)"})

    return [aligners, aligned_embeddings]
