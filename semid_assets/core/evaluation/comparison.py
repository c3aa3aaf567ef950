"""Tokenizer methods side by side: one row per method of a version, and OneRec Table 11's view.

Per method: reconstruction MSE (absolute and relative to the data's variance) after all
levels, utilisation and entropy per level, the collision rate and largest group before
and after the collision strategy, fit and encode seconds and — when the catalogue
carries ground truth (the embedded default's ``truth_*`` columns, evaluation only) —
how well SID prefixes recover the true topic levels: NMI of the level-1 code vs the
top category, of the 2-code prefix vs the sub-category.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from semid_assets.core.evaluation import stability
from semid_assets.core.tokenizers.metrics import prefix_group_ids

__all__ = ["normalized_mutual_info", "comparison_row", "display_table", "relative_differences", "beam_mse"]

# Rows per block of beam_mse: a multiple of every encoder's own row block (8192, 65536), so the codes of a
# block are the codes the whole array would get.
_BLOCK = 65536


def normalized_mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """NMI of two labelings with the arithmetic-mean normaliser ``2 I(a;b) / (H(a) + H(b))``
    (scikit-learn's default); 1 when one determines the other both ways, 0 when independent.

    The one implementation is ``core/evaluation/stability.py``'s; this keeps the stricter 1-D check."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"labelings must be 1-D, non-empty and of equal length; got {a.shape} and {b.shape}")
    return stability.normalized_mutual_info(a, b)


def beam_mse(tokenizer, X: np.ndarray, beams, catalogue_codes: np.ndarray) -> dict[int, float]:
    """``{beam: final MSE}`` of encoding ``X`` with each beam size and decoding it back, block by block.

    A beam the tokenizer encodes its catalogue with anyway (its ``beam_size``, when its catalogue codes do
    not depend on the population) takes ``catalogue_codes`` instead of encoding again."""
    n, d = X.shape
    found = {}
    for beam in sorted(set(beams)):
        reuse = not tokenizer.population_codes and beam == tokenizer.options.beam_size
        sse = 0.0
        for start in range(0, n, _BLOCK):
            block = X[start : start + _BLOCK]
            codes = catalogue_codes[start : start + _BLOCK] if reuse else tokenizer.encode(block, beam_size=beam)
            diff = tokenizer.decode(codes)
            np.subtract(block, diff, out=diff)
            sse += float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
        found[beam] = sse / (n * d)
    return found


def comparison_row(method: str, report: pd.DataFrame, collisions: dict, fit_seconds: float,
                   encode_seconds: float, codes: np.ndarray, truth: dict[str, np.ndarray] | None,
                   beam_mse: dict[int, float] | None = None) -> dict:
    """One method's row. ``report`` is the tokenizer's level report (``Tokenizer.level_report``)
    on the catalogue's codes before collision handling; ``collisions`` has
    ``collision_rate_before/after`` and ``largest_group_before/after`` of the ``reassign``
    strategy; ``truth`` maps ``category``/``subcategory`` to per-item labels, or is None;
    ``beam_mse`` maps beam sizes to the final MSE of encoding with that beam."""
    last = report.iloc[-1]
    row: dict = {"method": method, "mse": float(last["mse"]), "relative_mse": float(last["relative_mse"])}
    for beam, mse in sorted((beam_mse or {}).items()):
        row[f"mse_beam{beam}"] = float(mse)
    for r in report.itertuples(index=False):
        row[f"utilisation_l{r.level}"] = float(r.utilisation)
    for r in report.itertuples(index=False):
        row[f"entropy_l{r.level}"] = float(r.entropy)
    row.update({
        "collision_rate": float(collisions["collision_rate_before"]),
        "largest_group": int(collisions["largest_group_before"]),
        "collision_rate_reassign": float(collisions["collision_rate_after"]),
        "largest_group_reassign": int(collisions["largest_group_after"]),
        "fit_seconds": round(float(fit_seconds), 2),
        "encode_seconds": round(float(encode_seconds), 3),
    })
    if truth is not None:
        groups = prefix_group_ids(codes)
        row["nmi_l1_category"] = normalized_mutual_info(groups[0], truth["category"])
        if len(groups) > 1:
            row["nmi_l2_subcategory"] = normalized_mutual_info(groups[1], truth["subcategory"])
    return row


def _levels(frame: pd.DataFrame, prefix: str) -> list[str]:
    return sorted((c for c in frame.columns if c.startswith(prefix)), key=lambda c: int(c[len(prefix):]))


def display_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The comparison with per-level columns folded into ``a / b / c`` cells, for reading."""
    out = frame.copy()
    for name, prefix in (("utilisation", "utilisation_l"), ("entropy (nats)", "entropy_l")):
        cols = _levels(frame, prefix)
        if cols:
            position = out.columns.get_loc(cols[0])
            cells = [" / ".join(f"{v:.3f}" for v in values) for values in frame[cols].to_numpy()]
            out = out.drop(columns=cols)
            out.insert(position, name, cells)
    return out


def relative_differences(frame: pd.DataFrame, base: str = "rq_vae", other: str = "rq_kmeans") -> pd.DataFrame | None:
    """OneRec Table 11's view: ``base`` and ``other`` side by side per metric, with ``other``'s
    difference relative to ``base`` (``(other - base) / base``). None unless both rows exist."""
    rows = frame.set_index("method")
    if base not in rows.index or other not in rows.index:
        return None
    metrics = [("reconstruction MSE", "mse")]
    metrics += [(f"utilisation L{c[len('utilisation_l'):]}", c) for c in _levels(frame, "utilisation_l")]
    metrics += [(f"entropy L{c[len('entropy_l'):]} (nats)", c) for c in _levels(frame, "entropy_l")]
    out = []
    for label, column in metrics:
        va, vb = float(rows.at[base, column]), float(rows.at[other, column])
        change = (vb - va) / va if va else float("nan")
        out.append({"metric": label, base: va, other: vb, f"{other} vs {base}": f"{change:+.2%}"})
    return pd.DataFrame(out)
