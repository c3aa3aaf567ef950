"""Stage 3b — collaborative item embeddings (BPR matrix factorisation), read by LETTER."""


import dataclasses

import dagster as dg
import pandas as pd

from semid_assets import metadata as md
from semid_assets.config import config_class, to_options
from semid_assets.core.data import schema
from semid_assets.core.collaborative.bpr import BPROptions, collaborative_item_embeddings
from semid_assets.core.data.embedding_table import embeddings_to_arrow
from semid_assets.partitions import SemidPartitions, month_of

GROUP = "pairs"


CollaborativeConfig = config_class("CollaborativeConfig", BPROptions)


def build(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month, group_name=GROUP, kinds={"torch"},
              ins={"raw_items": dg.AssetIn(metadata={"columns": [schema.ITEM_ID]})})
    def collaborative_embeddings(context: dg.AssetExecutionContext, config: CollaborativeConfig,
                                 raw_items: pd.DataFrame, raw_interactions: pd.DataFrame) -> dg.MaterializeResult:
        """One BPR item factor per catalogue item (``item_id``, ``embedding``), learned from the
        positives up to the month's end; zeros for items no user liked yet.

        LETTER pulls its quantised vectors towards these (collaborative regularisation).
        ``heldout_auc`` checks the factors: each user's latest positive, held out of a
        first fit, ranked against random items (0.5 = chance).
        """
        month = month_of(context)
        item_ids = raw_items[schema.ITEM_ID].to_numpy()
        options = to_options(config, BPROptions)
        vectors, has, info = collaborative_item_embeddings(raw_interactions, item_ids, **dataclasses.asdict(options))
        context.log.info(f"{month}: BPR on {info['positives']} positives, {int(has.sum())}/{len(item_ids)} items "
                         f"embedded, held-out AUC {info['heldout_auc']:.3f}, {info['seconds']:.1f} s")
        return dg.MaterializeResult(value=embeddings_to_arrow(item_ids, vectors), metadata={
            "heldout_auc": md.number(float(info["heldout_auc"])), "dagster/row_count": len(item_ids),
            "items_with_embedding": md.number(int(has.sum())), "positives": md.number(int(info["positives"])),
            "dim": md.number(options.dim), "final_loss": md.number(float(info["loss_per_epoch"][-1])),
            "fit_seconds": md.number(float(info["seconds"])),
        })

    return [collaborative_embeddings]
