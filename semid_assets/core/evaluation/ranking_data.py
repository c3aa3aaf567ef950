"""The impressions of one ranking experiment: training rows before the month, evaluation rows in it, the slices.

Everything is indexed once here (users, catalogue rows, histories) so that every variant
trains and scores on exactly the same arrays. The slices of the evaluation rows:

- ``all``: every impression of the month;
- ``strictly cold``: impressions of items the ranker never trained on — no training row
  shows the item and no training row's history holds it, so no gradient ever reached the
  item's features through the item itself;
- ``new this month``: impressions of items created in the month (for a source without
  upload dates, such as MovieLens, creation is the first impression, so the two cold
  slices coincide; on a platform they differ by the old items the training never showed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from semid_assets.core.data import schema
from semid_assets.core.evaluation.ranker_config import RankerOptions

__all__ = ["SLICES", "Split", "split_month", "positive_history", "MonthData", "prepare_month"]

SLICES = ("all", "strictly cold", "new this month")


@dataclass
class Split:
    train: pd.DataFrame
    evaluation: pd.DataFrame
    new_items: np.ndarray  # bool per catalogue item: created in the month
    train_rows_before_cap: int


def split_month(interactions: pd.DataFrame, created_at, month: str, max_train_rows: int) -> Split:
    """Impressions before ``month`` (the most recent ``max_train_rows``) and those of ``month``."""
    start = pd.Timestamp(f"{month}-01")
    end = start + pd.offsets.MonthBegin(1)
    ts = pd.to_datetime(interactions[schema.TS]).to_numpy()
    before = interactions[ts < start.to_datetime64()]
    evaluation = interactions[(ts >= start.to_datetime64()) & (ts < end.to_datetime64())]
    if not len(evaluation):
        raise ValueError(f"no impressions in {month}: nothing to evaluate the ranker on")
    if not len(before):
        raise ValueError(f"no impressions before {month}: the ranker has nothing to train on; evaluate a later month.")
    before = before.sort_values(schema.TS, kind="stable")
    train = before.iloc[-max_train_rows:] if len(before) > max_train_rows else before
    new = pd.to_datetime(np.asarray(created_at)) >= start
    return Split(train, evaluation, np.asarray(new), len(before))


def positive_history(users: np.ndarray, items: np.ndarray, labels: np.ndarray, length: int) -> np.ndarray:
    """int64 ``[n, length]``: for each impression (rows in time order), the items its user
    clicked on the ``length`` impressions with label 1 before it, oldest first; -1 pads."""
    users, items, labels = np.asarray(users), np.asarray(items), np.asarray(labels).astype(bool)
    n = len(users)
    order = np.lexsort((np.arange(n), users))  # by user, then time
    sorted_users = users[order]
    positive = labels[order]
    liked = np.append(items[order][positive], -1)  # each user's clicks, contiguous, in time order
    before = np.cumsum(positive) - positive  # clicks strictly before each row, over all users so far
    first = before[np.searchsorted(sorted_users, sorted_users, side="left")]  # where the user's clicks start
    window = (before[:, None] - length) + np.arange(length)[None, :]
    history = np.where(window >= first[:, None], liked[np.clip(window, 0, None)], -1)
    out = np.empty_like(history)
    out[order] = history
    return out.astype(np.int64)


@dataclass
class MonthData:
    """One month's experiment as arrays: rows are impressions, items are catalogue rows."""

    month: str
    n_users: int  # users of the training rows; evaluation users unseen in training get index n_users
    train_users: np.ndarray
    train_items: np.ndarray
    train_labels: np.ndarray
    train_history: np.ndarray | None
    eval_users: np.ndarray
    eval_items: np.ndarray
    eval_labels: np.ndarray
    eval_history: np.ndarray | None
    eval_user_groups: np.ndarray  # evaluation users as 0 … n − 1 (the user bootstrap's clusters)
    trained: np.ndarray  # bool per catalogue item: some fitted training row shows it or holds it in its history
    new_items: np.ndarray  # bool per catalogue item: created in the month
    train_rows_before_cap: int

    def slice_rows(self, name: str) -> np.ndarray:
        """Bool per evaluation row: the row belongs to slice ``name`` (see ``SLICES``)."""
        if name == "all":
            return np.ones(len(self.eval_items), dtype=bool)
        if name == "strictly cold":
            return ~self.trained[self.eval_items]
        if name == "new this month":
            return self.new_items[self.eval_items]
        raise ValueError(f"unknown slice {name!r}; the slices are {', '.join(SLICES)}")


def _catalogue_rows(index: pd.Index, interactions: pd.DataFrame) -> np.ndarray:
    rows = index.get_indexer(interactions[schema.ITEM_ID])
    if (rows < 0).any():
        missing = interactions[schema.ITEM_ID][rows < 0]
        raise ValueError(f"{int((rows < 0).sum())} impression(s) are on {missing.nunique()} item(s) "
                         f"the catalogue lacks (e.g. {missing.unique()[:3].tolist()}); materialise raw_items "
                         f"and the IDs for this month from the same source.")
    return rows


def prepare_month(month: str, interactions: pd.DataFrame, item_ids: np.ndarray, created_at, *,
                  max_train_rows: int, history_length: int, ranker: RankerOptions) -> MonthData:
    """Index one month's experiment; ``item_ids``/``created_at`` describe the catalogue at the month's end."""
    index = pd.Index(np.asarray(item_ids))
    if index.has_duplicates:
        raise ValueError("item_ids must be unique")
    # One time order for everything: the training tail, the histories, the evaluation rows.
    interactions = interactions.sort_values(schema.TS, kind="stable").reset_index(drop=True)
    split = split_month(interactions, created_at, month, max_train_rows)
    train, evaluation = split.train, split.evaluation
    every_item = _catalogue_rows(index, interactions)
    train_history = eval_history = None
    if history_length > 0:
        history = positive_history(pd.factorize(interactions[schema.USER_ID])[0], every_item,
                                   interactions[schema.LABEL].to_numpy(), history_length)
        train_history, eval_history = history[train.index], history[evaluation.index]
    users = pd.Index(pd.unique(train[schema.USER_ID]))
    eval_users = users.get_indexer(evaluation[schema.USER_ID])
    train_items = every_item[train.index]
    # Only the fitted rows move weights; the held-out tail only picks the epoch.
    fitted = len(train) - ranker.validation_rows(len(train))
    trained = np.zeros(len(index), dtype=bool)
    trained[train_items[:fitted]] = True
    if train_history is not None:
        held = train_history[:fitted]
        trained[held[held >= 0]] = True
    return MonthData(
        month=month, n_users=len(users), train_users=users.get_indexer(train[schema.USER_ID]),
        train_items=train_items, train_labels=train[schema.LABEL].to_numpy().astype(np.int8),
        train_history=train_history, eval_users=np.where(eval_users < 0, len(users), eval_users),
        eval_items=every_item[evaluation.index], eval_labels=evaluation[schema.LABEL].to_numpy().astype(np.int8),
        eval_history=eval_history,
        eval_user_groups=pd.factorize(evaluation[schema.USER_ID])[0].astype(np.int64),
        trained=trained, new_items=split.new_items, train_rows_before_cap=split.train_rows_before_cap)
