"""Stage 6 — published IDs: what a new generation would gain, the verdict, the table, and migration on a cut."""

import dataclasses
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pydantic

from semid_assets import metadata as md
from semid_assets.compute import ComputeEngineResource
from semid_assets.config import config_class, to_options
from semid_assets.core.alignment.reuse import embed_reusing
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.evaluation.plots import staleness_plot
from semid_assets.core.lifecycle.archive import TOKENIZER, GenerationArchive
from semid_assets.core.lifecycle.generations import FIRST_MONTH, GENERATION, published
from semid_assets.core.lifecycle.migration import (
    migration_summary,
    migration_table,
    prefix_flows,
)
from semid_assets.core.lifecycle.month import (
    Basis,
    heldout_recall,
    judge,
    month_state,
    publication_lock,
    publish,
)
from semid_assets.core.lifecycle.publish import PublishOptions
from semid_assets.core.lifecycle.serving import stored_vectors
from semid_assets.core.lifecycle.staleness import (
    FIGURE_COLUMN,
    FIGURES,
    staleness_over_months,
)
from semid_assets.core.lifecycle.versions import (
    CHAMPION_ALIAS,
    VersionKey,
    generation_alias,
)
from semid_assets.core.tokenizers.sids import SUFFIX
from semid_assets.partitions import SemidPartitions, method_of, month_of
from semid_assets.resources import (
    AssetStoreResource,
    CatalogResource,
    GenerationPolicyResource,
    MlflowRegistry,
    TextEncoderResource,
)

GROUP = "publication"

SemanticIdConfig = config_class("SemanticIdConfig", PublishOptions, exclude=("hysteresis", "cut_generation"))
StalenessConfig = config_class("StalenessConfig", None, doc="How the staleness report measures held-out recall.",
                               extra={
    "holdout": (float, pydantic.Field(0.1, description="Held-out share of the month's pairs (the aligner's split).")),
    "seed": (int, pydantic.Field(0, description="Seed of the held-out split (the aligner's).")),
    "heldout_sample": (int | None, pydantic.Field(None, ge=1, description="At most this many held-out pairs, the "
                       "ones the aligner is judged on (set it as the aligner's); unset: all of them.")),
    "cut_generation": (bool, pydantic.Field(False, description="Cut a new generation this month whatever the "
                                            "figures (the verdict still lists them).")),
})


def _state(context, tokenizer, aligned_embeddings: pa.Table, aligner, asset_store: AssetStoreResource,
           text_encoder: TextEncoderResource, options: PublishOptions, compute_engine: ComputeEngineResource):
    item_ids, vectors = embeddings_from_arrow(aligned_embeddings)
    store = text_encoder.store()

    def embed_in_generation(old):
        # Read only here, when the generation's aligner is not the serving one: gigabytes at a million items.
        features = asset_store.store().read_artifact("multimodal_features", month=month_of(context))
        # The generation's aligner embedded most items already: the month it served in stored them.
        return embed_reusing(features.item_ids, stored_vectors(asset_store.store(), old),
                             lambda rows: compute_engine.embed(old, features, store=store, rows=rows))

    return month_state(asset_store.store(), method_of(context), month_of(context), item_ids=item_ids,
                       serving_vectors=vectors, serving_aligner=aligner, candidate=tokenizer, options=options,
                       embed_in_generation=embed_in_generation, encode_catalogue=compute_engine.encode_catalogue())


def _recall(state, pairs, holdout: float, seed: int, sample: int | None) -> tuple[float, float]:
    """Held-out Recall@10 in the generation's space and the serving one's; NaN when they are one space.
    ``pairs()``: the month's item pairs (read only when the two spaces differ)."""
    if state.models is None or state.view.generation_vectors is state.view.serving_vectors:
        return float("nan"), float("nan")
    ids, pairs = state.view.item_ids, pairs()
    return heldout_recall((state.view.generation_vectors, state.view.serving_vectors), ids, pairs, holdout, seed,
                          sample)


def _stored_sample(row) -> int | None:
    """The held-out sample a stored sid_staleness row was judged with (tables from before it: all pairs)."""
    value = row.get("recall_sample", float("nan"))
    return None if pd.isna(value) else int(value)


def _figures_table(judgement) -> pd.DataFrame:
    # The verdict travels in this table's decision and summary columns, so a verdict that weighs no
    # figure (a backfilled month older than the newest published one) still needs one row.
    rows = judgement.verdict.rows() or [{"kind": "none", "figure": "no figure weighed", "value": float("nan"),
                                         "limit": float("nan"), "rule": "", "met": None}]
    return pd.DataFrame(rows, columns=["kind", "figure", "value", "limit", "rule", "met"])


# What semantic_ids needs to judge the month again when the history changed after sid_staleness judged it.
_JUDGED_WITH = ("cut_requested", "recall_holdout", "recall_seed", "recall_sample")


def _verdict(context, sid_staleness: pd.DataFrame, state, store, policy, options: PublishOptions):
    """``(decision, reason)`` to publish: sid_staleness's verdict while the publications it was judged against
    are still the ones stored, else the month judged again against what is stored now."""
    decision, reason = sid_staleness["decision"].iloc[0], sid_staleness["summary"].iloc[0]
    judged, now = Basis.from_table(sid_staleness), Basis.of(state)
    if judged is None or judged == now:
        return decision, reason
    row = sid_staleness.iloc[0]
    options = dataclasses.replace(options, cut_generation=bool(row["cut_requested"]))
    # item_pairs is sid_staleness's input, so it is stored; read it only on this rare path.
    recall = _recall(state, lambda: store.read_table("item_pairs", month=state.month).to_pandas(),
                     float(row["recall_holdout"]), int(row["recall_seed"]), _stored_sample(row))
    verdict = judge(state, policy, options, recall).verdict
    context.log.warning(f"sid_staleness judged {state.month} against {judged.describe()}; another run has "
                        f"published since ({now.describe()}): judged again, {verdict.decision} instead of {decision}")
    return verdict.decision, verdict.summary


def _staleness_asset(parts: SemidPartitions):
    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"numpy", "mlflow"},
              ins={"item_pairs": dg.AssetIn()}, deps=["multimodal_features"])
    def sid_staleness(context: dg.AssetExecutionContext, config: StalenessConfig, tokenizer,
                      aligned_embeddings: pa.Table, item_pairs: pd.DataFrame, aligner,
                      asset_store: AssetStoreResource, text_encoder: TextEncoderResource,
                      generation_policy: GenerationPolicyResource, mlflow_registry: MlflowRegistry,
                      catalog: CatalogResource, compute_engine: ComputeEngineResource) -> dg.MaterializeResult:
        """What cutting a new generation would gain this month (relative MSE, new items' collisions,
        held-out recall) and cost (literal IDs kept vs the published ones and the generation's origin),
        and the verdict the generation policy gives: keep, cut, or refuse a candidate that would cost
        too much. A backfilled month older than the newest published one is judged "older"."""
        options = PublishOptions(hysteresis=tokenizer.fit_info.get("hysteresis", 0.0),
                                 cut_generation=config.cut_generation)
        state = _state(context, tokenizer, aligned_embeddings, aligner, asset_store, text_encoder, options,
                       compute_engine)
        judgement = judge(state, generation_policy.options(), options,
                          _recall(state, lambda: item_pairs, config.holdout, config.seed, config.heldout_sample))
        context.log.info(judgement.verdict.summary)
        figures = {k: float(v) for k, v in judgement.figures.items() if k in FIGURES}
        table = _figures_table(judgement).assign(
            decision=judgement.verdict.decision, summary=judgement.verdict.summary, **Basis.of(state).columns(),
            **dict(zip(_JUDGED_WITH, (config.cut_generation, config.holdout, config.seed,
                                      float("nan") if config.heldout_sample is None else float(config.heldout_sample)))),
            **{FIGURE_COLUMN.format(k): float(judgement.figures.get(k, float("nan"))) for k in FIGURES})
        history = _history(asset_store.store(), state, table)
        links = _log_to_mlflow(mlflow_registry, catalog, state, figures, history)
        shown = table.drop(columns=["decision", "summary", *Basis.COLUMNS, *_JUDGED_WITH,
                                    *(FIGURE_COLUMN.format(k) for k in FIGURES)])
        return dg.MaterializeResult(value=table, metadata={
            **links, "decision": judgement.verdict.decision, "verdict": judgement.verdict.summary,
            **{name: md.number(value) for name, value in figures.items() if md.number(value) is not None},
            "figures": md.table(shown), "over_months": md.table(history)})

    return sid_staleness


def _semantic_ids_asset(parts: SemidPartitions):
    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"parquet"}, deps=["multimodal_features"])
    def semantic_ids(context: dg.AssetExecutionContext, config: SemanticIdConfig, sid_staleness: pd.DataFrame,
                     tokenizer, aligned_embeddings: pa.Table, aligner,
                     asset_store: AssetStoreResource, text_encoder: TextEncoderResource,
                     generation_policy: GenerationPolicyResource, mlflow_registry: MlflowRegistry,
                     catalog: CatalogResource, compute_engine: ComputeEngineResource) -> dg.MaterializeResult:
        """The published IDs: ``item_id, c1 … cL, suffix, generation, first_month``. Within a generation an
        item keeps its SID literally month after month; new items are encoded by the generation's models.
        On a cut (``sid_staleness``'s verdict) the month's candidate starts the next generation.

        Publishing holds the method's publication lock from reading the history to the last write: the
        generation's models and record first, then this table (durable), then the MLflow aliases."""
        options = to_options(config, PublishOptions, hysteresis=tokenizer.fit_info.get("hysteresis", 0.0))
        store = asset_store.store()
        with publication_lock(store, method_of(context)):
            state = _state(context, tokenizer, aligned_embeddings, aligner, asset_store, text_encoder, options,
                           compute_engine)
            decision, reason = _verdict(context, sid_staleness, state, store, generation_policy.options(), options)
            table, record = publish(state, decision, reason, options)
            if record is not None:
                GenerationArchive(store).save(record, tokenizer, aligner)
            path = store.write_table("semantic_ids", table, month=state.month, method=state.method)
            if record is not None:
                _promote(mlflow_registry, catalog, state, record, store, context)
        generation = int(table[GENERATION].max()) if len(table) else 0
        links = _generation_links(mlflow_registry, catalog, state, generation)
        context.log.info(f"{len(table)} semantic IDs of generation {generation} ({decision})")
        return dg.MaterializeResult(metadata={
            **links, "collision_rate": md.number(float((table[SUFFIX] > 0).mean()) if len(table) else 0.0),
            "path": dg.MetadataValue.path(str(path)),
            "generation": generation, "decision": decision, "dagster/row_count": len(table),
            "new_this_month": int((table[FIRST_MONTH] == month_of(context)).sum()),
            "sample": md.table(table.head(8))})

    return semantic_ids


def _migration_assets(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"parquet"})
    def sid_migration(context: dg.AssetExecutionContext, semantic_ids: pd.DataFrame,
                      asset_store: AssetStoreResource) -> dg.MaterializeResult:
        """On a month that cut a new generation: every item's old SID and new SID (``sid_changed``,
        ``prefix_kept``), so tables keyed by SID can be remapped or warm-started. Empty in other months."""
        from semid_assets.core.lifecycle.history import MethodHistory

        month, method = month_of(context), method_of(context)
        previous = MethodHistory(asset_store.store(), method).previous(month)
        now = published(semantic_ids)
        cut = previous is not None and int(now.generation.max()) != int(published(previous.table).generation.max())
        if not cut:
            empty = migration_table(semantic_ids.head(0), semantic_ids.head(0))
            return dg.MaterializeResult(value=empty, metadata={"generation_cut": False, "items": 0})
        table = migration_table(previous.table, semantic_ids)
        summary = migration_summary(table)
        flows = prefix_flows(table, [1])
        return dg.MaterializeResult(value=table, metadata={
            "generation_cut": True, "items": len(table), "from_month": previous.month,
            "sid_unchanged": md.number(summary["sid_unchanged"]),
            "prefix_kept": md.table(pd.DataFrame([{"length": k.split("_")[1], "unchanged": v}
                                                  for k, v in summary.items() if k.startswith("prefix_")])),
            "largest_prefix_moves": md.table(flows.sort_values("items", ascending=False).head(10))})

    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"parquet"})
    def sid_prefix_migration(sid_migration: pd.DataFrame) -> dg.MaterializeResult:
        """Where the items of each old prefix went on a cut, per prefix length: ``length, old_prefix,
        new_prefix, items, share`` — what warm-starting an embedding table keyed by prefix needs."""
        flows = prefix_flows(sid_migration) if len(sid_migration) else prefix_flows(sid_migration, [])
        return dg.MaterializeResult(value=flows, metadata={"dagster/row_count": len(flows)})

    return [sid_migration, sid_prefix_migration]


def build(parts: SemidPartitions) -> list:
    return [_staleness_asset(parts), _semantic_ids_asset(parts), *_migration_assets(parts)]


def _history(store, state, table: pd.DataFrame) -> pd.DataFrame:
    """The staleness report of every stored month up to this one (this month's from ``table``)."""
    tables = {month: store.read_table("sid_staleness", month=month, method=state.method).to_pandas()
              for month in store.months("sid_staleness", method=state.method) if month < state.month}
    return staleness_over_months({**tables, state.month: table})


def _log_to_mlflow(mlflow_registry: MlflowRegistry, catalog: CatalogResource, state, figures: dict,
                   history: pd.DataFrame) -> dict:
    """The staleness figures as metrics of the month's candidate tokenizer run, with the report over the
    months as a plot (``staleness/staleness_over_months.png``); the links to that model version and run."""
    key = VersionKey(catalog.source().name, state.month, state.method)
    with tempfile.TemporaryDirectory() as tmp:
        png = staleness_plot(history, f"{state.method}: staleness over months",
                             Path(tmp) / "staleness_over_months.png")
        return mlflow_registry.attach(key, {f"staleness_{k}": v for k, v in figures.items()}, [png],
                                      artifact_path="staleness")


def _generation_links(mlflow_registry: MlflowRegistry, catalog: CatalogResource, state, generation: int) -> dict:
    """The link to the model version that holds the published IDs' generation (alias ``gen-N``)."""
    name = VersionKey(catalog.source().name, state.month, state.method).model_name
    version = mlflow_registry.registry().version_by_alias(name, generation_alias(generation)) if generation else None
    if version is None:
        return {}
    return md.links(mlflow_model_version=mlflow_registry.model_version_url(name, str(version.version)))


def _promote(mlflow_registry: MlflowRegistry, catalog: CatalogResource, state, record, store, context) -> None:
    """A cut month's candidate becomes the champion and carries the generation's alias (``gen-N``): the
    version that holds the generation's archived tokenizer, whichever registration came last."""
    key = VersionKey(catalog.source().name, state.month, state.method)
    registry = mlflow_registry.registry()
    frozen = store.path(TOKENIZER, record.origin_month, record.method, suffix=".npz")
    version = registry.version_holding(key.model_name, state.month, frozen)
    if version is None:
        context.log.warning(f"no version of {key.model_name} [{state.month}] holds the generation's tokenizer "
                            f"({frozen}); aliases not moved: rematerialise this month's tokenizer")
        return
    number = record.number
    registry.set_alias(key.model_name, generation_alias(number), version.version)
    registry.move_alias_if_newer(key.model_name, version.version, state.month, alias=CHAMPION_ALIAS)
    context.log.info(f"{key.model_name}@{generation_alias(number)} → version {version.version}")
