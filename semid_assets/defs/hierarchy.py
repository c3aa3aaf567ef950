"""The hierarchy report of a version: prefix similarity, trie statistics, example sub-trees."""


import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from semid_assets.core.evaluation.hierarchy import example_subtrees, prefix_similarity, render_subtree, trie_stats
from semid_assets.core.markdown import markdown_table
from semid_assets.core.data.schema import ITEM_ID, TRUTH_PREFIX
from semid_assets.defs.stability import GROUP, version_codes
from semid_assets.defs.tokenizer import model_name
from semid_assets.partitions import SemidPartitions, method_of, month_of
from semid_assets.resources import CatalogResource, MlflowRegistry

TITLE_COLUMNS = ("title", "caption", "name")


class HierarchyConfig(dg.Config):
    pairs: int = 20000
    """Sampled item pairs per prefix length (and random pairs for the baseline)."""
    seed: int = 0
    examples: int = 2


def item_titles(items: pa.Table) -> tuple[np.ndarray, np.ndarray, str]:
    """``(item_ids, titles, column)``: the first of title / caption / name, else the first text column."""
    strings = [f.name for f in items.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    texts = [c for c in strings if c != ITEM_ID and not c.startswith(TRUTH_PREFIX)]
    column = next((c for c in TITLE_COLUMNS if c in texts), texts[0] if texts else ITEM_ID)
    ids = items.column(ITEM_ID).to_numpy(zero_copy_only=False)
    return ids, np.asarray(items.column(column).fill_null("").to_pylist(), dtype=object), column


def build(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"numpy", "mlflow"})
    def sid_hierarchy(context: dg.AssetExecutionContext, config: HierarchyConfig, tokenizer,
                      aligned_embeddings: pa.Table, raw_items: pa.Table, catalog: CatalogResource,
                      mlflow_registry: MlflowRegistry) -> dg.MaterializeResult:
        """Does a longer shared prefix mean more similar items? (Singh et al., Table 1.)

        Per prefix length: mean cosine similarity, in the tokenizer's input space (the aligned
        embeddings), of sampled pairs of items sharing that prefix, against random pairs; the
        sub-trie sizes (p10 / median / p90 / max); trie statistics; two example sub-trees with
        item titles, chosen deterministically (the most populous length-2 prefix and a median one).
        """
        month, method = month_of(context), method_of(context)
        ids, codes, vectors = version_codes(tokenizer, aligned_embeddings)
        similarity = prefix_similarity(codes, vectors, pairs=config.pairs, seed=config.seed)
        trie = trie_stats(codes)
        item_ids, titles, title_column = item_titles(raw_items)
        title_rows = pd.Index(item_ids).get_indexer(ids)
        titles = np.where(title_rows >= 0, titles[np.maximum(title_rows, 0)], ids.astype(str))
        examples = [render_subtree(codes, titles, prefix) for prefix in example_subtrees(codes, config.examples)]
        rising = bool(np.all(np.diff(similarity["mean_cosine"].to_numpy()) > 0))
        context.log.info("mean cosine by shared prefix length: "
                         + " / ".join(f"{v:.3f}" for v in similarity["mean_cosine"])
                         + f" (random pairs {similarity['random_cosine'].iloc[0]:.3f})")

        report = "\n".join([
            f"# SID hierarchy: {method} {month}", "",
            f"Pairs sampled per prefix length: {config.pairs} (seed {config.seed}); cosine in the aligned-embedding space.",
            "", markdown_table(similarity), "", "## Trie", "", markdown_table(trie), "",
            f"## Example sub-trees (titles from `{title_column}`)", "", *[e + "\n" for e in examples]])
        links = {}
        version = mlflow_registry.registry().find_version(model_name(catalog.source().name, method), month)
        if version is not None:
            metrics = {f"hierarchy_cosine_p{r.prefix_length}": r.mean_cosine for r in similarity.itertuples()}
            metrics["hierarchy_random_cosine"] = float(similarity["random_cosine"].iloc[0])
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "hierarchy.md"
                path.write_text(report)
                mlflow_registry.registry().attach_evaluation(version, metrics, [path], artifact_path="hierarchy")
            links["mlflow_run"] = dg.MetadataValue.url(mlflow_registry.run_url(version.experiment_id, version.run_id))
        return dg.MaterializeResult(value=similarity, metadata={
            "prefix_similarity": dg.MetadataValue.md(markdown_table(similarity)),
            "trie": dg.MetadataValue.md(markdown_table(trie)),
            "examples": dg.MetadataValue.md("\n\n".join(examples)),
            "similarity_rises_with_prefix": rising,
            "mean_cosine_by_prefix": " / ".join(f"{v:.3f}" for v in similarity["mean_cosine"]),
            "random_cosine": float(similarity["random_cosine"].iloc[0]),
            "pairs_per_length": config.pairs,
            **links,
        })

    return [sid_hierarchy]
