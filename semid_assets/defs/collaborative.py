"""Stage 3b — collaborative item embeddings (BPR matrix factorisation), read by LETTER."""


import dagster as dg
import pandas as pd

from semid_assets.core.data import schema
from semid_assets.core.collaborative.bpr import collaborative_item_embeddings
from semid_assets.core.data.embedding_table import embeddings_to_arrow
from semid_assets.partitions import SemidPartitions, month_of

GROUP = "pairs"


class CollaborativeConfig(dg.Config):
    """BPR matrix factorisation on every positive up to the month's end."""

    dim: int = 64
    epochs: int = 10
    batch_size: int = 8192
    lr: float = 0.01
    reg: float = 1e-4
    seed: int = 0
    n_threads: int | None = None
    """torch threads (None = 1)."""


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
        vectors, has, info = collaborative_item_embeddings(
            raw_interactions, item_ids, dim=config.dim, epochs=config.epochs, batch_size=config.batch_size,
            lr=config.lr, reg=config.reg, seed=config.seed, n_threads=config.n_threads)
        context.log.info(f"{month}: BPR on {info['positives']} positives, {int(has.sum())}/{len(item_ids)} items "
                         f"embedded, held-out AUC {info['heldout_auc']:.3f}, {info['seconds']:.1f} s")
        return dg.MaterializeResult(value=embeddings_to_arrow(item_ids, vectors), metadata={
            "dagster/row_count": len(item_ids),
            "dim": config.dim,
            "items_with_embedding": int(has.sum()),
            "positives": info["positives"],
            "heldout_auc": float(info["heldout_auc"]),
            "final_loss": float(info["loss_per_epoch"][-1]),
            "fit_seconds": float(info["seconds"]),
        })

    return [collaborative_embeddings]
