"""Report figures as PNG files (matplotlib's non-interactive backend; no display needed)."""

from __future__ import annotations

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


def agreement_plot(table: pd.DataFrame, title: str, path: Path) -> Path:
    """Agreement vs prefix length, one line per measure of ``core/evaluation/stability.py``'s table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        for column, label in AGREEMENT_COLUMNS.items():
            if column in table.columns:
                ax.plot(table["prefix_length"], table[column], marker="o", label=label)
        ax.set_xlabel("prefix length")
        ax.set_ylabel("agreement (1 = identical)")
        ax.set_xticks(list(table["prefix_length"]))
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
