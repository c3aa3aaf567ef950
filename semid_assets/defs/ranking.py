"""Stage 6 — downstream proof: does a tokenizer version's SIDs help a ranking model?"""


import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pydantic

from semid_assets.config import config_class, to_options
from semid_assets.core.data import schema
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.evaluation.ranker_config import RankerOptions
from semid_assets.core.evaluation.ranking import SidVersion, evaluate_month, older_version
from semid_assets.core.evaluation.ranking_options import RankingOptions
from semid_assets.core.evaluation.ranking_plot import auc_plot_png
from semid_assets.core.evaluation.ranking_tables import display, shown
from semid_assets.core.evaluation.ranking_verdicts import TOO_FEW
from semid_assets.core.tokenizers.sids import code_columns
from semid_assets.core.lifecycle.versions import model_name
from semid_assets.metadata_tables import table_value
from semid_assets.partitions import SemidPartitions, method_of, month_of
from semid_assets.resources import CatalogResource, MlflowRegistry

GROUP = "evaluation"

RankerConfig = config_class("RankerConfig", RankerOptions)
RankingEvalConfig = config_class(
    "RankingEvalConfig", RankingOptions, exclude=("ranker",), sections={"ranker": RankerConfig},
    extra={"older_months": (int, pydantic.Field(default=3, description=(
        "Stability through the ranker: compare with the tokenizer version this many months earlier (the "
        "registry's oldest earlier version when that month has none); 0 = no comparison.")))})


def ranking_options(config: dg.Config) -> RankingOptions:
    return to_options(config, RankingOptions, ranker=to_options(config.ranker, RankerOptions))


def older_month(month: str, months_back: int, registered: list[str]) -> str | None:
    """The version ``months_back`` months before ``month``, clipped to the registered ones.

    The newest registered month at or before the target; else the oldest registered month
    before ``month``; ``None`` when no earlier version exists.
    """
    earlier = [m for m in registered if m < month]
    if not earlier or months_back < 1:
        return None
    target = (pd.Period(month, freq="M") - months_back).strftime("%Y-%m")
    at_or_before = [m for m in earlier if m <= target]
    return at_or_before[-1] if at_or_before else earlier[0]


def _rows_of(item_ids: np.ndarray, ids, what: str, month: str, fix: str) -> np.ndarray:
    rows = pd.Index(ids).get_indexer(item_ids)
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} catalogue item(s) of {month} lack {what}; {fix}")
    return rows


def summary_of(metadata: dict) -> dict:
    """The row ``semid demo --ranking`` prints: strictly cold AUC of hashing and of the best SID variant."""
    auc = pd.DataFrame([r.data for r in metadata["auc"].records])
    cold = auc[(auc["slice"] == "strictly cold") & ~auc["model"].str.contains("@")].set_index("model")
    numbers = pd.to_numeric(cold["auc"], errors="coerce")
    sid = numbers[numbers.index.str.startswith("sid_")].dropna()
    row = {"strictly cold auc hash": cold.loc["hash", "auc"]}
    row["best sid (strictly cold auc)"] = f"{sid.idxmax()} {sid.max():.4f}" if len(sid) else "too few to decide"
    return row


def _headline(versus_hash: pd.DataFrame) -> dict:
    """The best SID variant's strictly cold gain over hashing, when its interval decides anything."""
    cold = versus_hash[versus_hash["model"].str.startswith("sid_") & (versus_hash["slice"] == "strictly cold")]
    decided = cold[cold["verdict"] != TOO_FEW]
    if not len(decided):
        return {"strictly_cold_verdict": TOO_FEW if len(cold) else "no SID variant trained"}
    best = decided.loc[decided["auc − hash"].idxmax()]
    return {"strictly_cold_gain_over_hash": dg.MetadataValue.float(float(best["auc − hash"])),
            "strictly_cold_verdict": f"{best['model']}: {best['verdict']} than hash"
            if best["verdict"] in ("better", "worse") else f"{best['model']}: {best['verdict']}"}


def _metadata(report, run_url: str) -> dict:
    metadata = {
        "mlflow_run": dg.MetadataValue.url(run_url),
        **_headline(report.versus_hash),
        **report.budget, **report.counts, "anomalies": len(report.anomalies),
        "auc": table_value(shown(report.auc)), "slices": table_value(report.slices),
        "versus_hash": table_value(report.versus_hash), "models": table_value(report.models),
    }
    if len(report.stability):
        metadata["stability"] = table_value(report.stability)
    if report.anomalies:
        metadata["anomaly_causes"] = dg.MetadataValue.md("\n".join(f"- {a.message()}" for a in report.anomalies))
    return metadata


def _older_sids(context, registry, name: str, month: str, months_back: int, vectors: np.ndarray) -> SidVersion | None:
    """The SIDs the version ``months_back`` months earlier gives today's catalogue, if one is registered."""
    old_month = older_month(month, months_back, registry.registered_months(name))
    if old_month is None:
        context.log.info(f"no {name} version before {month} in the registry: stability through the ranker skipped")
        return None
    from semid_assets.registry import load_tokenizer

    version = registry.find_version(name, old_month)
    old_model = load_tokenizer(f"models:/{name}/{version.version}", registry.tracking_uri)
    context.log.info(f"stability through the ranker: {month} SIDs against version {old_month} "
                     f"(model version {version.version})")
    return older_version(old_month, old_model, vectors, month)


def build(parts: SemidPartitions) -> list:
    @dg.asset(
        partitions_def=parts.month_method, group_name=GROUP, kinds={"pytorch", "mlflow"},
        ins={"raw_items": dg.AssetIn(metadata={"columns": [schema.ITEM_ID, schema.CREATED_AT]})})
    def ranking_eval(context: dg.AssetExecutionContext, config: RankingEvalConfig, raw_items: pd.DataFrame,
                     raw_interactions: pd.DataFrame, semantic_ids: pd.DataFrame, tokenizer,
                     aligned_embeddings: pa.Table, catalog: CatalogResource,
                     mlflow_registry: MlflowRegistry) -> dg.MaterializeResult:
        """Ranking AUC with semantic-ID features against random hashing, at one embedding budget.

        A CTR model trained on the impressions before the month predicts the month's labels
        with each item representation: ``hash`` and the SID variants held to a table budget
        sized from the catalogue, the unconstrained ``item_id`` model and ``dense`` content as
        references. AUC on all impressions, on strictly cold items and on items new this
        month, with intervals over users and over items; each variant against ``hash``;
        AUCs below chance flagged with their cause; the SID variants retrained on an older
        tokenizer version's SIDs (stability through the ranker). One MLflow run with the
        tables and the AUC plot.
        """
        month, method = month_of(context), method_of(context)
        options = ranking_options(config)
        item_ids = raw_items[schema.ITEM_ID].to_numpy()
        rows = _rows_of(item_ids, semantic_ids[schema.ITEM_ID], f"a semantic ID in the {method} version", month,
                        f"rematerialise semantic_ids for {month}.")
        levels = tokenizer.codebooks.shape[0]
        current = SidVersion(month, semantic_ids[code_columns(levels)].to_numpy()[rows].astype(np.int64),
                             int(tokenizer.codebooks.shape[1]))
        emb_ids, vectors = embeddings_from_arrow(aligned_embeddings)
        vectors = vectors[_rows_of(item_ids, emb_ids, "an aligned embedding", month,
                                   f"rematerialise aligned_embeddings for {month}.")]

        dataset = catalog.source().name
        registry = mlflow_registry.registry()
        older = (_older_sids(context, registry, model_name(dataset, method), month, config.older_months, vectors)
                 if options.stability_variants else None)
        report = evaluate_month(month, raw_interactions, item_ids, raw_items[schema.CREATED_AT].to_numpy(),
                                current, vectors, older, options, progress=context.log.info,
                                warn=context.log.warning)
        tables = {"auc": shown(report.auc), "slices": report.slices, "versus_hash": report.versus_hash,
                  "models": report.models, "stability": report.stability}
        run_id, experiment_id = registry.log_evaluation(
            run_name=f"ranking-{method}-{month}",
            params={**config.model_dump(), "method": method, **report.budget, **report.counts},
            metrics=report.metrics,
            tags={"month": month, "method": method, "dataset": dataset, "dagster_run_id": context.run.run_id,
                  "dagster_asset": "ranking_eval", "dagster_partition": str(context.partition_key)},
            tables={key: display(table) for key, table in tables.items() if len(table)},
            files={"ranking_auc.png": auc_plot_png(report.intervals, f"ranking AUC, {dataset} {month}, {method}")})
        return dg.MaterializeResult(value=report.auc,
                                    metadata=_metadata(report, mlflow_registry.run_url(experiment_id, run_id)))

    return [ranking_eval]


__all__ = ["build", "older_month", "summary_of", "ranking_options", "RankingEvalConfig"]
