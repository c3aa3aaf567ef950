"""The hierarchy report of the published IDs: prefix similarity, trie statistics, example sub-trees."""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from semid_assets import metadata as md
from semid_assets.core.data.embedding_table import vectors_of
from semid_assets.core.data.schema import EMBEDDING_PREFIX, ITEM_ID, TRUTH_PREFIX
from semid_assets.core.evaluation.hierarchy import example_subtrees, prefix_similarity, render_subtree, trie_stats
from semid_assets.core.lifecycle.generations import published
from semid_assets.core.lifecycle.versions import VersionKey
from semid_assets.core.markdown import markdown_table
from semid_assets.partitions import SemidPartitions, method_of, month_of
from semid_assets.resources import CatalogResource, MlflowRegistry

GROUP = "evaluation"
TITLE_COLUMNS = ("title", "caption", "name")


class HierarchyConfig(dg.Config):
    pairs: int = 20000
    """Sampled item pairs per prefix length (and random pairs for the baseline)."""
    seed: int = 0
    examples: int = 2
    """Example sub-trees shown (the most populous length-2 prefix, then median ones)."""


def item_titles(items: pa.Table, ids: np.ndarray) -> tuple[np.ndarray, str]:
    """Each of ``ids``' title: the first of title / caption / name, else the first text column."""
    strings = [f.name for f in items.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    texts = [c for c in strings if c != ITEM_ID and not c.startswith(TRUTH_PREFIX)]
    column = next((c for c in TITLE_COLUMNS if c in texts), texts[0] if texts else ITEM_ID)
    rows = pd.Index(items.column(ITEM_ID).to_numpy(zero_copy_only=False)).get_indexer(ids)
    titles = np.asarray(items.column(column).fill_null("").to_pylist(), dtype=object)
    return np.where(rows >= 0, titles[np.maximum(rows, 0)], np.asarray(ids).astype(str)), column


def build(parts: SemidPartitions) -> list:
    # The catalogue's titles only: its vector columns are gigabytes at a million items.
    @dg.asset(partitions_def=parts.month_method, group_name=GROUP, kinds={"numpy", "mlflow"},
              ins={"raw_items": dg.AssetIn(metadata={"exclude_prefixes": [EMBEDDING_PREFIX]})})
    def sid_hierarchy(context: dg.AssetExecutionContext, config: HierarchyConfig, semantic_ids: pd.DataFrame,
                      aligned_embeddings: pa.Table, raw_items: pa.Table, catalog: CatalogResource,
                      mlflow_registry: MlflowRegistry) -> dg.MaterializeResult:
        """Does a longer shared prefix of the published IDs mean more similar items? (Singh et al., Table 1.)
        Per prefix length: mean cosine of sampled pairs sharing it in the month's embedding space, against
        random pairs, raw and centred (the centred figure still discriminates where random pairs are close);
        sub-trie sizes, trie statistics, two example sub-trees with item titles."""
        month, method = month_of(context), method_of(context)
        ids, codes = published(semantic_ids).item_ids, published(semantic_ids).codes
        vectors = vectors_of(aligned_embeddings, ids)
        similarity = prefix_similarity(codes, vectors, pairs=config.pairs, seed=config.seed)
        titles, title_column = item_titles(raw_items, ids)
        examples = [render_subtree(codes, titles, prefix) for prefix in example_subtrees(codes, config.examples)]
        trie = trie_stats(codes)
        links = _attach(mlflow_registry, catalog, month, method, similarity, trie, examples, title_column)
        return dg.MaterializeResult(value=similarity, metadata={
            **links, "lift_at_full_prefix": md.number(similarity["lift"].iloc[-1]),
            "prefix_similarity": md.table(similarity), "trie": md.table(trie),
            "examples": dg.MetadataValue.md("\n\n".join(examples))})

    return [sid_hierarchy]


def _attach(mlflow_registry, catalog, month, method, similarity, trie, examples, title_column) -> dict:
    report = "\n".join([f"# SID hierarchy: {method} {month}", "", markdown_table(similarity), "", "## Trie", "",
                        markdown_table(trie), "", f"## Example sub-trees (titles from `{title_column}`)", "",
                        *[e + "\n" for e in examples]])
    metrics = {f"hierarchy_cosine_p{r.prefix_length}": r.mean_cosine for r in similarity.itertuples()}
    metrics.update({f"hierarchy_centred_cosine_p{r.prefix_length}": r.centred_cosine
                    for r in similarity.itertuples()})
    metrics["hierarchy_random_cosine"] = float(similarity["random_cosine"].iloc[0])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hierarchy.md"
        path.write_text(report)
        return mlflow_registry.attach(VersionKey(catalog.source().name, month, method), metrics, [path],
                                      artifact_path="hierarchy")
