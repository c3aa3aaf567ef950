"""Report figures as PNG files (matplotlib's non-interactive backend; no display needed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

AGREEMENT_COLUMNS = {
    "ari": "adjusted Rand index",
    "nmi": "normalised mutual information",
    "ami": "adjusted mutual information",
    "matched_kept": "matched prefix kept",
    "prefix_jaccard": "prefix-neighbour Jaccard",
    "raw_unchanged": "prefix literally unchanged",
}


@contextmanager
def _figure(path: Path, title: str, size: tuple[float, float]) -> Iterator:
    """An axes to draw on; then grid, legend and title, written to ``path`` as PNG and closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=100)
    try:
        yield ax
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def agreement_plot(table: pd.DataFrame, title: str, path: Path) -> Path:
    """Agreement vs prefix length, one line per measure of ``core/evaluation/stability.py``'s table."""
    with _figure(path, title, (6.4, 4.0)) as ax:
        for column, label in AGREEMENT_COLUMNS.items():
            if column in table.columns:
                ax.plot(table["prefix_length"], table[column], marker="o", label=label)
        ax.set_xlabel("prefix length")
        ax.set_ylabel("agreement (1 = identical)")
        ax.set_xticks(list(table["prefix_length"]))
        ax.set_ylim(-0.02, 1.02)
    return path


STALENESS_LINES = {
    "literal_kept": "candidate keeps published IDs (literal)",
    "literal_kept_origin": "candidate keeps origin IDs (literal)",
    "new_item_collision_rate": "new items colliding under the generation",
    "mse_gain": "relative MSE gain of the candidate",
    "recall_gain": "held-out recall gain of the serving aligner",
}


def staleness_plot(history: pd.DataFrame, title: str, path: Path) -> Path:
    """The staleness report over the months (``staleness_over_months``), one line per figure; a month
    that cut a new generation is marked with a dashed vertical line."""
    with _figure(path, f"{title} (dashed: a generation starts)", (7.2, 4.2)) as ax:
        x = list(range(len(history)))
        for column, label in STALENESS_LINES.items():
            values = history[column].astype(float)
            if values.notna().any():
                ax.plot(x, values, marker="o", label=label)
        for i, decision in enumerate(history["decision"]):
            if decision in ("first", "cut"):
                ax.axvline(i, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xticks(x, list(history["month"]), rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("share / relative gain")
    return path
