"""Stage 6 — every tokenizer method of a version side by side (metadata, MLflow, ``semid report``)."""


import time
import warnings

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from semid_assets import metadata as md
from semid_assets.core.data import schema
from semid_assets.core.tokenizers.collisions import reassign_collisions
from semid_assets.core.evaluation.comparison import beam_mse, comparison_row, display_table, relative_differences
from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.partitions import METHOD, MONTH, SemidPartitions, month_of
from semid_assets.resources import CatalogResource, MlflowRegistry

GROUP = "tokenizer"
# A beta API, used knowingly: it is how a monthly asset reads every method's partition of its month.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*MultiToSingleDimensionPartitionMapping.*")
_BY_MONTH = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=MONTH)


class ComparisonConfig(dg.Config):
    compare_beam: int = 8
    """Beam size whose reconstruction MSE is reported beside greedy (beam 1) encoding."""
    reassign_candidates: int = 16
    """Nearest last-level codes a colliding item may move to under ``reassign``."""


def _method(parts: SemidPartitions, key) -> str:
    if not isinstance(key, dg.MultiPartitionKey):
        key = parts.month_method.get_partition_key_from_str(str(key))
    return key.keys_by_dimension[METHOD]


def _by_method(parts: SemidPartitions, loaded) -> dict:
    # The IO manager hands over a dict per partition key, or the bare value for a single method.
    if isinstance(loaded, dict):
        return {_method(parts, k): v for k, v in loaded.items()}
    (only,) = parts.method.get_partition_keys()
    return {only: loaded}


def _truth(raw_items: pa.Table, item_ids: np.ndarray) -> tuple[dict | None, str]:
    needed = (schema.TRUTH_CATEGORY, schema.TRUTH_SUBCATEGORY)
    missing = [c for c in needed if c not in raw_items.column_names]
    if missing:
        return None, f"skipped: the catalogue has no {', '.join(missing)} column (ground truth exists only " \
                     "for the embedded synthetic platform)"
    rows = pd.Index(raw_items.column(schema.ITEM_ID).to_numpy(zero_copy_only=False)).get_indexer(item_ids)
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} embedded item(s) are missing from raw_items")
    return {"category": raw_items.column(schema.TRUTH_CATEGORY).to_numpy(zero_copy_only=False)[rows],
            "subcategory": raw_items.column(schema.TRUTH_SUBCATEGORY).to_numpy(zero_copy_only=False)[rows]}, \
        "NMI of level-1 codes vs truth_category, of 2-code prefixes vs truth_subcategory"


def build(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month, group_name=GROUP, kinds={"pandas", "mlflow"},
              ins={"tokenizer": dg.AssetIn(partition_mapping=_BY_MONTH),
                   "semantic_ids": dg.AssetIn(partition_mapping=_BY_MONTH)})
    def tokenizer_comparison(context: dg.AssetExecutionContext, config: ComparisonConfig, tokenizer,
                             semantic_ids, aligned_embeddings: pa.Table, raw_items: pa.Table,
                             catalog: CatalogResource, mlflow_registry: MlflowRegistry) -> dg.MaterializeResult:
        """Every method's tokenizer of this month on the same items, one row each: reconstruction
        MSE (absolute, relative; greedy vs beam), utilisation and entropy per level, collision
        rate and largest group before and after ``reassign``, the share of the stored IDs that
        needed a suffix, fit and encode seconds, and (with ground truth) the NMI of SID
        prefixes vs the true categories. Plus RQ-Kmeans vs RQ-VAE as relative differences
        (OneRec Table 11). Logged to MLflow; ``semid report`` prints it."""
        month = month_of(context)
        item_ids, vectors = embeddings_from_arrow(aligned_embeddings)
        truth, truth_note = _truth(raw_items, item_ids)
        stored = _by_method(parts, semantic_ids)
        rows = []
        for method, model in sorted(_by_method(parts, tokenizer).items()):
            started = time.perf_counter()
            codes = model.encode_catalogue(vectors)
            encode_seconds = time.perf_counter() - started
            report = model.level_report(vectors, codes)
            _, collisions = reassign_collisions(codes, model.last_level_candidates(vectors, codes,
                                                                                   config.reassign_candidates))
            row = comparison_row(method, report, collisions, model.fit_info.get("seconds", float("nan")),
                                 encode_seconds, codes, truth, beam_mse(model, vectors, {1, config.compare_beam}, codes))
            table = stored.get(method)
            row["suffix_share"] = float((table["suffix"].to_numpy() > 0).mean()) if table is not None else float("nan")
            rows.append(row)
            context.log.info(f"{month} {method}: relative MSE {row['relative_mse']:.4f}, "
                             f"collision rate {row['collision_rate']:.4f}")
        frame = pd.DataFrame(rows)
        relative = relative_differences(frame)
        tables = {"comparison": display_table(frame)}
        if relative is not None:
            tables["rq_kmeans_vs_rq_vae"] = relative
        registry = mlflow_registry.registry()
        experiment_id, run_id = registry.log_report(
            run_name=f"comparison-{month}", tables=tables,
            tags={"month": month, "dataset": catalog.source().name, "dagster_run_id": context.run.run_id,
                  "dagster_asset": "tokenizer_comparison", "dagster_partition": month},
            metrics={f"{r['method']}_{m}": float(r[m]) for r in rows for m in ("mse", "relative_mse", "collision_rate")})
        best = frame.loc[frame["relative_mse"].idxmin()]
        metadata = {
            **md.links(mlflow_run=mlflow_registry.run_url(experiment_id, run_id)),
            "lowest_relative_mse": md.number(float(best["relative_mse"])),
            "lowest_relative_mse_method": str(best["method"]),
            "comparison": md.table(tables["comparison"]),
            "methods": len(rows),
            "ground_truth": truth_note,
        }
        if relative is not None:
            metadata["rq_kmeans_vs_rq_vae"] = md.table(relative)
        return dg.MaterializeResult(value=frame, metadata=metadata)

    return [tokenizer_comparison]
