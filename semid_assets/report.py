"""``semid report``: the per-month tokenizer comparison, read from the stored ``tokenizer_comparison``."""

from __future__ import annotations

import pandas as pd

from semid_assets.core.evaluation.comparison import display_table, relative_differences
from semid_assets.core.markdown import markdown_table
from semid_assets.settings import Settings


def comparison_report(settings: Settings, month: str | None = None) -> str:
    """Markdown: each compared month's table across methods, then RQ-Kmeans vs RQ-VAE (OneRec Table 11)."""
    folder = settings.assets_dir(settings.source().name) / "tokenizer_comparison"
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if month is not None:
        files = [f for f in files if f.stem == month]
    if not files:
        which = f"month {month}" if month else "any month"
        raise FileNotFoundError(f"no tokenizer_comparison for {which} under {folder}; run `semid demo` (or "
                                f"materialise tokenizer_comparison) first")
    parts = []
    for path in files:
        frame = pd.read_parquet(path)
        parts.append(f"## {path.stem}: {len(frame)} methods\n\n{markdown_table(display_table(frame))}")
        relative = relative_differences(frame)
        if relative is not None:
            parts.append(f"RQ-Kmeans vs RQ-VAE, {path.stem} (relative to RQ-VAE, as OneRec Table 11):\n\n"
                         f"{markdown_table(relative)}")
    return "\n\n".join(parts)
