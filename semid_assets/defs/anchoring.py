"""The tokenizer asset's anchored-retraining option: find the previous version and fit against it."""

import dagster as dg
import numpy as np

from semid_assets.core.tokenizers.anchoring import anchored_fit_encode
from semid_assets.core.tokenizers.base import Anchoring, Tokenizer
from semid_assets.core.tokenizers.sids import codes_of_items
from semid_assets.defs import versions
from semid_assets.io_manager import load_artifact
from semid_assets.partitions import SemidPartitions


def fit_tokenizer(context: dg.AssetExecutionContext, parts: SemidPartitions, model: Tokenizer, vectors: np.ndarray,
                  month: str, method: str, dataset: str, anchor: bool, item_ids: np.ndarray,
                  anchor_iterations: int | None = None, **side) -> tuple[np.ndarray, dict]:
    """``model.fit_encode(vectors)``, anchored to the newest stored earlier version of ``method`` when
    ``anchor`` is set and one exists with the same shape; returns the codes and metadata saying what happened.

    ``anchor_iterations`` reaches the k-means family only (``Anchoring.CODEBOOKS``): RQ-VAE and LETTER
    are anchored by warm-starting the whole model and train their usual epochs. ``side`` (LETTER's
    ``collaborative``) reaches the fit anchored or not."""
    previous = None
    if anchor:
        previous, reason = _previous_version(context, parts, model, vectors, month, method, dataset)
        if previous is None:
            context.log.info(f"not anchored: {reason}; training from scratch")
            return model.fit_encode(vectors, progress=context.log.info, **side), {"anchored_to": f"none ({reason})"}
    if previous is None:
        return model.fit_encode(vectors, progress=context.log.info, **side), {"anchored_to": "none (anchoring off)"}
    stored, earlier = previous
    context.log.info(f"anchoring to the {method} version of {stored.month} ({stored.path})")
    previous_codes = _previous_codes(context, parts, stored.month, method, dataset, item_ids)
    steps = anchor_iterations if model.anchoring is Anchoring.CODEBOOKS else None
    codes, info = anchored_fit_encode(model, vectors, earlier, previous_codes=previous_codes,
                                      progress=context.log.info, steps=steps, **side)
    info["anchored_to_month"] = stored.month
    model.fit_info["anchoring"] = info
    context.log.info(f"anchored: {info['full_sid_unchanged']:.1%} of items keep their full SID "
                     f"(per prefix length: {', '.join(f'{v:.1%}' for v in info['prefix_unchanged'])})")
    return codes, {
        "anchored_to": stored.month,
        "anchored_to_run_id": stored.run_id,
        "anchored_warm_start": info["warm_start"],
        "anchored_full_sid_unchanged": info["full_sid_unchanged"],
        "anchored_prefix_unchanged": dg.MetadataValue.json(info["prefix_unchanged"]),
    }


def _previous_version(context, parts, model, vectors, month, method, dataset):
    stored = versions.previous_tokenizer(context.instance, parts, month, method, dataset)
    if stored is None:
        return None, f"no {method} tokenizer of a month before {month} is materialised"
    earlier = load_artifact(stored.path)
    mismatch = model.warm_start_mismatch(earlier, vectors.shape[1])
    if mismatch is not None:
        return None, f"{stored.month} version: {mismatch}"
    return (stored, earlier), ""


def _previous_codes(context, parts, month: str, method: str, dataset: str, item_ids: np.ndarray) -> np.ndarray | None:
    """The codes the earlier version's stored semantic IDs give ``item_ids`` (-1 rows for items it
    did not know), or None when that table is not stored (the earlier tokenizer then encodes today's
    vectors, which assumes the embeddings did not move)."""
    import pandas as pd

    table_version = versions.stored_sids(context.instance, parts, month, method, dataset)
    if table_version is None:
        context.log.warning(f"no stored {method} semantic IDs of {month}; anchoring through the earlier "
                            "tokenizer applied to today's embeddings")
        return None
    codes = codes_of_items(pd.read_parquet(table_version.path), item_ids)
    known = int(np.all(codes >= 0, axis=1).sum())
    context.log.info(f"anchoring to {month}'s stored semantic IDs: {known} of {len(item_ids)} items known")
    return codes
