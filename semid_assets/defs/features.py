"""Stage 2 — per-item multimodal token matrices from a real text encoder plus given vectors."""


import dagster as dg
import pyarrow as pa

from semid_assets import metadata as md
from semid_assets.core.features.multimodal import build_multimodal_features
from semid_assets.partitions import SemidPartitions
from semid_assets.resources import TextEncoderResource

GROUP = "features"


def build(parts: SemidPartitions) -> list:
    @dg.asset(partitions_def=parts.month, group_name=GROUP, kinds={"torch"})
    def multimodal_features(context: dg.AssetExecutionContext, raw_items: pa.Table,
                            text_encoder: TextEncoderResource) -> dg.MaterializeResult:
        """Token matrices per item: every text field through all-MiniLM-L6-v2 (token-level
        outputs, cached by content so an item encoded in an earlier month is not encoded
        again) and the ``emb_*`` vectors as given, plus pooled per-modality vectors. Leftovers of
        a killed writer of the text cache are removed first."""
        import pandas as pd

        store = text_encoder.store()
        store.sweep(log=context.log.info)  # shards and temporary files of writers that were killed
        features, stats = build_multimodal_features(raw_items, text_encoder.encoder(), store, log=context.log.info)
        dims = pd.DataFrame({"modality": list(features.dims), "dim": list(features.dims.values())})
        return dg.MaterializeResult(value=features, metadata={
            "texts_encoded": md.number(int(stats["texts_encoded"])), "dagster/row_count": features.n_items,
            "texts_from_cache": md.number(int(stats["texts_cached"])), "texts_total": md.number(int(stats["texts_total"])),
            "encode_seconds": md.number(float(stats["seconds"])), "modalities": md.table(dims),
        })

    return [multimodal_features]
