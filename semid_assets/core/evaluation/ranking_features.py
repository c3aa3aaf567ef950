"""Each variant's item features at one embedding-table budget, the OOV fallback applied.

Budget ``B`` rows (the OOV row included) for every budgeted variant, so they compare at
equal embedding parameters (``B × dim``):

| variant | features | table |
| --- | --- | --- |
| ``hash`` | the item id hashed | ``B − 1`` hashed rows + OOV |
| ``sid_unigram`` | ``c1, c2, …, cL``, one vocabulary per level | ``L·K`` rows, hashed into ``B − 1`` when larger, + OOV |
| ``sid_bigram`` | ``c1c2, c2c3, …`` | ``(L−1)·K²`` rows hashed into ``B − 1``, + OOV |
| ``sid_spm`` | SentencePiece pieces learned on the trained items' SIDs | ``B − 1`` pieces at most, + OOV |
| ``item_id`` | one row per item, no hashing | unconstrained: a row per trained item, + OOV |
| ``dense`` | the aligned content vector, frozen, through a linear map | no table |

Rows no trained item carries (and, for the budgeted variants, rows fewer than
``min_items`` trained items carry) share the OOV row (``sid_features.fold_rare_rows``);
the rows left are renumbered, so ``rows`` is what the model really holds. ``item_id``
keeps every trained item's own row whatever ``min_items`` says: one row per item is what
that reference is; its OOV row is reached by untrained items only and stays zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semid_assets.core.evaluation.sid_features import (SidPieces, fold_rare_rows, hash_bags, id_bags, ngram_bags)

__all__ = ["ItemInput", "Unbuildable", "item_input"]


@dataclass(frozen=True)
class ItemInput:
    """How the model sees each item (rows in catalogue order): a bag of table rows, or a dense vector."""

    bags: np.ndarray | None = None  # int64 [n_items, width], -1 = padding
    rows: int = 0  # table size of the bags
    dense: np.ndarray | None = None  # float32 [n_items, d]
    oov_row: int | None = None  # the row unseen features share: starts at zero, "nothing known"

    def __post_init__(self):
        if (self.bags is None) == (self.dense is None):
            raise ValueError("an ItemInput is either bags of table rows or dense vectors, exactly one of them")
        if self.bags is not None:
            if self.bags.ndim != 2 or self.rows < 1:
                raise ValueError(f"bags must be [n_items, width] with rows >= 1, "
                                 f"got {self.bags.shape}, rows={self.rows}")
            if self.bags.size and (self.bags.max() >= self.rows or self.bags.min() < -1):
                raise ValueError(f"bag entries must lie in [-1, {self.rows - 1}]")
            if self.oov_row is not None and not 0 <= self.oov_row < self.rows:
                raise ValueError(f"oov_row must be a row of the table [0, {self.rows - 1}], got {self.oov_row}")
        elif self.dense.ndim != 2 or not np.isfinite(self.dense).all():
            raise ValueError("dense item vectors must be a finite [n_items, d] array")

    @property
    def n_items(self) -> int:
        return len(self.bags) if self.bags is not None else len(self.dense)

    def oov_share(self, items: np.ndarray) -> float:
        """Share of the features of ``items`` (catalogue rows) that sit on the OOV row."""
        if self.bags is None or self.oov_row is None or not len(items):
            return 0.0
        bags = self.bags[items]
        present = bags >= 0
        return float((bags == self.oov_row).sum() / max(present.sum(), 1))


class Unbuildable(ValueError):
    """The variant cannot be built at this budget (the reason is the message)."""


def _bags(variant: str, item_ids: np.ndarray, codes: np.ndarray | None, codebook_size: int, trained: np.ndarray,
          feature_rows: int) -> tuple[np.ndarray, int]:
    if variant == "hash":
        return hash_bags(item_ids, feature_rows)
    if variant == "item_id":
        return id_bags(len(item_ids))
    if codes is None:
        raise ValueError(f"the {variant} variant needs semantic IDs")
    if variant in ("sid_unigram", "sid_bigram"):
        return ngram_bags(codes, 1 if variant == "sid_unigram" else 2, codebook_size, feature_rows)
    if not trained.any():
        raise Unbuildable("no trained item to learn SentencePiece pieces from")
    symbols = len(np.unique(codes[trained] + codebook_size * np.arange(codes.shape[1])))
    if feature_rows <= symbols:
        raise Unbuildable(f"SentencePiece needs more than the {symbols} (level, code) symbols of the trained "
                          f"SIDs as pieces; the budget leaves {feature_rows} rows")
    # Pieces are learned from the SIDs the ranker trains on, as a serving system would.
    return SidPieces.fit(codes[trained], codebook_size, feature_rows).bags(codes)


def item_input(variant: str, item_ids: np.ndarray, trained: np.ndarray, budget: int, min_items: int,
               codes: np.ndarray | None = None, codebook_size: int = 0,
               embeddings: np.ndarray | None = None) -> ItemInput:
    """The features of ``variant`` for every catalogue item; raises ``Unbuildable`` when the budget cannot hold it."""
    if variant == "dense":
        if embeddings is None:
            raise ValueError("the dense variant needs the aligned embeddings")
        return ItemInput(dense=np.asarray(embeddings, dtype=np.float32))
    if budget < 2:
        raise Unbuildable(f"a budget of {budget} row(s) leaves no room for a feature row beside the OOV row")
    bags, rows = _bags(variant, item_ids, codes, codebook_size, trained, budget - 1)
    folded = fold_rare_rows(bags, rows, trained, 1 if variant == "item_id" else min_items)
    return ItemInput(bags=folded.bags, rows=folded.rows, oov_row=folded.oov_row)
