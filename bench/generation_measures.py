"""What the generation benches measure, read from a finished home (shared by bench_generations.py and
bench_generation_tuning.py; not a test, nothing is asserted).

A *kept* figure is the share of the reference month's items whose full code tuple a version gives
them literally; *matched* is the same after the best one-to-one renaming of each level's codes
(``sid_stability``'s ``matched_kept``), reported beside it because renaming hides in it. Code tuples
are compared, not suffixes: an item whose tuple a cut leaves unchanged keeps its suffix
(``core/lifecycle/generations.cut_generation``), so the two agree on every published SID.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from semid_assets.core.data.embedding_table import embeddings_from_arrow
from semid_assets.core.evaluation.stability import compare_codes
from semid_assets.core.lifecycle.generations import PublishedIds, published
from semid_assets.core.lifecycle.staleness import kept_share
from semid_assets.core.storage import AssetStore
from semid_assets.core.tokenizers.methods import make_tokenizer

__all__ = ["MonthData", "month_data", "published_ids", "kept_and_matched", "relative_mse", "RefitCache"]


@dataclass(frozen=True)
class MonthData:
    """A month's stored inputs of every tokenizer: the serving aligner's vectors, and the collaborative
    rows LETTER reads (None when not stored)."""

    month: str
    item_ids: np.ndarray
    vectors: np.ndarray
    collaborative: np.ndarray | None

    def side(self, tokenizer) -> dict:
        """The side inputs ``tokenizer`` declares (LETTER's ``collaborative``)."""
        if "collaborative" in tokenizer.side_inputs and self.collaborative is None:
            raise FileNotFoundError(f"collaborative_embeddings of {self.month} are not stored; LETTER needs them")
        return {"collaborative": self.collaborative} if "collaborative" in tokenizer.side_inputs else {}


def month_data(store: AssetStore, month: str) -> MonthData:
    item_ids, vectors = embeddings_from_arrow(store.read_table("aligned_embeddings", month=month))
    collaborative = None
    if store.exists("collaborative_embeddings", month=month):
        cf_ids, cf_vectors = embeddings_from_arrow(store.read_table("collaborative_embeddings", month=month))
        rows = pd.Index(pd.Series(cf_ids).astype(str)).get_indexer(pd.Series(item_ids).astype(str))
        if (rows < 0).any():
            raise ValueError(f"{int((rows < 0).sum())} item(s) of aligned_embeddings [{month}] have no "
                             "collaborative row; re-materialise collaborative_embeddings")
        collaborative = cf_vectors[rows]
    return MonthData(month, item_ids, vectors, collaborative)


def published_ids(store: AssetStore, month: str, method: str) -> PublishedIds:
    return published(store.read_table("semantic_ids", month=month, method=method).to_pandas())


def kept_and_matched(item_ids: np.ndarray, codes: np.ndarray, reference: PublishedIds) -> tuple[float, float]:
    """``(literal, matched)``: shares of ``reference``'s items (that ``item_ids`` holds) keeping their tuple."""
    literal = kept_share(item_ids, codes, reference.item_ids, reference.codes)
    rows = pd.Index(pd.Series(np.asarray(item_ids)).astype(str)).get_indexer(
        pd.Series(reference.item_ids).astype(str))
    both = rows >= 0
    if not both.any():
        return literal, float("nan")
    report = compare_codes(reference.codes[both], np.asarray(codes)[rows[both]])
    return literal, report.figure("matched_kept", reference.levels)


def relative_mse(tokenizer, vectors: np.ndarray, codes: np.ndarray) -> float:
    """Relative MSE of the full code tuple (RQ-VAE/LETTER: through the decoder, in the input space)."""
    return float(tokenizer.level_report(vectors, np.asarray(codes))["relative_mse"].iloc[-1])


class RefitCache:
    """Unanchored refits of a month with a stored version's options (``anchor_to_previous`` off: a plain
    ``fit_encode``), kept in memory and, with ``folder``, as one small JSON per month × method × options."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder
        self._found: dict[tuple, dict] = {}

    def get(self, method: str, options, data: MonthData) -> dict:
        key = (method, data.month, repr(options))
        if key not in self._found:
            self._found[key] = self._load(key) or self._fit(method, options, data, key)
        return self._found[key]

    def _path(self, key: tuple) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / f"refit-{key[0]}-{key[1]}-{hashlib.sha256(key[2].encode()).hexdigest()[:12]}.json"

    def _load(self, key: tuple) -> dict | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        return json.loads(path.read_text())

    def _fit(self, method: str, options, data: MonthData, key: tuple) -> dict:
        model = make_tokenizer(method, options)
        started = time.perf_counter()
        codes = model.fit_encode(data.vectors, **data.side(model))
        found = {"relative_mse": relative_mse(model, data.vectors, codes),
                 "seconds": round(time.perf_counter() - started, 1)}
        path = self._path(key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(found))
        return found
