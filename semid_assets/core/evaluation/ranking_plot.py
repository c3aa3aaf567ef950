"""The ranking experiment's figure: AUC per model with its interval, overall and on cold items."""

from __future__ import annotations

import io

import numpy as np

from semid_assets.core.evaluation.auc import Interval


def auc_plot_png(intervals: dict[str, dict[str, Interval]], title: str) -> bytes:
    """PNG bytes: one row per model, the AUC and its interval as a point with error bars."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    names = list(intervals)
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 1.6), dpi=110)
    for offset, (part, colour, label) in enumerate((("all", "tab:blue", "all impressions"),
                                                     ("cold", "tab:orange", "cold items"))):
        est = np.array([intervals[n][part].estimate for n in names])
        low = np.array([intervals[n][part].low for n in names])
        high = np.array([intervals[n][part].high for n in names])
        err = np.vstack([np.nan_to_num(est - low), np.nan_to_num(high - est)])
        ax.errorbar(est, y + (offset - 0.5) * 0.3, xerr=err, fmt="o", color=colour, capsize=3, label=label)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("AUC (95 % user-bootstrap interval)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
