"""The ranking experiment's figure: AUC per model with its interval, per slice (all, strictly cold, new)."""

from __future__ import annotations

import io

import numpy as np

from semid_assets.core.evaluation.auc import Interval


def auc_plot_png(intervals: dict[str, dict[str, Interval]], title: str) -> bytes:
    """PNG bytes: one row per model, per slice the AUC and its interval (the wider of users and items)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    names = list(intervals)
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7.5, 0.6 * len(names) + 1.6), dpi=110)
    parts = (("all", "tab:blue", "all impressions"), ("strictly cold", "tab:orange", "strictly cold items"),
             ("new this month", "tab:green", "new this month"))
    for offset, (part, colour, label) in enumerate(parts):
        est = np.array([intervals[n][part].estimate for n in names])
        low = np.array([intervals[n][part].low for n in names])
        high = np.array([intervals[n][part].high for n in names])
        err = np.vstack([np.nan_to_num(est - low), np.nan_to_num(high - est)])
        ax.errorbar(est, y + (offset - 1) * 0.25, xerr=err, fmt="o", color=colour, capsize=3, label=label)
    ax.axvline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("AUC (95 % interval: the wider of the bootstraps over users and over items)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
