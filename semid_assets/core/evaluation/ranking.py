"""The downstream ranking experiment of Singh et al. (``REFERENCE.md`` §2), one month at a time.

Train a CTR model on every impression before month ``m`` (capped to the most recent
``max_train_rows``), predict the labels of month ``m``'s impressions, and compare item
representations that differ only in the item side of the model (``ranking_features``):
random hashing of the item id, SID unigrams, bigrams and SentencePiece pieces, all held to
one embedding-table budget sized from the catalogue (``items / items_per_row`` rows by
default, the paper's regime of far more items than rows), beside two references outside
the budget: the unconstrained item-ID model (a row per item) and the frozen content vector.

The user side also reads the items the user clicked before each impression
(``ranking_data.positive_history``), through the same item features. Negatives are the
impressions' own labels (label 0 = shown and not clicked); nothing is sampled. AUC is
reported on every impression, on *strictly cold* items (never trained on) and on items
*new this month*, each with intervals over users and over items; every variant is compared
with ``hash`` by paired intervals, and an AUC below chance is flagged with its diagnosis
(``ranking_verdicts``).

Stability through the ranker (A.2): the same SID variants retrained with the SIDs an
older tokenizer version gives the same items; the paired difference ``old − current``
and whether its interval stays within ``stability_margin``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from semid_assets.core.evaluation.ranking_data import SLICES, MonthData, prepare_month
from semid_assets.core.evaluation.ranking_features import ItemInput, Unbuildable, item_input
from semid_assets.core.evaluation.ranking_options import SID_VARIANTS, VARIANTS, RankingOptions
from semid_assets.core.evaluation.ranking_tables import (auc_table, metrics_of, models_table, stability_table,
                                                         versus_hash_table)
from semid_assets.core.evaluation.ranking_verdicts import Anomaly, Slices, SliceScore, diagnose

__all__ = ["VARIANTS", "SID_VARIANTS", "RankingOptions", "SidVersion", "older_version", "RankingReport",
           "evaluate_month"]


@dataclass(frozen=True)
class SidVersion:
    """The SIDs one tokenizer version gives the catalogue's items (rows in catalogue order)."""

    month: str
    codes: np.ndarray
    codebook_size: int


def older_version(month: str, tokenizer, embeddings: np.ndarray, current_month: str) -> SidVersion:
    """The SIDs an older tokenizer version gives today's catalogue, new uploads included (as in serving).

    The version must take embeddings as wide as today's: its input width is ``tokenizer.dim``,
    which for RQ-VAE and LETTER differs from the width of their codebooks (the latent width).
    """
    expected = getattr(tokenizer, "dim", None)
    if expected is None:
        raise ValueError(f"the {month} tokenizer does not say what embedding width it takes (no `dim`)")
    if int(expected) != embeddings.shape[1]:
        raise ValueError(f"the {month} tokenizer takes {int(expected)}-dim embeddings but {current_month}'s are "
                         f"{embeddings.shape[1]}-dim; they cannot be compared.")
    return SidVersion(month, np.asarray(tokenizer.encode(embeddings), dtype=np.int64),
                      int(tokenizer.codebooks.shape[1]))


@dataclass
class _Run:
    """One trained model (or why it could not be built) and its scores on the evaluation rows."""

    name: str
    variant: str
    sid_month: str
    features: ItemInput | None = None
    note: str = ""
    seconds: float = 0.0
    best_epoch: float = float("nan")
    scores: np.ndarray | None = None
    slices: dict[str, SliceScore] = field(default_factory=dict)


@dataclass
class RankingReport:
    month: str
    budget: dict  # rows, parameters, dim, rule: the budget every budgeted variant is held to
    models: pd.DataFrame  # one row per model: its table, parameters, training
    auc: pd.DataFrame  # one row per model × slice: AUC (or why none) and both intervals
    slices: pd.DataFrame  # one row per slice: items, impressions, positive share, users
    versus_hash: pd.DataFrame  # each current variant − hash, per slice, with its verdict
    stability: pd.DataFrame  # old − current SIDs per stability variant (empty without an older version)
    anomalies: list[Anomaly]
    counts: dict
    metrics: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)  # model → slice → the wider Interval (for the plot)


def _train_and_score(run: _Run, data: MonthData, options: RankingOptions, log) -> None:
    # torch loads only when a model is trained, not when the Dagster definitions load.
    from semid_assets.core.evaluation.ranker import predict, train_ranker

    started = time.perf_counter()
    model = train_ranker(data.train_users, data.train_items, data.train_labels, data.n_users, run.features,
                         options.ranker, progress=lambda m: log(f"{run.name}: {m}"), history=data.train_history)
    run.scores = predict(model, data.eval_users, data.eval_items, threads=options.ranker.threads,
                         history=data.eval_history)
    run.seconds = time.perf_counter() - started
    run.best_epoch = float(model.info["best_epoch"])
    log(f"{run.name}: trained and scored in {run.seconds:.1f}s")


def _build(name: str, variant: str, version: SidVersion | None, item_ids, embeddings, data: MonthData,
           budget: int, options: RankingOptions) -> _Run:
    run = _Run(name, variant, version.month if version is not None else "")
    if variant.startswith("sid_") and version is None:
        raise ValueError(f"the {variant} variant needs semantic IDs")
    try:
        run.features = item_input(variant, item_ids, data.trained, budget, options.min_items,
                                  None if version is None else version.codes,
                                  0 if version is None else version.codebook_size, embeddings)
    except Unbuildable as exc:
        run.note = f"not trained: {exc}"
    return run


def evaluate_month(month: str, interactions: pd.DataFrame, item_ids: np.ndarray, created_at,
                   sids: SidVersion, embeddings: np.ndarray | None = None, older: SidVersion | None = None,
                   options: RankingOptions = RankingOptions(), progress=None, warn=None) -> RankingReport:
    """Train and score every variant for ``month``; see the module docstring.

    ``item_ids``/``created_at`` describe the catalogue as of the month's end; ``sids``,
    ``older`` and ``embeddings`` are row-aligned with it. ``progress`` receives progress
    lines, ``warn`` (default ``progress``) the anomalies.
    """
    log = progress or (lambda message: None)
    warn = warn or log
    item_ids = np.asarray(item_ids)
    for what, rows in (("semantic IDs", sids.codes), ("older semantic IDs", None if older is None else older.codes),
                       ("embeddings", embeddings)):
        if rows is not None and len(rows) != len(item_ids):
            raise ValueError(f"{what} have {len(rows)} rows but the catalogue has {len(item_ids)} items")
    data = prepare_month(month, interactions, item_ids, created_at, max_train_rows=options.max_train_rows,
                         history_length=options.history_length, ranker=options.ranker)
    budget = options.budget_rows(len(item_ids))
    slices = Slices(data, options.n_boot, options.ranker.seed, options.level)
    counts = slices.counts()
    log(f"{month}: budget {budget} table rows × {options.ranker.dim} = {budget * options.ranker.dim} embedding "
        f"parameters for {len(item_ids)} items; training on {len(data.train_items)} impressions "
        f"({data.train_rows_before_cap} before the cap of {options.max_train_rows}), {data.n_users} users; "
        + "; ".join(f"{r.slice}: {r.impressions} impressions on {r.items} items" for r in counts.itertuples()))

    runs = [_build(v, v, sids if v.startswith("sid_") else None, item_ids, embeddings, data, budget, options)
            for v in options.variants]
    if older is not None:
        runs += [_build(f"{v}@{older.month}", v, older, item_ids, embeddings, data, budget, options)
                 for v in options.stability_variants if v in options.variants]
    for run in runs:
        if run.features is None:
            log(f"{run.name}: {run.note}")
            continue
        _train_and_score(run, data, options, log)
        run.slices = {name: slices.score(name, run.scores) for name in SLICES}
    return _report(month, runs, data, slices, counts, budget, sids, older, options, log, warn)


def _report(month, runs, data, slices, counts, budget, sids, older, options, log, warn) -> RankingReport:
    trained = [r for r in runs if r.scores is not None]
    by_name = {r.name: r for r in trained}
    anomalies = []
    for run in trained:
        for name, score in run.slices.items():
            if score.below_chance():
                rows = slices.rows[name]
                cause = diagnose(data.eval_labels[rows], run.scores[rows], data.eval_items[rows],
                                 run.features.oov_share(np.unique(data.eval_items[rows])))
                anomalies.append(Anomaly(run.name, name, score.estimate, score.users, score.items, cause))
                warn(anomalies[-1].message())
    wider = [s.wider for r in trained for s in r.slices.values() if s.wider]
    log(f"{month}: the interval over items is the wider in {wider.count('items')} of {len(wider)} "
        f"model × slice AUCs, the interval over users in {wider.count('users')}")
    auc = auc_table(trained, options)
    versus = versus_hash_table([r for r in trained if "@" not in r.name], slices, options)
    stability = stability_table(trained, by_name, slices, sids, older, options)
    budget_info = {"budget_rows": int(budget), "budget_parameters": int(budget * options.ranker.dim),
                   "dim": options.ranker.dim,
                   "budget_rule": (f"fixed at {options.table_rows} rows" if options.table_rows is not None
                                   else f"{data.trained.size} items / {options.items_per_row}")}
    counts_info = {"train_rows": int(len(data.train_items)), "train_rows_before_cap": int(data.train_rows_before_cap),
                   "train_users": int(data.n_users), "eval_rows": int(len(data.eval_items)),
                   "older_sids": older.month if older is not None else ""}
    intervals = {r.name: {n: max((s.users, s.items), key=lambda i: i.width if np.isfinite(i.width) else -1)
                          for n, s in r.slices.items()} for r in trained}
    return RankingReport(month, budget_info, models_table(runs, data, options), auc, counts, versus, stability,
                         anomalies, counts_info, metrics_of(trained, versus, stability, anomalies), intervals)

