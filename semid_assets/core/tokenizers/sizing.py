"""How many codes per level a catalogue gets when nobody says: the size rule.

Two pressures pull on the codebook size K of an L-level tokenizer on n items:

- *items per code*: k-means estimates each centroid from the items that land on it; with too
  few, codes are noise and most of the codebook goes unused. That asks for a small K.
- *collisions*: an item whose whole code tuple is already taken needs a suffix. With K^L cells
  the share of colliding items grows with n / K^L. That asks for a large K.

The rule grows K with n^(2/L): the number of cells K^L grows like n², so the expected share of
colliding items (~ n / K^L) keeps falling as the catalogue grows, while the items per level-1
code (n / K ~ n^(1/3) at three levels) still grows, slowly. The constant puts a 20,000-item,
three-level catalogue at 256 codes; K is rounded to a power of two and kept within [16, 8192]
(8192 is OneRec's per-level size on a catalogue of hundreds of millions).
"""

from __future__ import annotations

import math

__all__ = ["auto_codebook_size", "size_warning", "MIN_CODEBOOK_SIZE", "MAX_CODEBOOK_SIZE"]

MIN_CODEBOOK_SIZE = 16
MAX_CODEBOOK_SIZE = 8192
_SCALE = 0.35
_MIN_ITEMS_PER_CODE = 16


def auto_codebook_size(n_items: int, levels: int = 3) -> int:
    """The rule's codes per level for ``n_items`` items and ``levels`` levels (see the module docstring)."""
    if n_items < 1 or levels < 1:
        raise ValueError(f"need at least one item and one level, got n_items={n_items}, levels={levels}")
    target = _SCALE * n_items ** (2.0 / levels)
    size = 2 ** round(math.log2(max(target, 1.0)))
    return int(min(MAX_CODEBOOK_SIZE, max(MIN_CODEBOOK_SIZE, size)))


def expected_collision_rate(n_items: int, codebook_size: int, levels: int) -> float:
    """Share of items that would share their full tuple with an earlier item if codes were uniform
    over the ``codebook_size ** levels`` cells (a lower bound: real codes are never uniform)."""
    cells = float(codebook_size) ** levels
    load = n_items / cells
    return 1.0 - (1.0 - math.exp(-load)) / load if load > 0 else 0.0


def size_warning(n_items: int, codebook_size: int, levels: int) -> str | None:
    """Why a chosen ``codebook_size`` fits ``n_items`` badly, with the rule's size, or None when it fits."""
    suggested = auto_codebook_size(n_items, levels)
    per_code = n_items / codebook_size
    if per_code < _MIN_ITEMS_PER_CODE:
        return (f"codebook_size {codebook_size} leaves {per_code:.1f} items per level-1 code on {n_items} items "
                f"(k-means needs more to place a code); the size rule gives {suggested}: leave codebook_size unset "
                f"to use it")
    rate = expected_collision_rate(n_items, codebook_size, levels)
    if rate > 0.05:
        return (f"codebook_size {codebook_size} with {levels} levels makes at least {rate:.0%} of {n_items} items "
                f"collide; the size rule gives {suggested}: leave codebook_size unset to use it")
    return None
