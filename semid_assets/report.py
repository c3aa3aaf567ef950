"""``semid report``: the per-month tokenizer comparison, read from the stored ``tokenizer_comparison``."""

from __future__ import annotations

from semid_assets.core.evaluation.comparison import display_table, relative_differences
from semid_assets.core.markdown import markdown_table
from semid_assets.core.storage import AssetStore
from semid_assets.settings import Settings


def comparison_report(settings: Settings, month: str | None = None) -> str:
    """Markdown: each compared month's table across methods, then RQ-Kmeans vs RQ-VAE (OneRec Table 11)."""
    store = AssetStore(settings.assets_dir(settings.source().name))
    months = [m for m in store.months("tokenizer_comparison") if month is None or m == month]
    if not months:
        which = f"month {month}" if month else "any month"
        raise FileNotFoundError(f"no tokenizer_comparison for {which} under {store.root / 'tokenizer_comparison'}; "
                                f"run `semid demo` (or materialise tokenizer_comparison) first")
    parts = []
    for compared in months:
        frame = store.read_table("tokenizer_comparison", month=compared).to_pandas()
        parts.append(f"## {compared}: {len(frame)} methods\n\n{markdown_table(display_table(frame))}")
        relative = relative_differences(frame)
        if relative is not None:
            parts.append(f"RQ-Kmeans vs RQ-VAE, {compared} (relative to RQ-VAE, as OneRec Table 11):\n\n"
                         f"{markdown_table(relative)}")
    return "\n\n".join(parts)
