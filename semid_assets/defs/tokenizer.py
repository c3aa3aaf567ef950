"""Stage 5 — the month's candidate tokenizer of each method, registered in MLflow."""

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pydantic

from semid_assets import metadata as md
from semid_assets.compute import ComputeEngineResource
from semid_assets.config import config_class, to_options
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.lifecycle.candidate import choose_codebook_size, fit_candidate
from semid_assets.core.lifecycle.codes_cache import CodesCache
from semid_assets.core.lifecycle.generations import published
from semid_assets.core.lifecycle.history import MethodHistory
from semid_assets.core.lifecycle.hysteresis import candidate_margin
from semid_assets.core.lifecycle.serving import serving_month
from semid_assets.core.lifecycle.versions import VersionKey
from semid_assets.core.options import options_of
from semid_assets.core.tokenizers.base import Anchoring, QuantiserOptions
from semid_assets.core.tokenizers.methods import METHODS, declared, make_tokenizer
from semid_assets.partitions import SemidPartitions, method_of, month_of
from semid_assets.resources import AssetStoreResource, CatalogResource, MlflowRegistry

GROUP = "tokenizer"

_PIPELINE_FIELDS = {
    "codebook_size": (int | None, pydantic.Field(default=None, description=(
        "Codes per level. Unset: the method's earlier version's size (so versions stay anchorable), else the "
        "size rule on this month's catalogue (core/tokenizers/sizing.py). A set value always wins; the run "
        "warns when it fits the catalogue badly and names the rule's size."))),
    "anchor_to_previous": (bool, pydantic.Field(default=True, description=(
        "Anchor the candidate to the published IDs: the k-means methods start from the published partition "
        "carried into this month's space, RQ-VAE/LETTER continue the newest earlier model (same shape "
        "needed); then each level's codes are renamed to match the published ones. A version of another "
        "shape is not anchored (the run says why)."))),
    "anchor_iterations": (int, pydantic.Field(default=1, ge=1, description=(
        "k-means methods: Lloyd iterations per level after the anchored warm start (an unanchored fit runs "
        "its n_iter; RQ-VAE/LETTER train their epochs). Every iteration lets more border items change code "
        "for little gain in error."))),
    "hysteresis": (float | None, pydantic.Field(default=None, ge=0.0, description=(
        "An item keeps its published code at a level unless another code leaves less residual energy by more "
        "than this share of the residual's own energy (0: the candidate's own codes). Unset: the method's "
        "own margin (core/lifecycle/hysteresis.py, CANDIDATE_MARGINS)."))),
}
_SHARED = tuple(option.name for option in options_of(QuantiserOptions))


def _section(method: str) -> type[dg.Config]:
    declaration = declared(method)
    summary = (declaration.options.__doc__ or "").strip().splitlines()[0]
    return config_class(f"{declaration.class_name}Config", declaration.options, exclude=_SHARED,
                        doc=f"{summary} Shared options are set at the top level.")


def tokenizer_config_class(default_codebook_size: int | None = None) -> type[dg.Config]:
    """The tokenizer asset's launchpad config: the options every method shares at the top level, one
    section per method holding that method's own options, and the pipeline's fields (``codebook_size``
    unset by default: the size rule; ``SEMID_CODEBOOK_SIZE`` sets a default). Each library field's
    default and description come from the library's options."""
    extra = dict(_PIPELINE_FIELDS)
    annotation, field = extra["codebook_size"]
    extra["codebook_size"] = (annotation, pydantic.Field(default=default_codebook_size,
                                                         description=field.description))
    return config_class(
        "TokenizerConfig", QuantiserOptions, exclude=("codebook_size",),
        sections={method: _section(method) for method in METHODS}, extra=extra,
        doc="Shape and training of the residual quantiser (OneRec uses 3 × 8192 on a far larger catalogue). "
            "The method partition picks which section applies.")


TokenizerConfig = tokenizer_config_class()


def tokenizer_options(config: dg.Config, method: str, codebook_size: int) -> QuantiserOptions:
    """The options of ``method`` from a tokenizer config: the shared fields plus that method's section."""
    shared = {name: getattr(config, name) for name in _SHARED if name != "codebook_size"}
    return to_options(getattr(config, method), declared(method).options, codebook_size=codebook_size,
                      **shared)


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


def _level_metrics(report: pd.DataFrame) -> dict[str, float]:
    return {f"{column}_l{row.level}": float(getattr(row, column)) for row in report.itertuples(index=False)
            for column in ("mse", "relative_mse", "utilisation", "entropy", "entropy_norm", "collision_rate",
                           "largest_group")}


def _fit(context, config, method: str, month: str, vectors: np.ndarray, item_ids, side: dict, store, encode):
    """The candidate of ``method``: sized, fitted and anchored to the published IDs (``core/lifecycle``)."""
    history = MethodHistory(store, method)
    earlier = history.previous_model(month)
    publication = history.previous(month) if config.anchor_to_previous else None
    size, warning = choose_codebook_size(config.codebook_size, len(vectors), config.levels,
                                         None if earlier is None else earlier[1].codebook_size)
    if warning:
        context.log.warning(warning)
    model = make_tokenizer(method, tokenizer_options(config, method, size))
    context.log.info(f"fitting {model!r} on {len(vectors)} items × {vectors.shape[1]} dims")
    steps = config.anchor_iterations if model.anchoring is Anchoring.CODEBOOKS else None
    codes, anchoring = fit_candidate(
        model, vectors, item_ids, previous=None if earlier is None or not config.anchor_to_previous else earlier[1],
        published=None if publication is None else published(publication.table), steps=steps,
        hysteresis=candidate_margin(method, config.hysteresis), progress=context.log.info,
        encode_catalogue=encode, cache=CodesCache(store.root, month, method), **side)
    anchoring["anchored_to"] = publication.month if anchoring["anchored"] else anchoring["anchored_to"]
    return model, codes, anchoring


def _anchoring_metadata(anchoring: dict) -> dict:
    shown = {"anchored_to": str(anchoring["anchored_to"])}
    if anchoring["anchored"]:
        shown.update(literal_kept=md.number(anchoring["literal_kept"]),
                     literal_kept_before_hysteresis=md.number(anchoring["literal_kept_before_hysteresis"]),
                     warm_start=anchoring["warm_start"])
    return shown


def _materialise(context, config, aligned_embeddings: pa.Table, collaborative: pa.Table | None, asset_store,
                 catalog, mlflow_registry, compute_engine) -> dg.MaterializeResult:
    month, method, store = month_of(context), method_of(context), asset_store.store()
    item_ids, vectors = embeddings_from_arrow(aligned_embeddings)
    side = {name: _SIDE_INPUTS[name](item_ids, collaborative, month) for name in declared(method).side_inputs}
    model, codes, anchoring = _fit(context, config, method, month, vectors, item_ids, side, store,
                                   compute_engine.encode_catalogue())
    report = model.level_report(vectors, codes)
    path = store.write_artifact("tokenizer", model, month=month, method=method)
    key = VersionKey(catalog.source().name, month, method)
    aligner_month = serving_month(store.read_artifact("aligner", month=month))
    version = mlflow_registry.registry().register_tokenizer(
        path, model_name=key.model_name, run_name=f"{method}-{month}",
        params={**model.get_params(), "anchor_to_previous": config.anchor_to_previous,
                "anchor_iterations": config.anchor_iterations,
                "hysteresis": candidate_margin(method, config.hysteresis),
                "n_items": len(vectors), "dim": vectors.shape[1]},
        metrics={**_level_metrics(report), "fit_seconds": float(model.fit_info.get("seconds", 0.0))},
        tags={**key.tags(), "aligner_month": aligner_month or "none", "dagster_run_id": context.run.run_id},
        tables={"levels": report})
    return dg.MaterializeResult(metadata={
        **md.links(mlflow_model_version=mlflow_registry.model_version_url(version.model_name, version.version),
                   mlflow_run=mlflow_registry.run_url(version.experiment_id, version.run_id)),
        "relative_mse": md.number(report["relative_mse"].iloc[-1]), "codebook_size": model.codebook_size,
        "levels": md.table(report), "fit_seconds": md.number(model.fit_info.get("seconds", 0.0)),
        "n_items": len(vectors), **_anchoring_metadata(anchoring), "path": dg.MetadataValue.path(str(path))})


_DESCRIPTION = """The month's candidate tokenizer of one method (RQ-Kmeans, balanced RQ-Kmeans, RQ-VAE or LETTER,
which alone reads ``collaborative_embeddings``): fitted on this month's embeddings and anchored to the
published IDs, it is what a new generation would be cut from. Registered as an MLflow model version
(alias ``newest`` on the newest month)."""


def build(parts: SemidPartitions, default_codebook_size: int | None = None, collaborative: bool = True) -> list:
    """The tokenizer asset; it reads ``collaborative_embeddings`` only when a method that needs them is run."""
    Config = tokenizer_config_class(default_codebook_size)
    spec = dict(partitions_def=parts.month_method, group_name=GROUP, kinds={"faiss", "torch", "mlflow"},
                description=_DESCRIPTION)
    if collaborative:
        @dg.asset(name="tokenizer", **spec)
        def tokenizer(context: dg.AssetExecutionContext, config: Config, aligned_embeddings: pa.Table,
                      collaborative_embeddings: pa.Table, asset_store: AssetStoreResource, catalog: CatalogResource,
                      mlflow_registry: MlflowRegistry, compute_engine: ComputeEngineResource) -> dg.MaterializeResult:
            return _materialise(context, config, aligned_embeddings, collaborative_embeddings, asset_store, catalog,
                                mlflow_registry, compute_engine)
    else:
        @dg.asset(name="tokenizer", **spec)
        def tokenizer(context: dg.AssetExecutionContext, config: Config, aligned_embeddings: pa.Table,
                      asset_store: AssetStoreResource, catalog: CatalogResource,
                      mlflow_registry: MlflowRegistry, compute_engine: ComputeEngineResource) -> dg.MaterializeResult:
            return _materialise(context, config, aligned_embeddings, None, asset_store, catalog, mlflow_registry,
                                compute_engine)
    return [tokenizer]
