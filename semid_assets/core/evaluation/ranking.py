"""The downstream ranking experiment of Singh et al. (``REFERENCE.md`` §2), one month at a time.

Train a CTR model on every impression before month ``m`` (capped to the most recent
``max_train_rows``), predict the labels of month ``m``'s impressions, and compare item
representations that differ only in the item side of the model:

| variant | item features | table |
| --- | --- | --- |
| ``hash`` | the item id hashed into a table | ``table_size`` rows |
| ``dense`` | the aligned content embedding, frozen, through a linear map | — |
| ``sid_unigram`` | ``c1, c2, …, cL`` (each level its own vocabulary) | ``L·K`` rows |
| ``sid_bigram`` | ``c1c2, c2c3, …`` | ``(L−1)·K²`` rows, hashed into ``table_size`` when larger |
| ``sid_spm`` | SentencePiece pieces learned on the training catalogue's SIDs | ``table_size`` pieces at most |

The user side also reads the items the user clicked before each impression (see
``positive_history``), through the same item features. Negatives are the impressions'
own labels (label 0 = shown and not clicked); nothing is sampled. Cold items are items
created in month ``m``: no training row can have seen them. AUC (overall and on cold
items) comes with a user-bootstrap interval, and every SID variant is compared with
``hash`` by the paired interval of the AUC difference.

Stability through the ranker (A.2): the same SID variants retrained with the SIDs an
older tokenizer version gives the same items; the paired difference ``old − current``
and whether its interval stays within ``stability_margin``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from semid_assets.core.data import schema
from semid_assets.core.evaluation.auc import Interval, UserBootstrap, log_loss
from semid_assets.core.evaluation.ranker_config import RankerConfig
from semid_assets.core.evaluation.sid_features import SidPieces, bag_width, hash_bags, ngram_bags

__all__ = ["VARIANTS", "SID_VARIANTS", "EvalConfig", "SidVersion", "RankingReport", "evaluate_month", "split_month",
           "positive_history"]

VARIANTS = ("hash", "dense", "sid_unigram", "sid_bigram", "sid_spm")
SID_VARIANTS = ("sid_unigram", "sid_bigram", "sid_spm")


@dataclass(frozen=True)
class EvalConfig:
    variants: tuple[str, ...] = VARIANTS
    table_size: int = 8192
    """Rows of every budgeted table: the hash table, hashed bigrams, SentencePiece's vocabulary."""
    max_train_rows: int = 500_000
    """The most recent impressions before the month that the ranker trains on."""
    n_boot: int = 300
    level: float = 0.95
    history_length: int = 20
    """The user side also sees the items the user clicked on their last ``history_length``
    positives before each impression, through the variant's own item features (0 = off)."""
    stability_variants: tuple[str, ...] = SID_VARIANTS
    stability_margin: float = 0.005
    """The older version's AUC may fall at most this far below the current one's (interval bound)."""
    ranker: RankerConfig = field(default_factory=RankerConfig)

    def __post_init__(self):
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"unknown ranking variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
        if "hash" not in self.variants:
            raise ValueError("the variants must include 'hash', the baseline every SID variant is compared with")
        bad = sorted(set(self.stability_variants) - set(SID_VARIANTS))
        if bad:
            raise ValueError(f"stability variants must be SID variants ({', '.join(SID_VARIANTS)}), got {bad}")
        if self.max_train_rows < 1 or self.table_size < 1:
            raise ValueError("max_train_rows and table_size must be positive")


@dataclass(frozen=True)
class SidVersion:
    """The SIDs one tokenizer version gives the catalogue's items (rows in catalogue order)."""

    month: str
    codes: np.ndarray
    codebook_size: int


@dataclass
class Split:
    train: pd.DataFrame
    evaluation: pd.DataFrame
    cold_items: np.ndarray  # bool per catalogue item: created in the month
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
    cold = pd.to_datetime(np.asarray(created_at)) >= start
    return Split(train, evaluation, np.asarray(cold), len(before))


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
class _Scored:
    name: str
    sid_month: str
    rows: int
    features_per_item: float
    seconds: float
    best_epoch: float
    scores: np.ndarray


@dataclass
class RankingReport:
    month: str
    table: pd.DataFrame  # one row per trained model
    versus_hash: pd.DataFrame  # each SID / dense variant − hash, overall and cold
    stability: pd.DataFrame  # old − current SIDs per stability variant (empty without an older version)
    counts: dict
    metrics: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)  # model label → {"all": Interval, "cold": Interval}


def _item_input(variant: str, item_ids: np.ndarray, sids: SidVersion | None, embeddings: np.ndarray | None,
                known: np.ndarray, config: EvalConfig):
    # torch loads only when a model is trained, not when the Dagster definitions load.
    from semid_assets.core.evaluation.ranker import ItemInput

    if variant == "hash":
        bags, rows = hash_bags(item_ids, config.table_size)
        return ItemInput(bags=bags, rows=rows)
    if variant == "dense":
        if embeddings is None:
            raise ValueError("the dense variant needs the aligned embeddings")
        return ItemInput(dense=embeddings)
    if sids is None:
        raise ValueError(f"the {variant} variant needs semantic IDs")
    if variant in ("sid_unigram", "sid_bigram"):
        n = 1 if variant == "sid_unigram" else 2
        bags, rows = ngram_bags(sids.codes, n, sids.codebook_size, config.table_size)
        return ItemInput(bags=bags, rows=rows)
    # SentencePiece learns its pieces from the SIDs of items known before the month only.
    pieces = SidPieces.fit(sids.codes[known], sids.codebook_size, config.table_size)
    bags, rows = pieces.bags(sids.codes)
    return ItemInput(bags=bags, rows=rows)


def evaluate_month(month: str, interactions: pd.DataFrame, item_ids: np.ndarray, created_at,
                   sids: SidVersion, embeddings: np.ndarray | None = None, older: SidVersion | None = None,
                   config: EvalConfig = EvalConfig(), progress=None) -> RankingReport:
    """Train and score every variant for ``month``; see the module docstring.

    ``item_ids``/``created_at`` describe the catalogue as of the month's end; ``sids``,
    ``older`` and ``embeddings`` are row-aligned with it.
    """
    log = progress or (lambda message: None)
    item_ids = np.asarray(item_ids)
    n_items = len(item_ids)
    for what, rows in (("semantic IDs", sids.codes), ("older semantic IDs", None if older is None else older.codes),
                       ("embeddings", embeddings)):
        if rows is not None and len(rows) != n_items:
            raise ValueError(f"{what} have {len(rows)} rows but the catalogue has {n_items} items")
    index = pd.Index(item_ids)
    if index.has_duplicates:
        raise ValueError("item_ids must be unique")
    # One time order for everything: the training tail, the histories, the evaluation rows.
    interactions = interactions.sort_values(schema.TS, kind="stable").reset_index(drop=True)
    split = split_month(interactions, created_at, month, config.max_train_rows)
    train, evaluation = split.train, split.evaluation
    every_item = index.get_indexer(interactions[schema.ITEM_ID])
    if (every_item < 0).any():
        missing = interactions[schema.ITEM_ID][every_item < 0]
        raise ValueError(f"{int((every_item < 0).sum())} impression(s) are on {missing.nunique()} item(s) "
                         f"the catalogue lacks (e.g. {missing.unique()[:3].tolist()}); materialise raw_items "
                         f"and the IDs for this month from the same source.")
    train_items, eval_items = every_item[train.index], every_item[evaluation.index]
    train_history = eval_history = None
    if config.history_length > 0:
        history = positive_history(pd.factorize(interactions[schema.USER_ID])[0], every_item,
                                   interactions[schema.LABEL].to_numpy(), config.history_length)
        train_history, eval_history = history[train.index], history[evaluation.index]
    users = pd.Index(pd.unique(train[schema.USER_ID]))
    n_users = len(users)
    train_users = users.get_indexer(train[schema.USER_ID])
    eval_users = users.get_indexer(evaluation[schema.USER_ID])
    eval_users = np.where(eval_users < 0, n_users, eval_users)
    y_train = train[schema.LABEL].to_numpy().astype(np.int8)
    y_eval = evaluation[schema.LABEL].to_numpy().astype(np.int8)
    known = ~split.cold_items
    cold_rows = split.cold_items[eval_items]

    # Users are the bootstrap's clusters; evaluation users unseen in training count too.
    groups = pd.Index(pd.unique(evaluation[schema.USER_ID])).get_indexer(evaluation[schema.USER_ID])
    n_groups = int(groups.max()) + 1
    boot_all = UserBootstrap(y_eval, groups, n_groups=n_groups, n_boot=config.n_boot, seed=config.ranker.seed,
                             level=config.level)
    boot_cold = UserBootstrap(y_eval[cold_rows], groups[cold_rows], n_groups=n_groups, n_boot=config.n_boot,
                              seed=config.ranker.seed, level=config.level)
    log(f"{month}: training on {len(train)} impressions ({split.train_rows_before_cap} before the cap of "
        f"{config.max_train_rows}), {n_users} users; evaluating on {len(evaluation)} impressions, "
        f"{int(cold_rows.sum())} of them on {int(split.cold_items.sum())} cold items")

    from semid_assets.core.evaluation.ranker import predict, train_ranker

    def run(name: str, variant: str, version: SidVersion | None) -> _Scored:
        started = time.perf_counter()
        item_input = _item_input(variant, item_ids, version, embeddings, known, config)
        model = train_ranker(train_users, train_items, y_train, n_users, item_input, config.ranker,
                             progress=lambda m: log(f"{name}: {m}"), history=train_history)
        scores = predict(model, eval_users, eval_items, threads=config.ranker.threads, history=eval_history)
        seconds = time.perf_counter() - started
        features = bag_width(item_input.bags) if item_input.bags is not None else float("nan")
        log(f"{name}: trained and scored in {seconds:.1f}s")
        return _Scored(name, version.month if version is not None else "", item_input.rows, features, seconds,
                       float(model.info["best_epoch"]), scores)

    scored = [run(v, v, sids if v.startswith("sid_") else None) for v in config.variants]
    stability_runs = []
    if older is not None:
        for variant in config.stability_variants:
            if variant in config.variants:
                stability_runs.append((variant, run(f"{variant}@{older.month}", variant, older)))

    rows, intervals, replicates = [], {}, {}
    for s in [*scored, *(r for _, r in stability_runs)]:
        auc_all, rep_all = boot_all.auc(s.scores)
        auc_cold, rep_cold = boot_cold.auc(s.scores[cold_rows])
        intervals[s.name] = {"all": auc_all, "cold": auc_cold}
        replicates[s.name] = (auc_all, rep_all, auc_cold, rep_cold)
        rows.append({
            "model": s.name, "sids": s.sid_month, "table rows": s.rows if s.rows else None,
            "features/item": round(s.features_per_item, 2),
            "auc": auc_all.estimate, "auc 95% ci": f"[{auc_all.low:.4f}, {auc_all.high:.4f}]",
            "cold auc": auc_cold.estimate, "cold auc 95% ci": f"[{auc_cold.low:.4f}, {auc_cold.high:.4f}]",
            "log-loss": log_loss(y_eval, s.scores),
            "cold log-loss": log_loss(y_eval[cold_rows], s.scores[cold_rows]) if cold_rows.any() else float("nan"),
            "epochs": s.best_epoch, "seconds": round(s.seconds, 1),
        })

    def paired(a: str, b: str) -> tuple[Interval, Interval]:
        a_all, ra_all, a_cold, ra_cold = replicates[a]
        b_all, rb_all, b_cold, rb_cold = replicates[b]
        return (boot_all.difference(a_all.estimate, ra_all, b_all.estimate, rb_all),
                boot_cold.difference(a_cold.estimate, ra_cold, b_cold.estimate, rb_cold))

    versus = []
    for s in scored:
        if s.name == "hash":
            continue
        diff_all, diff_cold = paired(s.name, "hash")
        versus.append({"model": s.name, "auc − hash": diff_all.estimate,
                       "95% ci": f"[{diff_all.low:.4f}, {diff_all.high:.4f}]",
                       "cold auc − hash": diff_cold.estimate,
                       "cold 95% ci": f"[{diff_cold.low:.4f}, {diff_cold.high:.4f}]",
                       "beats hash on cold items": bool(diff_cold.low > 0)})
    stability = []
    for variant, s in stability_runs:
        diff_all, diff_cold = paired(s.name, variant)
        stability.append({"model": variant, "current sids": sids.month, "older sids": older.month,
                          "auc old − current": diff_all.estimate,
                          "95% ci": f"[{diff_all.low:.4f}, {diff_all.high:.4f}]",
                          "cold auc old − current": diff_cold.estimate,
                          "cold 95% ci": f"[{diff_cold.low:.4f}, {diff_cold.high:.4f}]",
                          f"within {config.stability_margin}": bool(diff_all.low >= -config.stability_margin)})

    metrics = {}
    for row in rows:
        key = row["model"].replace("@", "_at_")
        metrics.update({f"auc_{key}": row["auc"], f"auc_cold_{key}": row["cold auc"],
                        f"logloss_{key}": row["log-loss"],
                        f"auc_low_{key}": intervals[row["model"]]["all"].low,
                        f"auc_high_{key}": intervals[row["model"]]["all"].high,
                        f"auc_cold_low_{key}": intervals[row["model"]]["cold"].low,
                        f"auc_cold_high_{key}": intervals[row["model"]]["cold"].high,
                        f"seconds_{key}": row["seconds"]})
    for row in versus:
        metrics[f"cold_auc_gain_over_hash_{row['model']}"] = row["cold auc − hash"]
    for row in stability:
        metrics[f"auc_old_minus_current_{row['model']}"] = row["auc old − current"]
    counts = {"train_rows": len(train), "train_rows_before_cap": split.train_rows_before_cap,
              "train_users": n_users, "eval_rows": len(evaluation), "eval_positive_share": float(y_eval.mean()),
              "cold_items": int(split.cold_items.sum()), "cold_eval_rows": int(cold_rows.sum()),
              "older_sids": older.month if older is not None else ""}
    table = pd.DataFrame(rows)
    table["table rows"] = table["table rows"].astype("Int64")  # dense has no table
    return RankingReport(month, table, pd.DataFrame(versus), pd.DataFrame(stability), counts,
                         {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and np.isfinite(v)},
                         intervals)
