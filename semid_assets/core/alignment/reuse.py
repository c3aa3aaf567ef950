"""Vectors an aligner already produced, reused instead of embedding the whole catalogue again.

An aligner embeds every item in a fixed-shape batch, so an item's vector does not depend on the
other items embedded with it (``Aligner.embed``). The vectors one aligner stored for a month are
therefore the ones it gives the same items in a later month; only new items need the network.
(The catalogue holds one row per item, so an item's features are the same in every month.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

__all__ = ["PROBE_ITEMS", "embed_reusing"]

PROBE_ITEMS = 256
"""Stored items embedded again to prove the stored vectors are this aligner's (one inference batch)."""


def embed_reusing(item_ids: np.ndarray, stored: tuple[np.ndarray, np.ndarray] | None,
                  embed_rows: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """An aligner's vectors of ``item_ids`` (``embed_rows(positions)`` embeds some of them), taking those
    of items in ``stored`` (ids, vectors: what the same aligner embedded in an earlier month) from there.

    An item's vector does not depend on the other items embedded with it, so a stored vector of the
    same aligner is the one embedding gives. That is checked, not assumed: the first ``PROBE_ITEMS``
    stored items are embedded again, and unless they are bit-identical (another aligner, other
    features) every item is embedded.
    """
    if stored is None:
        return embed_rows(np.arange(len(item_ids)))
    stored_ids, stored_vectors = stored
    rows = pd.Index(stored_ids).get_indexer(item_ids)
    have, missing = np.flatnonzero(rows >= 0), np.flatnonzero(rows < 0)
    probe = have[:PROBE_ITEMS]
    if not len(probe) or not np.array_equal(embed_rows(probe), stored_vectors[rows[probe]]):
        return embed_rows(np.arange(len(item_ids)))
    out = np.empty((len(item_ids), stored_vectors.shape[1]), np.float32)
    out[have] = stored_vectors[rows[have]]
    if len(missing):
        out[missing] = embed_rows(missing)
    return out
