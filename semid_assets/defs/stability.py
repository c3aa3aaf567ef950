"""Stability over time: this version against an earlier one, and the gate that promotes a champion."""


import tempfile
import warnings
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.lifecycle.gate import promotion_requirements
from semid_assets.core.markdown import markdown_table
from semid_assets.core.evaluation.plots import agreement_plot
from semid_assets.core.data.schema import ITEM_ID
from semid_assets.core.evaluation.stability import compare_versions
from semid_assets.defs import versions
from semid_assets.defs.tokenizer import model_name
from semid_assets.partitions import METHOD, MONTH, SemidPartitions, method_of, month_of
from semid_assets.resources import CatalogResource, MlflowRegistry, PromotionThresholds

GROUP = "evaluation"

warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")


class StabilityConfig(dg.Config):
    months_back: int = 6
    """Compare with the version this many months earlier; when that month is not materialised, with
    the oldest materialised version within those months (else the newest older one)."""
    knn_sample: int = 1000
    """Items whose embedding neighbourhoods are compared."""
    knn_k: int = 10
    seed: int = 0


def version_codes(tokenizer, aligned_embeddings: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(item_ids, codes, vectors)`` of this version: its tokenizer applied to the month's embeddings.

    These are exactly the codes ``semantic_ids`` stores, but the reports read them from the
    tokenizer so that they also describe a version whose ``semantic_ids`` failed a blocking
    check: that is when one wants to look at its stability and trie. Promotion still waits
    for those checks (the gate reads ``semantic_ids``).
    """
    ids, vectors = embeddings_from_arrow(aligned_embeddings)
    return ids, tokenizer.encode(vectors), vectors


def sid_codes(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(item_ids, codes [n, L])`` of a ``semantic_ids`` table (the suffix is not a code)."""
    columns = [c for c in table.columns if c[:1] == "c" and c[1:].isdigit()]
    columns.sort(key=lambda c: int(c[1:]))
    return table[ITEM_ID].to_numpy(), table[columns].to_numpy()


def _report_markdown(month: str, method: str, earlier: str, table: pd.DataFrame, figures: dict,
                     anchored_to: str | None) -> str:
    lines = [f"# SID stability: {method} {month} vs {earlier}", "",
             f"{figures['items_common']} items in both versions ({figures['items_earlier']} in {earlier}, "
             f"{figures['items_this']} in {month}).", "", markdown_table(table), ""]
    if "knn_overlap" in figures:
        lines.append(f"Embedding-neighbourhood overlap: {figures['knn_overlap']:.4f} "
                     f"({figures['knn_k']} nearest neighbours of {figures['knn_sample']} sampled items).")
    lines.append(f"This version is anchored to {anchored_to}; `raw_unchanged` counts literally equal codes."
                 if anchored_to else
                 "This version was trained without anchoring: code numbers are arbitrary, read `raw_unchanged` as ~0.")
    return "\n".join(lines) + "\n"


def build(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"scipy", "mlflow"})
    def sid_stability(context: dg.AssetExecutionContext, config: StabilityConfig,
                      aligned_embeddings: pa.Table, tokenizer, catalog: CatalogResource,
                      mlflow_registry: MlflowRegistry) -> dg.MaterializeResult:
        """This version against the version ``months_back`` months earlier, on the items both encode.

        This version's codes are its tokenizer applied to the month's embeddings (what
        ``semantic_ids`` stores), so the report exists even when a ``semantic_ids`` check failed.

        Per prefix length: ARI, NMI and AMI (the chance-corrected NMI) of the partitions, the share of
        items keeping their optimally matched prefix, the Jaccard overlap of prefix neighbours,
        code-usage drift (JSD) and the raw unchanged share (meaningful when anchored); plus embedding
        kNN overlap. The earlier version is the stored ``semantic_ids`` partition named in the
        metadata (``compared_with_*``). The first materialised month has nothing to compare with and
        says so.
        """
        month, method = month_of(context), method_of(context)
        dataset = catalog.source().name
        earlier = versions.earlier_sids(context.instance, parts, month, method, config.months_back, dataset)
        if earlier is None:
            context.log.info(f"no {method} version before {month} is materialised: nothing to compare")
            return dg.MaterializeResult(value=pd.DataFrame({"prefix_length": pd.Series(dtype="int64")}), metadata={
                "compared_with": "none: no earlier version is materialised",
                "months_back_requested": config.months_back})
        ids_b, codes_b, emb_b = version_codes(tokenizer, aligned_embeddings)
        ids_a, codes_a = sid_codes(pd.read_parquet(earlier.path))
        emb_stored = versions.stored(context.instance, "aligned_embeddings", earlier.month, earlier.month, dataset)
        emb_a = None
        if emb_stored is not None:
            emb_ids_a, emb_a = embeddings_from_arrow(pq.read_table(emb_stored.path))
            rows = pd.Index(emb_ids_a).get_indexer(ids_a)
            emb_a = emb_a[rows] if (rows >= 0).all() else None
        report, figures = compare_versions(ids_a, codes_a, ids_b, codes_b, emb_a=emb_a, emb_b=emb_b,
                                           knn_sample=config.knn_sample, knn_k=config.knn_k, seed=config.seed)
        anchoring = getattr(tokenizer, "fit_info", {}).get("anchoring", {})
        anchored_to = anchoring.get("anchored_to_month")
        gap = versions.months_apart(earlier.month, month)
        table = report.table.assign(earlier_month=earlier.month)
        context.log.info(f"{method} {month} vs {earlier.month} ({gap} months): ARI per prefix length "
                         + " / ".join(f"{v:.3f}" for v in report.table["ari"]))

        metrics = {f"stability_{column}_p{row.prefix_length}": float(getattr(row, column))
                   for row in report.table.itertuples(index=False)
                   for column in ("ari", "nmi", "ami", "matched_kept", "prefix_jaccard", "usage_jsd", "raw_unchanged")}
        metrics.update({"stability_months_apart": gap, "stability_items_common": figures["items_common"]})
        if "knn_overlap" in figures:
            metrics["stability_knn_overlap"] = figures["knn_overlap"]
        registry = mlflow_registry.registry()
        version = registry.find_version(model_name(dataset, method), month)
        links = {}
        if version is not None:
            with tempfile.TemporaryDirectory() as tmp:
                md = Path(tmp) / "stability.md"
                md.write_text(_report_markdown(month, method, earlier.month, report.table, figures, anchored_to))
                png = agreement_plot(report.table, f"{method}: {earlier.month} → {month}", Path(tmp) / "stability.png")
                registry.attach_evaluation(version, metrics, [md, png], artifact_path="stability")
            links["mlflow_run"] = dg.MetadataValue.url(mlflow_registry.run_url(version.experiment_id, version.run_id))
        else:
            context.log.warning(f"no registered {method} version for {month}; figures not logged to MLflow")
        return dg.MaterializeResult(value=table, metadata={
            "stability": dg.MetadataValue.md(markdown_table(report.table)),
            **earlier.metadata("compared_with"),
            "months_apart": gap,
            "months_back_requested": config.months_back,
            "anchored_to": anchored_to or "none",
            "ari_prefix_1": report.figure("ari", 1),
            "matched_kept_full": report.figure("matched_kept", codes_b.shape[1]),
            "raw_unchanged_full": report.figure("raw_unchanged", codes_b.shape[1]),
            **figures,
            **links,
        })

    @dg.asset_check(asset="sid_stability", partitions_def=parts.month_method, blocking=True,
                    additional_ins={"semantic_ids": dg.AssetIn("semantic_ids")})
    def sid_promotion_gate(context: dg.AssetCheckExecutionContext, semantic_ids: pd.DataFrame,
                           catalog: CatalogResource, mlflow_registry: MlflowRegistry,
                           promotion_thresholds: PromotionThresholds) -> dg.AssetCheckResult:
        """Moves the MLflow alias ``champion`` to this version if it is good and stable enough.

        Requirements (``PromotionThresholds``): relative MSE of the full SID, no more than a small
        regression against the champion's, and — against the codes the registered champion gives
        its own month's items (its stored embeddings), on the items
        both encode — ARI at prefix length 1 and the share of items keeping their matched full SID. With no champion
        yet, quality alone decides. A failure names each figure, its limit and the shortfall, and
        ``champion`` stays where it was. A version older than the champion is judged but not promoted.
        """
        # mlflow is heavy to import; loading the definitions (every UI reload) does not need it.
        from semid_assets.registry import CHAMPION_ALIAS, load_tokenizer

        key = parts.month_method.get_partition_key_from_str(context.partition_key)
        month, method = key.keys_by_dimension[MONTH], key.keys_by_dimension[METHOD]
        dataset = catalog.source().name
        name = model_name(dataset, method)
        registry = mlflow_registry.registry()
        candidate = registry.find_version(name, month)
        if candidate is None:
            return dg.AssetCheckResult(passed=False, description=f"{name} has no registered version for {month}")
        ids_b, codes_b = sid_codes(semantic_ids)
        levels = codes_b.shape[1]
        relative_mse = registry.run_metrics(candidate.run_id)[f"relative_mse_l{levels}"]
        champion = registry.version_by_alias(name, CHAMPION_ALIAS)
        metadata = {"candidate_version": candidate.version, "candidate_month": month, "relative_mse": relative_mse}
        limits = promotion_thresholds.limits()
        if champion is None or str(champion.version) == candidate.version:
            requirements = promotion_requirements(limits, relative_mse)
            metadata["champion"] = "none" if champion is None else f"already version {champion.version}"
        else:
            champion_month = (champion.tags or {}).get("month", "")
            metadata.update(champion_version=champion.version, champion_month=champion_month)
            # The champion's codes come from the registered champion itself applied to its month's
            # embeddings: a later re-materialisation of that month (another config, or this very
            # run when the champion is of the same month) overwrites the stored semantic_ids.
            stored = versions.stored(context.instance, "aligned_embeddings", champion_month, champion_month, dataset)
            if stored is None:
                return dg.AssetCheckResult(passed=False, metadata=metadata, description=(
                    f"the champion ({name} version {champion.version}, {champion_month}) cannot be compared: "
                    f"aligned_embeddings of {champion_month} are not stored; materialise them first"))
            champion_model = load_tokenizer(f"models:/{name}/{champion.version}", registry.tracking_uri)
            ids_a, vectors_a = embeddings_from_arrow(pq.read_table(stored.path))
            try:
                report, figures = compare_versions(ids_a, champion_model.encode(vectors_a), ids_b, codes_b)
            except ValueError as exc:
                return dg.AssetCheckResult(passed=False, metadata=metadata, description=(
                    f"cannot compare with the champion ({name} version {champion.version}): {exc}"))
            champion_mse = registry.run_metrics(champion.run_id).get(f"relative_mse_l{levels}")
            ari, kept = report.figure("ari", 1), report.figure("matched_kept", levels)
            requirements = promotion_requirements(limits, relative_mse, champion_mse, ari=ari, matched_kept=kept)
            metadata.update(ari_vs_champion=ari, matched_kept_vs_champion=kept,
                            items_common=figures["items_common"],
                            vs_champion=dg.MetadataValue.md(markdown_table(report.table)))
        unmet = [r for r in requirements if not r.met]
        metadata["requirements"] = dg.MetadataValue.md(markdown_table(pd.DataFrame(
            [{"figure": r.figure, "value": r.value, "limit": r.limit, "met": r.met} for r in requirements])))
        if unmet:
            return dg.AssetCheckResult(passed=False, metadata=metadata, description=(
                f"not promoted; champion stays on {metadata.get('champion_month', 'no version')}: "
                + "; ".join(r.shortfall() for r in unmet)))
        if champion is not None and str(champion.version) != candidate.version and \
                (champion.tags or {}).get("month", "") > month:
            return dg.AssetCheckResult(passed=True, metadata=metadata, description=(
                f"meets every limit, but the champion is a later month ({champion.tags['month']}); not moved back"))
        registry.set_alias(name, CHAMPION_ALIAS, candidate.version)
        context.log.info(f"{name}@{CHAMPION_ALIAS} → version {candidate.version} ({month})")
        return dg.AssetCheckResult(passed=True, metadata={**metadata, "promoted": True}, description=(
            f"promoted: {name}@{CHAMPION_ALIAS} is now version {candidate.version} ({month})"))

    return [sid_stability], [sid_promotion_gate]
