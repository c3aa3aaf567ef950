"""Stage 4 — the aligned item representation every tokenizer consumes."""


from typing import Literal

import dagster as dg
import numpy as np

from semid_assets.core.embedding_table import embeddings_to_arrow
from semid_assets.core.features import MultimodalFeatures
from semid_assets.partitions import SemidPartitions

GROUP = "alignment"


class AlignmentConfig(dg.Config):
    aligner: Literal["none"] = "none"
    """``none``: the pooled multimodal content embedding (the TIGER / Google setting), the
    baseline any collaborative aligner has to beat."""


def build(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month, group_name=GROUP, kinds={"numpy"})
    def aligned_embeddings(context: dg.AssetExecutionContext, config: AlignmentConfig,
                           multimodal_features: MultimodalFeatures) -> dg.MaterializeResult:
        """One float32 vector per item: the input of every tokenizer.

        With ``aligner="none"`` it is the content embedding: each modality's pooled vector,
        L2-normalised, concatenated with equal weight.
        """
        vectors = multimodal_features.content_embedding()
        norms = np.linalg.norm(vectors, axis=1)
        context.log.info(f"{len(vectors)} items × {vectors.shape[1]} dims (aligner={config.aligner})")
        return dg.MaterializeResult(
            value=embeddings_to_arrow(multimodal_features.item_ids, vectors),
            metadata={
                "dagster/row_count": len(vectors),
                "dim": int(vectors.shape[1]),
                "aligner": config.aligner,
                "mean_norm": float(norms.mean()) if len(norms) else 0.0,
            })

    return [aligned_embeddings]
