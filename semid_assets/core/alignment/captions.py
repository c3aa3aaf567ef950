"""Caption targets for the aligner's caption loss: which column, which tokens, which vocabulary.

Captions are tokenized by the text encoder's own WordPiece tokenizer
(:meth:`~semid_assets.core.features.text_encoder.TextEncoder.tokenize`), so the caption vocabulary
is a subset of the ids the token matrices were computed from. The decoder predicts over a
*compact* vocabulary: row 0 = PAD, row 1 = UNK, then the most frequent ids of the training
captions (ties by id), at most ``vocab_size`` rows in all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PAD, UNK = 0, 1  # compact-vocabulary rows reserved before the caption tokens
DEFAULT_CAPTION_COLUMN = "caption"


def caption_column(text_columns: Sequence[str], requested: str | None = None) -> str | None:
    """The text column the caption loss predicts: ``requested``, else ``caption``, else the first text column.

    None when the items have no text column (the caption loss is then off).
    """
    text_columns = list(text_columns)
    if requested:
        if requested not in text_columns:
            raise ValueError(f"caption column {requested!r} is not a text column of the items "
                             f"(text columns: {text_columns}); set caption_column to one of them.")
        return requested
    if DEFAULT_CAPTION_COLUMN in text_columns:
        return DEFAULT_CAPTION_COLUMN
    return text_columns[0] if text_columns else None


def build_vocabulary(token_ids: Sequence[Sequence[int]], vocab_size: int) -> np.ndarray:
    """int64 original ids of compact rows ``2 … vocab_size - 1``, most frequent first (ties: smaller id)."""
    if vocab_size < 3:
        raise ValueError(f"vocab_size must be >= 3 (PAD, UNK and one token), got {vocab_size}.")
    counts = Counter(t for row in token_ids for t in row)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: vocab_size - 2]
    return np.array([t for t, _ in ranked], dtype=np.int64)


def encode_captions(token_ids: Sequence[Sequence[int]], vocabulary: np.ndarray,
                    max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Compact ids ``int64 [n, max_tokens]`` (PAD-filled, truncated) and their mask (True = real token)."""
    lookup = {int(t): i + 2 for i, t in enumerate(vocabulary.tolist())}
    n = len(token_ids)
    ids = np.full((n, max_tokens), PAD, np.int64)
    for i, row in enumerate(token_ids):
        row = row[:max_tokens]
        ids[i, : len(row)] = [lookup.get(int(t), UNK) for t in row]
    return ids, ids != PAD


@dataclass
class CaptionData:
    """Compact caption ids per item (``[n, L]``, PAD-filled), their mask, and which items the loss may train on."""

    ids: np.ndarray
    mask: np.ndarray
    trainable: np.ndarray
    vocabulary: np.ndarray
    column: str


def prepare_captions(token_ids: Sequence[Sequence[int]], trainable: np.ndarray, column: str,
                     vocab_size: int = 4096, max_tokens: int = 24) -> CaptionData:
    """Caption targets of every item; the vocabulary comes from the ``trainable`` items' captions only."""
    trainable = np.asarray(trainable, bool)
    if len(trainable) != len(token_ids):
        raise ValueError(f"{len(token_ids)} captions but {len(trainable)} trainable flags.")
    vocabulary = build_vocabulary([row[:max_tokens] for row, t in zip(token_ids, trainable) if t], vocab_size)
    ids, mask = encode_captions(token_ids, vocabulary, max_tokens)
    return CaptionData(ids=ids, mask=mask, trainable=trainable, vocabulary=vocabulary, column=column)
