"""Stage 6 — downstream proof: does a tokenizer version's SIDs help a ranking model?"""


import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from semid_assets.core.data import schema
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.markdown import markdown_table
from semid_assets.core.evaluation.ranker_config import RankerConfig
from semid_assets.core.evaluation.ranking import SID_VARIANTS, VARIANTS, EvalConfig, SidVersion, evaluate_month
from semid_assets.core.evaluation.ranking_plot import auc_plot_png
from semid_assets.core.tokenizers.sids import code_columns
from semid_assets.core.lifecycle.versions import model_name
from semid_assets.partitions import SemidPartitions, method_of, month_of
from semid_assets.resources import CatalogResource, MlflowRegistry

GROUP = "evaluation"


# Defaults come from the library's EvalConfig / RankerConfig; the fields are restated so the
# launchpad shows them.
_EVAL = EvalConfig()


class RankingEvalConfig(dg.Config):
    """The ranking experiment (Singh et al.): which item representations, their budget, the training."""

    variants: list[str] = list(VARIANTS)
    table_size: int = _EVAL.table_size
    """Rows of the hash table, of hashed bigrams and of SentencePiece's vocabulary (same budget)."""
    max_train_rows: int = _EVAL.max_train_rows
    """The most recent impressions before the month the ranker trains on."""
    n_boot: int = _EVAL.n_boot
    history_length: int = _EVAL.history_length
    """The user side reads the items of the user's last this-many clicks (0 = a per-user row only)."""
    older_months: int = 3
    """Stability through the ranker: compare with the tokenizer version this many months
    earlier (the registry's oldest earlier version when that month has none)."""
    stability_variants: list[str] = list(SID_VARIANTS)
    stability_margin: float = _EVAL.stability_margin
    dim: int = _EVAL.ranker.dim
    hidden: int = _EVAL.ranker.hidden
    max_epochs: int = _EVAL.ranker.max_epochs
    batch_size: int = _EVAL.ranker.batch_size
    lr: float = _EVAL.ranker.lr
    weight_decay: float = _EVAL.ranker.weight_decay
    seed: int = _EVAL.ranker.seed
    threads: int = 1

    def eval_config(self) -> EvalConfig:
        return EvalConfig(
            variants=tuple(self.variants), table_size=self.table_size, max_train_rows=self.max_train_rows,
            n_boot=self.n_boot, history_length=self.history_length, stability_variants=tuple(self.stability_variants),
            stability_margin=self.stability_margin,
            ranker=RankerConfig(dim=self.dim, hidden=self.hidden, max_epochs=self.max_epochs,
                                batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                                seed=self.seed, threads=self.threads))


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


def build(parts: SemidPartitions) -> list:
    @dg.asset(
        partitions_def=parts.month_method, group_name=GROUP, kinds={"pytorch", "mlflow"},
        ins={"raw_items": dg.AssetIn(metadata={"columns": [schema.ITEM_ID, schema.CREATED_AT]})})
    def ranking_eval(context: dg.AssetExecutionContext, config: RankingEvalConfig, raw_items: pd.DataFrame,
                     raw_interactions: pd.DataFrame, semantic_ids: pd.DataFrame, tokenizer,
                     aligned_embeddings: pa.Table, catalog: CatalogResource,
                     mlflow_registry: MlflowRegistry) -> dg.MaterializeResult:
        """Ranking AUC with semantic-ID features against random hashing and dense content.

        A CTR model trained on the impressions before the month predicts the month's labels
        with five item representations (``hash``, ``dense``, ``sid_unigram``,
        ``sid_bigram``, ``sid_spm``); AUC overall and on cold items (created this month)
        with user-bootstrap intervals, log-loss, each SID variant against ``hash``, and the
        SID variants retrained on an older tokenizer version's SIDs (stability through the
        ranker). One MLflow run with the tables and the AUC plot.
        """
        month, method = month_of(context), method_of(context)
        eval_config = config.eval_config()
        item_ids = raw_items[schema.ITEM_ID].to_numpy()
        index = pd.Index(semantic_ids[schema.ITEM_ID])
        rows = index.get_indexer(item_ids)
        if (rows < 0).any():
            raise ValueError(f"{int((rows < 0).sum())} catalogue item(s) of {month} have no semantic ID in the "
                             f"{method} version; rematerialise semantic_ids for {month}.")
        levels = tokenizer.codebooks.shape[0]
        current = SidVersion(month, semantic_ids[code_columns(levels)].to_numpy()[rows].astype(np.int64),
                             int(tokenizer.codebooks.shape[1]))
        emb_ids, vectors = embeddings_from_arrow(aligned_embeddings)
        emb_rows = pd.Index(emb_ids).get_indexer(item_ids)
        if (emb_rows < 0).any():
            raise ValueError(f"{int((emb_rows < 0).sum())} catalogue item(s) of {month} lack an aligned embedding; "
                             f"rematerialise aligned_embeddings for {month}.")
        vectors = vectors[emb_rows]

        dataset = catalog.source().name
        name = model_name(dataset, method)
        registry = mlflow_registry.registry()
        older = None
        old_month = older_month(month, config.older_months, registry.registered_months(name))
        if old_month is None:
            context.log.info(f"no {name} version before {month} in the registry: stability through the ranker skipped")
        elif eval_config.stability_variants:
            from semid_assets.registry import load_tokenizer

            version = registry.find_version(name, old_month)
            old_model = load_tokenizer(f"models:/{name}/{version.version}", registry.tracking_uri)
            if old_model.codebooks.shape[2] != vectors.shape[1]:
                raise ValueError(f"the {old_month} tokenizer takes {old_model.codebooks.shape[2]}-dim "
                                 f"embeddings but {month}'s are {vectors.shape[1]}-dim; they cannot be compared.")
            # The older version encodes today's catalogue, new uploads included, as it would in serving.
            older = SidVersion(old_month, old_model.encode(vectors).astype(np.int64),
                               int(old_model.codebooks.shape[1]))
            context.log.info(f"stability through the ranker: {month} SIDs against version {old_month} "
                             f"(model version {version.version})")

        report = evaluate_month(month, raw_interactions, item_ids, raw_items[schema.CREATED_AT].to_numpy(),
                                current, vectors, older, eval_config, progress=context.log.info)
        shown = report.table.astype(object).where(report.table.notna(), "—").replace("", "—")
        plot = auc_plot_png(report.intervals, f"ranking AUC, {dataset} {month}, {method}")
        run_id, experiment_id = registry.log_evaluation(
            run_name=f"ranking-{method}-{month}",
            params={**config.model_dump(), "method": method, **report.counts},
            metrics=report.metrics,
            tags={"month": month, "method": method, "dataset": dataset, "dagster_run_id": context.run.run_id,
                  "dagster_asset": "ranking_eval", "dagster_partition": str(context.partition_key)},
            tables={"ranking": shown, "versus_hash": report.versus_hash, "stability": report.stability},
            files={"ranking_auc.png": plot})
        metadata = {
            "ranking": dg.MetadataValue.md(markdown_table(shown)),
            "versus_hash": dg.MetadataValue.md(markdown_table(report.versus_hash)),
            "stability": dg.MetadataValue.md(markdown_table(report.stability) if len(report.stability) else
                                              "no earlier tokenizer version in the registry"),
            "results": dg.MetadataValue.json(report.table.to_dict(orient="records")),
            "mlflow_run": dg.MetadataValue.url(mlflow_registry.run_url(experiment_id, run_id)),
            **{key: value for key, value in report.counts.items()},
        }
        return dg.MaterializeResult(value=report.table, metadata=metadata)

    return [ranking_eval]
