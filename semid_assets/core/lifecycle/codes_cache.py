"""The candidate's catalogue codes of a month, kept for the second step that needs them.

``sid_staleness`` and ``semantic_ids`` each build the month's view (``month.month_state``), whose
costliest part is the candidate's catalogue codes held on the published ones (``candidate_codes``):
minutes at a million items. Those codes are a function of the candidate, the month's vectors, the
published codes of its items and the margin alone, so the step that computes them keeps them with a
digest of all four, and a later step takes them when its digest is the same; anything else (another
candidate, a publication since) computes them again. The tokenizer step keeps the codes its fit
ended with, so ``sid_staleness`` usually finds them too. One file per month and method, replaced
each time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from semid_assets.core.artifact import load_npz, save_npz

__all__ = ["CodesCache", "codes_digest"]

FOLDER = ".candidate_codes"


def codes_digest(candidate, item_ids: np.ndarray, vectors: np.ndarray, previous_codes: np.ndarray | None,
                 margin: float) -> str:
    """sha256 of everything the candidate's catalogue codes of ``item_ids`` depend on."""
    arrays, meta = candidate.to_arrays()
    digest = hashlib.sha256(json.dumps([type(candidate).__qualname__, meta, float(margin)], sort_keys=True,
                                       default=str).encode())
    digest.update("\0".join(map(str, np.asarray(item_ids).tolist())).encode())
    parts = {**{f"model/{k}": v for k, v in arrays.items()}, "vectors": vectors,
             **({} if previous_codes is None else {"previous_codes": previous_codes})}
    for name in sorted(parts):
        array = np.ascontiguousarray(parts[name])
        digest.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


class CodesCache:
    """The kept codes of one month × method under ``root``."""

    def __init__(self, root: Path, month: str, method: str):
        self.path = Path(root) / FOLDER / f"month={month}" / f"method={method}.npz"

    def codes(self, digest: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The kept codes when they were kept under ``digest``, else ``compute()``'s, kept."""
        if self.path.is_file():
            arrays, meta = load_npz(self.path)
            if meta.get("digest") == digest:
                return arrays["codes"]
        codes = compute()
        self.keep(digest, codes)
        return codes

    def keep(self, digest: str, codes: np.ndarray) -> None:
        """Keep ``codes`` under ``digest`` (replacing what was kept)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_npz(self.path, {"codes": np.asarray(codes)}, {"digest": digest})
