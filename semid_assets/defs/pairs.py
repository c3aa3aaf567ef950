"""Stage 3 — collaborative item pairs: user-to-item and Swing item-to-item."""


import dagster as dg
import pandas as pd

from semid_assets.core import schema
from semid_assets.core.markdown import markdown_table
from semid_assets.core.pairs import PairConfig, build_item_pairs
from semid_assets.core.sources import month_end, month_start
from semid_assets.partitions import SemidPartitions, month_of

GROUP = "pairs"


class PairsConfig(dg.Config):
    """How pairs are mined from the interaction log."""

    window_months: int = 3
    """Swing sees positives of the last ``window_months`` months (this one included)."""
    swing_alpha: float = 1.0
    user_weight_power: float = 0.5
    max_users_per_item: int = 200
    swing_top_k: int = 10
    u2i_history: int = 20
    min_score: float = 0.0


def build(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month, group_name=GROUP, kinds={"scipy"},
              ins={"raw_items": dg.AssetIn(metadata={"columns": [schema.ITEM_ID]})})
    def item_pairs(context: dg.AssetExecutionContext, config: PairsConfig, raw_interactions: pd.DataFrame,
                   raw_items: pd.DataFrame) -> dg.MaterializeResult:
        """Pairs of items that belong together collaboratively, with their source and score.

        ``swing``: each item's top-k Swing neighbours over the window's positives.
        ``u2i``: each positive of this month paired with the item, among the same user's
        last ``u2i_history`` earlier positives, that has the highest Swing score with it.
        """
        month = month_of(context)
        window_start = month_end(month) - pd.DateOffset(months=config.window_months)
        window = raw_interactions.loc[raw_interactions[schema.TS] >= window_start]
        pair_config = PairConfig(**config.model_dump(exclude={"window_months"}))
        pairs, stats = build_item_pairs(window, raw_items[schema.ITEM_ID].to_numpy(), pair_config,
                                        target_start=month_start(month))
        context.log.info(f"{month}: {len(pairs)} pairs from {stats['n_positive_interactions']} positives "
                         f"in {stats['seconds']:.1f}s")
        by_source = pairs.groupby("source", observed=True).agg(pairs=("score", "size"), mean_score=("score", "mean"))
        summary = by_source.reset_index()
        return dg.MaterializeResult(value=pairs, metadata={
            "dagster/row_count": len(pairs),
            "pairs_by_source": dg.MetadataValue.md(markdown_table(summary)),
            "overlap_between_sources": int(stats["pairs_overlap"]),
            "positives_in_window": int(stats["n_positive_interactions"]),
            "window_start": str(window_start.date()),
            "seconds": float(stats["seconds"]),
        })

    return [item_pairs]
