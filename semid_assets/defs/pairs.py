"""Stage 3 — collaborative item pairs: user-to-item and Swing item-to-item."""


import dagster as dg
import pydantic
import pandas as pd

from semid_assets import metadata as md
from semid_assets.config import config_class, to_options
from semid_assets.core.data import schema
from semid_assets.core.collaborative.pairs import PairConfig, build_item_pairs
from semid_assets.core.data.sources import month_end, month_start
from semid_assets.partitions import SemidPartitions, month_of

GROUP = "pairs"


PairsConfig = config_class("PairsConfig", PairConfig, extra={
    "window_months": (int, pydantic.Field(3, ge=1, description="Swing sees the positives of the last window_months "
                                          "months (this one included)."))})


def source_summary(pairs: pd.DataFrame, stats: dict) -> pd.DataFrame:
    """Per source: pairs, items they touch, mean Swing score; then the pairs both sources found, and the union."""
    rows = []
    for source in ("swing", "u2i"):
        part = pairs[pairs["source"] == source]
        items = pd.unique(pd.concat([part["item_a"], part["item_b"]])) if len(part) else []
        rows.append({"source": source, "pairs": len(part), "items": len(items),
                     "mean_score": float(part["score"].mean()) if len(part) else float("nan")})
    overlap, total = int(stats["pairs_overlap"]), int(stats["pairs_total"])
    rows.append({"source": "both (overlap)", "pairs": overlap, "items": float("nan"), "mean_score": float("nan")})
    rows.append({"source": "distinct (union)", "pairs": total - overlap, "items": int(stats["n_items_with_pairs"]),
                 "mean_score": float("nan")})
    return pd.DataFrame(rows)


def build(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month, group_name=GROUP, kinds={"scipy"},
              ins={"raw_items": dg.AssetIn(metadata={"columns": [schema.ITEM_ID]})})
    def item_pairs(context: dg.AssetExecutionContext, config: PairsConfig, raw_interactions: pd.DataFrame,
                   raw_items: pd.DataFrame) -> dg.MaterializeResult:
        """Pairs of items that belong together collaboratively, with their source and score.

        ``swing``: each item's top-k Swing neighbours over the window's positives.
        ``u2i``: each positive of this month (the target) paired with the item, among the
        same user's last ``u2i_history`` positives before it inside the window, that has the
        highest Swing score with it (see ``core/collaborative/pairs.py``). The metadata counts the pairs of
        each source, the items they touch, the pairs both sources found and the union.
        """
        month = month_of(context)
        window_start = month_end(month) - pd.DateOffset(months=config.window_months)
        window = raw_interactions.loc[raw_interactions[schema.TS] >= window_start]
        pair_config = to_options(config, PairConfig)
        pairs, stats = build_item_pairs(window, raw_items[schema.ITEM_ID].to_numpy(), pair_config,
                                        target_start=month_start(month))
        context.log.info(f"{month}: {len(pairs)} pairs from {stats['n_positive_interactions']} positives "
                         f"in {stats['seconds']:.1f}s")
        summary = source_summary(pairs, stats)
        u2i_targets_paired = int(pairs.loc[pairs["source"] == "u2i", "count"].sum())
        context.log.info(f"{month}: " + "; ".join(f"{r.source}: {r.pairs}" for r in summary.itertuples()))
        return dg.MaterializeResult(value=pairs, metadata={
            "distinct_pairs": md.number(int(stats["pairs_total"] - stats["pairs_overlap"])),
            "dagster/row_count": len(pairs), "pairs_by_source": md.table(summary),
            "u2i_targets": md.number(int(stats["n_targets"])),
            "u2i_targets_with_partner": md.number(u2i_targets_paired),
            "positives_in_window": md.number(int(stats["n_positive_interactions"])),
            "window_start": str(window_start.date()), "seconds": md.number(float(stats["seconds"])),
        })

    return [item_pairs]
