"""The ranking experiment's tables, one per subject, and its flat metrics (for MLflow).

Numbers stay numbers (intervals as ``low``/``high`` columns). The AUC table keeps every
estimate with a ``verdict`` column; ``shown`` puts the verdict in place of an AUC that
cannot be used ("too few to decide"), which is what a reader is shown.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from semid_assets.core.evaluation.auc import log_loss
from semid_assets.core.evaluation.ranking_data import SLICES, MonthData
from semid_assets.core.evaluation.ranking_options import RankingOptions
from semid_assets.core.evaluation.ranking_verdicts import difference_verdict, undecided
from semid_assets.core.evaluation.sid_features import bag_width

__all__ = ["models_table", "auc_table", "versus_hash_table", "stability_table", "metrics_of", "slice_key", "shown",
           "display"]

STABILITY_SLICES = ("all", "strictly cold")


def slice_key(name: str) -> str:
    return {"all": "all", "strictly cold": "strictly_cold", "new this month": "new"}[name]


def _embedding_parameters(features, dim: int) -> int:
    if features.bags is not None:
        return int(features.rows * dim)
    return int(features.dense.shape[1] * dim + dim)  # the linear map of the dense variant


def models_table(runs, data: MonthData, options: RankingOptions) -> pd.DataFrame:
    """One row per model: its table, item-side parameters, the OOV share of its strictly cold items, training."""
    cold_items = np.unique(data.eval_items[data.slice_rows("strictly cold")])
    rows = []
    for run in runs:
        f, trained = run.features, run.scores is not None
        table = f is not None and f.bags is not None
        rows.append({
            "model": run.name, "sids": run.sid_month or None, "table rows": f.rows if table else None,
            "item parameters": _embedding_parameters(f, options.ranker.dim) if f is not None else None,
            "features/item": bag_width(f.bags) if table else None,
            "strictly cold features on OOV": f.oov_share(cold_items) if table else None,
            "log-loss": log_loss(data.eval_labels, run.scores) if trained else None,
            "epochs": run.best_epoch if trained else None, "seconds": run.seconds if trained else None,
            "note": run.note or None})
    frame = pd.DataFrame(rows)
    for column in ("table rows", "item parameters"):
        frame[column] = frame[column].astype("Int64")
    return frame


def auc_table(runs, options: RankingOptions) -> pd.DataFrame:
    """One row per model × slice: the AUC, intervals over users and over items, the wider one, the verdict."""
    rows = []
    for run in runs:
        for name in SLICES:
            score = run.slices[name]
            rows.append({"model": run.name, "table rows": run.features.rows if run.features.bags is not None
                         else None, "slice": name, "auc": score.estimate,
                         "users low": score.users.low, "users high": score.users.high,
                         "items low": score.items.low, "items high": score.items.high,
                         "wider": score.wider, "verdict": undecided(score, options.undecided_width)})
    frame = pd.DataFrame(rows)
    frame["table rows"] = frame["table rows"].astype("Int64")  # dense has no table
    return frame


def shown(auc: pd.DataFrame) -> pd.DataFrame:
    """The AUC table as a reader sees it: the verdict instead of an AUC that cannot be used."""
    out = auc.astype(object)
    out["auc"] = [verdict or value for value, verdict in zip(auc["auc"], auc["verdict"])]
    return out.drop(columns="verdict")


def display(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Cells as text for a markdown report: numbers to ``digits`` significant figures, "—" for none."""
    def cell(value):
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return "—"
        if isinstance(value, (bool, np.bool_, str)):
            return str(value)
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        return f"{float(value):.{digits}g}"

    return frame.astype(object).map(cell)


def _difference_row(model: str, name: str, users, items, width: float) -> dict:
    return {"model": model, "slice": name, "estimate": users.estimate, "users low": users.low,
            "users high": users.high, "items low": items.low, "items high": items.high,
            "verdict": difference_verdict(users, items, width)}


def versus_hash_table(runs, slices, options: RankingOptions) -> pd.DataFrame:
    """Each variant − hash per slice (paired), with its verdict."""
    hash_run = next((r for r in runs if r.name == "hash"), None)
    rows = []
    for run in runs:
        if hash_run is None or run is hash_run:
            continue
        for name in SLICES:
            users, items = slices.difference(name, run.slices[name], hash_run.slices[name])
            rows.append(_difference_row(run.name, name, users, items, options.undecided_width))
    return pd.DataFrame(rows).rename(columns={"estimate": "auc − hash"})


def stability_table(runs, by_name: dict, slices, sids, older, options: RankingOptions) -> pd.DataFrame:
    """Old − current SIDs per stability variant and slice; within the margin when both lower bounds are."""
    rows = []
    for run in runs:
        if "@" not in run.name or run.variant not in by_name:
            continue
        for name in STABILITY_SLICES:
            users, items = slices.difference(name, run.slices[name], by_name[run.variant].slices[name])
            row = _difference_row(run.variant, name, users, items, options.undecided_width)
            row.pop("verdict")
            row.update({f"within {options.stability_margin}": bool(min(users.low, items.low)
                                                                    >= -options.stability_margin)})
            rows.append({"current sids": sids.month, "older sids": older.month, **row})
    return pd.DataFrame(rows).rename(columns={"estimate": "auc old − current"})


def metrics_of(runs, versus: pd.DataFrame, stability: pd.DataFrame, anomalies) -> dict[str, float]:
    """Flat finite metrics: every AUC with its intervals, every gain over hash, every stability difference."""
    metrics = {}
    for run in runs:
        key = run.name.replace("@", "_at_")
        for name, score in run.slices.items():
            s = slice_key(name)
            metrics.update({f"auc_{s}_{key}": score.estimate, f"auc_{s}_{key}_users_low": score.users.low,
                            f"auc_{s}_{key}_users_high": score.users.high, f"auc_{s}_{key}_items_low": score.items.low,
                            f"auc_{s}_{key}_items_high": score.items.high})
        metrics[f"seconds_{key}"] = run.seconds
    for row in versus.to_dict(orient="records"):
        metrics[f"gain_over_hash_{slice_key(row['slice'])}_{row['model']}"] = row["auc − hash"]
    for row in stability.to_dict(orient="records"):
        metrics[f"old_minus_current_{slice_key(row['slice'])}_{row['model']}"] = row["auc old − current"]
    metrics["anomalies"] = len(anomalies)
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
