"""One month of alignment: split the pairs, train the QFormer, embed every item, prove it aligns.

:func:`align_month` is what the ``aligner`` asset runs, usable alone from a notebook:

1. distinct unordered pairs of ``item_pairs`` are split *by pair* into train / held-out
   (:func:`~semid_assets.core.alignment.evaluation.split_pairs`, stable across months);
2. captions are tokenized by the text encoder's tokenizer; a stable ``caption_holdout``
   share of the items (by id hash) never trains the caption loss;
3. the aligner trains on the training pairs (optionally warm-started);
4. every item is embedded; the report compares the aligned vectors with the
   ``aligner="none"`` content embedding and, when warm-started, with the previous aligner's
   vectors of the same items (plus ``moved_from_previous``, their mean squared distance):
   Recall@K of held-out (and of up to 2,000 training) partners, same-topic vs random cosine
   when evaluation labels are given, and the caption loss / token accuracy on held-out items
   next to a content-blind unigram model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from semid_assets.core.alignment.aligner import Aligner
from semid_assets.core.alignment.config import AlignerTrainConfig
from semid_assets.core.alignment.training import caption_metrics, train_aligner, unigram_baseline
from semid_assets.core.alignment.evaluation import (content_similarity, hash_fraction, held_out_pairs, judged_items,
                                                    pair_hits, pair_recall, unique_pairs)
from semid_assets.core.alignment.captions import CaptionData, prepare_captions
from semid_assets.core.alignment.reuse import embed_reusing
from semid_assets.core.features.multimodal import MultimodalFeatures

RECALL_KS = (10, 50)
TRAIN_RECALL_SAMPLE = 2000  # training pairs / items the fit-side figures are computed on


@dataclass
class AlignmentResult:
    aligner: Aligner
    vectors: np.ndarray  # aligned, [n_items, out_dim]
    history: pd.DataFrame  # per training step
    retrieval: pd.DataFrame  # one row per representation
    captions: pd.DataFrame  # one row per (model, item set)
    metrics: dict[str, float]  # flat, for MLflow and asset metadata
    heldout_hits: dict[str, np.ndarray]  # per representation, per held-out pair: hit@10 share of both directions


def _embedded(aligner: Aligner, features: MultimodalFeatures, store, threads: int | None,
              stored_vectors: Callable | None) -> np.ndarray:
    """``aligner``'s vectors of every item, reusing those it stored for an earlier month when told where."""
    stored = None if stored_vectors is None else stored_vectors(aligner)
    return embed_reusing(features.item_ids, stored,
                         lambda rows: aligner.embed(features, rows=rows, store=store, threads=threads))


def _previous_vectors(warm_start: Aligner | None, features: MultimodalFeatures, store,
                      log: Callable[[str], None], threads: int | None,
                      stored_vectors: Callable | None) -> np.ndarray | None:
    """The warm-start aligner's vectors of this month's items, or None (no warm start, other modalities)."""
    if warm_start is None:
        return None
    try:
        warm_start.check_features(features)
    except ValueError as error:
        log(f"the previous aligner cannot embed this month's items ({error}); no stability term or comparison")
        return None
    return _embedded(warm_start, features, store, threads, stored_vectors)


def align_month(
    features: MultimodalFeatures,
    pairs: pd.DataFrame,
    config: AlignerTrainConfig = AlignerTrainConfig(),
    *,
    caption_token_ids: Sequence[Sequence[int]] | None = None,
    caption_column: str | None = None,
    topics: np.ndarray | None = None,
    holdout: float = 0.1,
    caption_holdout: float = 0.1,
    heldout_sample: int | None = None,
    warm_start: Aligner | None = None,
    serving=None,
    store=None,
    stored_vectors: Callable[[Aligner], tuple[np.ndarray, np.ndarray] | None] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> AlignmentResult:
    """Train and evaluate one month's aligner (see the module docstring).

    ``caption_token_ids``: per item (catalogue order) the caption's token ids, ``[]`` when
    blank; None turns the caption loss off. ``topics``: evaluation-only labels (e.g.
    ``truth_topic``) for the content-similarity check, or None. ``serving``: the aligner serving
    now when it is neither the warm start (the ``previous`` row) nor the content embedding (the
    ``none`` row); it is reported as the ``serving`` row. ``heldout_sample``: judge on at most this
    many held-out pairs, and held-out caption items, each the lowest by a stable hash (None: all of
    them); on a large catalogue every judged pair costs a search over all items in every space compared.
    ``stored_vectors(aligner)``: ``(item_ids, vectors)`` an earlier aligner (the warm start, the serving
    one) stored for a month, or None; those items are not embedded again (``reuse.embed_reusing``).
    """
    ids = features.item_ids
    a, b, _ = unique_pairs(pairs, ids)
    held, judged = held_out_pairs(a, b, ids, holdout, seed=config.seed, sample=heldout_sample)
    train_a, train_b = a[~held], b[~held]
    log(f"{len(a)} distinct pairs: {int((~held).sum())} train, {int(held.sum())} held out"
        + ("" if len(judged) == int(held.sum()) else f", of which the aligner is judged on {len(judged)}"))

    captions: CaptionData | None = None
    caption_train = ~hash_fraction(ids, caption_holdout, seed=config.seed)
    if caption_token_ids is not None and config.caption_weight > 0:
        captions = prepare_captions(caption_token_ids, caption_train, caption_column or "caption",
                                    vocab_size=config.caption_vocab_size, max_tokens=config.caption_max_tokens)
        log(f"captions from {captions.column!r}: {len(captions.vocabulary) + 2} compact vocabulary rows, "
            f"{int(caption_train.sum())} training items, {int((~caption_train).sum())} held out")

    previous = _previous_vectors(warm_start, features, store, log, config.threads, stored_vectors)
    aligner, history = train_aligner(features, train_a, train_b, config, captions, warm_start=warm_start,
                                     stability_targets=previous, store=store, log=log)
    vectors = aligner.embed(features, store=store, log=log, threads=config.threads)
    # Each space is made when it is judged and dropped after: at a million items each is a gigabyte.
    representations = {"none": features.content_embedding, "qformer": lambda: vectors}
    if previous is not None:
        # What retraining bought over keeping last month's aligner, and how far it moved the space.
        representations["previous"] = lambda: previous
    if serving is not None:
        representations["serving"] = lambda: _embedded(serving, features, store, config.threads, stored_vectors)
    sample = np.random.default_rng(config.seed).permutation(len(train_a))[:TRAIN_RECALL_SAMPLE]
    retrieval, metrics, hits = _retrieval(representations, (a[judged], b[judged]), (train_a[sample], train_b[sample]),
                                          topics, config.seed, config.threads)

    caption_rows = []
    if captions is not None and aligner.net().caption is not None:
        train_items = np.flatnonzero(caption_train)
        held_items = judged_items(ids, caption_holdout, seed=config.seed, sample=heldout_sample)
        train_sample = np.sort(np.random.default_rng(config.seed).permutation(train_items)[:TRAIN_RECALL_SAMPLE])
        for subset, where in (("held-out items", held_items), ("training items (sample)", train_sample)):
            m = caption_metrics(aligner, features, where, captions, store=store, threads=config.threads)
            caption_rows.append({"model": "qformer decoder", "items": subset, **m})
            key = "heldout" if subset.startswith("held") else "train"
            metrics[f"caption_loss_{key}"] = m["caption_loss"]
            metrics[f"caption_token_accuracy_{key}"] = m["token_accuracy"]
        uni = unigram_baseline(captions, train_items, held_items)
        caption_rows.append({"model": "unigram (content-blind)", "items": "held-out items", **uni,
                             "tokens": caption_rows[0]["tokens"]})
        metrics["caption_loss_heldout_unigram"] = uni["caption_loss"]
    if previous is not None and previous.shape == vectors.shape:
        metrics["moved_from_previous"] = float(np.square(vectors - previous).sum(axis=1).mean())
    metrics.update({"pairs_train": int((~held).sum()), "pairs_heldout": int(held.sum()), "pairs_judged": len(judged),
                    "train_seconds": float(aligner.info["train_seconds"]),
                    "temperature": float(aligner.info["temperature"])})
    return AlignmentResult(aligner, vectors, pd.DataFrame(history), retrieval, pd.DataFrame(caption_rows), metrics,
                           hits)


def _retrieval(representations: dict[str, Callable[[], np.ndarray]], heldout: tuple[np.ndarray, np.ndarray],
               train: tuple[np.ndarray, np.ndarray], topics: np.ndarray | None, seed: int,
               threads: int | None) -> tuple[pd.DataFrame, dict[str, float], dict[str, np.ndarray]]:
    """One row per representation (each made by calling it, one at a time): Recall@K of held-out and
    (sampled) training partners, and the same-topic vs random cosine when evaluation labels are given;
    plus the per-pair held-out hits@10. The searches run on ``threads`` threads (None: 1), the
    aligner's own count."""
    rows, metrics, hits = [], {}, {}
    for name, make in representations.items():
        x = make()
        held = pair_hits(x, *heldout, RECALL_KS, threads=threads)
        hits[name] = held[RECALL_KS[0]]
        train_recall = pair_recall(x, *train, RECALL_KS, threads=threads)
        row = {"aligner": name, "dim": int(x.shape[1])}
        for k in RECALL_KS:
            row[f"heldout_recall@{k}"] = float(held[k].mean()) if len(held[k]) else float("nan")
            metrics[f"{name}_heldout_recall_at_{k}"] = row[f"heldout_recall@{k}"]
        for k in RECALL_KS:
            row[f"train_recall@{k}"] = train_recall[k]
            metrics[f"{name}_train_recall_at_{k}"] = train_recall[k]
        if topics is not None:
            sim = content_similarity(x, topics, seed=seed)
            row.update({"same_topic_cos": sim["same_topic_cos"], "random_cos": sim["random_cos"]})
            metrics[f"{name}_same_topic_cos"] = sim["same_topic_cos"]
            metrics[f"{name}_random_cos"] = sim["random_cos"]
        rows.append(row)
        del x  # before the next space is made
    return pd.DataFrame(rows), metrics, hits
