"""Options of the ranking experiment, importable without torch (the launchpad config is built from them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from semid_assets.core.evaluation.ranker_config import RankerOptions

__all__ = ["VARIANTS", "SID_VARIANTS", "BUDGETED", "RankingOptions"]

VARIANTS = ("hash", "item_id", "dense", "sid_unigram", "sid_bigram", "sid_spm")
SID_VARIANTS = ("sid_unigram", "sid_bigram", "sid_spm")
# The variants whose table is held to the budget; item_id (one row per item) and dense
# (no table) are references outside it.
BUDGETED = ("hash", *SID_VARIANTS)


@dataclass(frozen=True, kw_only=True)
class RankingOptions:
    """The ranking experiment (Singh et al.): which item representations, their budget, the verdicts."""

    variants: tuple[str, ...] = VARIANTS
    """Item representations to train: ``hash``, ``item_id`` (unconstrained: one row per item),
    ``dense`` (frozen content vector), ``sid_unigram``, ``sid_bigram``, ``sid_spm``."""
    items_per_row: int = 8
    """The embedding-table budget is the catalogue's items divided by this (the paper's regime:
    far more items than rows, so hashing collides and SID features share statistics)."""
    table_rows: int | None = None
    """A fixed budget in table rows instead of ``items / items_per_row``."""
    min_items: int = 1
    """A feature of a budgeted table (hashed id, SID n-gram or piece) that fewer trained items
    carry shares the OOV row. 1: only features no trained item carries, and the OOV row stays
    zero. Higher values train the OOV row on the rare features, but take from the items that
    carry them the rows that let the model tell them apart."""
    max_train_rows: int = 500_000
    """The most recent impressions before the month that the ranker trains on."""
    history_length: int = 20
    """The user side also sees the items the user clicked on their last ``history_length``
    positives before each impression, through the variant's own item features (0 = off)."""
    n_boot: int = 300
    """Bootstrap replicates, over users and over items alike."""
    level: float = 0.95
    """Confidence level of every interval."""
    undecided_width: float = 0.1
    """An AUC whose interval (the wider of the user and the item bootstrap) is wider than this
    is reported as "too few to decide" instead of a number."""
    stability_variants: tuple[str, ...] = SID_VARIANTS
    """SID variants retrained on an older tokenizer version's SIDs (stability through the ranker)."""
    stability_margin: float = 0.005
    """The older version's AUC may fall at most this far below the current one's (interval bound)."""
    ranker: RankerOptions = field(default_factory=RankerOptions)
    """How every variant's CTR model is trained."""

    def __post_init__(self):
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"unknown ranking variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
        if "hash" not in self.variants:
            raise ValueError("the variants must include 'hash', the baseline every other variant is compared with")
        bad = sorted(set(self.stability_variants) - set(SID_VARIANTS))
        if bad:
            raise ValueError(f"stability variants must be SID variants ({', '.join(SID_VARIANTS)}), got {bad}")
        for name in ("items_per_row", "min_items", "max_train_rows", "n_boot"):
            if getattr(self, name) < 1:
                raise ValueError(f"RankingOptions.{name} must be at least 1, got {getattr(self, name)}")
        if self.table_rows is not None and self.table_rows < 2:
            raise ValueError(f"table_rows must leave room for a feature row and the OOV row (>= 2), "
                             f"got {self.table_rows}")
        if not 0 < self.level < 1 or not 0 < self.undecided_width <= 1:
            raise ValueError(f"need 0 < level < 1 and 0 < undecided_width <= 1, got {self.level}, "
                             f"{self.undecided_width}")

    def budget_rows(self, n_items: int) -> int:
        """Rows every budgeted table may hold (its OOV row included) for a catalogue of ``n_items``."""
        if self.table_rows is not None:
            return int(self.table_rows)
        return max(2, int(n_items) // self.items_per_row)
