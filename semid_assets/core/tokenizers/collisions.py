"""Collision strategies: what to do when several items land on the same full code tuple.

- ``suffix`` (TIGER): keep the codes and append a counter within the colliding group
  (``core/tokenizers/sids.py``); IDs become L + 1 tokens.
- ``reassign``: keep L tokens. The first (oldest) item of a group keeps its tuple; each
  later one, in row order, moves to the nearest last-level code — given its own first
  L - 1 codes — whose full tuple nobody holds yet. Only the last level changes, so the
  prefix hierarchy is untouched. Items whose ``candidates`` nearest codes are all taken
  keep their collision (the suffix still separates them), and are counted.
"""

from __future__ import annotations

import numpy as np

from semid_assets.core.tokenizers.metrics import collision_stats, prefix_group_ids

__all__ = ["STRATEGIES", "reassign_collisions"]

STRATEGIES = ("suffix", "reassign")


def reassign_collisions(codes: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, dict]:
    """Codes with colliding items moved to free last-level codes, and a report.

    ``candidates`` int [n, k]: each item's last-level codes nearest first (e.g. from
    ``core.residual.last_level_candidates``). Returns ``(new codes int32 [n, L], report)``
    with report keys ``collision_rate_before/after``, ``largest_group_before/after``,
    ``moved`` (items given another last code) and ``stuck`` (colliding items with no free
    candidate).
    """
    codes = np.asarray(codes)
    candidates = np.asarray(candidates)
    if codes.ndim != 2 or candidates.ndim != 2 or candidates.shape[0] != codes.shape[0]:
        raise ValueError(f"codes [n, L] and candidates [n, k] must share n; got {codes.shape} and {candidates.shape}")
    n, L = codes.shape
    rate_before, largest_before = collision_stats(codes)
    out = codes.astype(np.int32, copy=True)
    group = prefix_group_ids(codes)[-1]
    first = np.zeros(n, dtype=bool)
    _, first_rows = np.unique(group, return_index=True)
    first[first_rows] = True
    movers = np.flatnonzero(~first)
    taken = {tuple(row) for row in out[first_rows].tolist()}
    moved = stuck = 0
    for row in movers.tolist():
        prefix = tuple(out[row, : L - 1].tolist())
        for code in candidates[row].tolist():
            key = (*prefix, int(code))
            if key not in taken:
                taken.add(key)
                out[row, L - 1] = code
                moved += 1
                break
        else:
            stuck += 1
    rate_after, largest_after = collision_stats(out)
    return out, {"collision_rate_before": rate_before, "largest_group_before": largest_before,
                 "collision_rate_after": rate_after, "largest_group_after": largest_after,
                 "moved": moved, "stuck": stuck}
