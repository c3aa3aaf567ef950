"""Collaborative item embeddings: matrix factorisation trained with BPR (torch, CPU).

LETTER regularises its codes towards an item's embedding from a trained collaborative
model. We train the simplest such model on the month's positives: users and items get
``dim``-dimensional factors, the score of (u, i) is ``<p_u, q_i> + b_i``, and BPR
(Rendle et al., 2009) maximises ``log sigmoid(s(u, i) - s(u, j))`` for a positive i and
an item j drawn uniformly from the catalogue, with L2 regularisation on the factors
used in the step. Items that no user liked get no embedding (``has_embedding`` False)
rather than their random initialisation.

Each step moves only the rows its batch uses ("lazy" Adam, torch's ``SparseAdam``): a batch
touches a few ten thousand of a million items' and users' rows, and a dense Adam step would
rewrite both whole tables and their moments every time.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from semid_assets.core.data import schema
from semid_assets.core.threads import compute_threads
from semid_assets.core.validation import check_int

__all__ = ["BPROptions", "BPRMF", "collaborative_item_embeddings"]

_AUC_BLOCK = 8192  # held-out users scored at once


@dataclass(frozen=True, kw_only=True)
class BPROptions:
    """BPR matrix factorisation over every positive up to the month's end."""

    dim: int = 64
    """Factor dimension."""
    epochs: int = 10
    """Passes over the shuffled (user, positive item) pairs."""
    batch_size: int = 8192
    """Pairs per Adam step."""
    lr: float = 0.01
    """Adam learning rate."""
    reg: float = 1e-4
    """L2 weight on the user, positive and negative factors of each step."""
    negatives: int = 1
    """Uniform random negative items drawn per pair and epoch."""
    seed: int = 0
    """Same seed and threads give the same factors."""
    n_threads: int = 1
    """torch and BLAS threads while training (set for the fit and restored, never the process's own)."""
    sparse_updates: bool = True
    """Adam moves, and keeps moments for, only the rows a step's batch uses (``SparseAdam``); False: every
    row of both tables each step, as before this option (the same factors as then, far slower on large
    tables)."""

    def __post_init__(self) -> None:
        for name, low in (("dim", 1), ("epochs", 1), ("batch_size", 1), ("negatives", 1), ("seed", 0),
                          ("n_threads", 1)):
            check_int(name, getattr(self, name), low)
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.reg < 0:
            raise ValueError(f"reg must be >= 0, got {self.reg!r}")


class BPRMF:
    """BPR matrix factorisation (options: :class:`BPROptions`)."""

    def __init__(self, options: BPROptions | None = None, /, **overrides: Any) -> None:
        self.options = dataclasses.replace(options or BPROptions(), **overrides)
        o = self.options
        self.dim, self.epochs, self.batch_size, self.lr = o.dim, o.epochs, o.batch_size, o.lr
        self.reg, self.negatives, self.seed, self.n_threads = o.reg, o.negatives, o.seed, o.n_threads
        self.sparse_updates = o.sparse_updates
        self.item_factors: np.ndarray | None = None
        self.user_factors: np.ndarray | None = None
        self.fit_info: dict[str, Any] = {}

    def fit(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
            progress=None) -> BPRMF:
        """Train on positive pairs ``(users[k], items[k])`` given as dense indices."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError(f"users and items must be 1-D of equal length, got {users.shape} and {items.shape}")
        if len(users) == 0:
            raise ValueError("no positive interactions to train BPR on")
        if users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items:
            raise ValueError("user/item indices out of range for n_users/n_items")
        import torch  # only here: loading the pipeline's definitions must not import torch
        from torch import nn

        rng = np.random.default_rng(self.seed)
        t0 = time.perf_counter()
        with compute_threads(self.n_threads):
            torch.manual_seed(int(rng.integers(0, 2**31 - 1)))
            sparse = self.sparse_updates
            user_emb = nn.Embedding(n_users, self.dim, sparse=sparse)
            item_emb = nn.Embedding(n_items, self.dim, sparse=sparse)
            item_bias = nn.Embedding(n_items, 1, sparse=sparse)
            for table in (user_emb, item_emb):
                nn.init.normal_(table.weight, std=0.1)
            nn.init.zeros_(item_bias.weight)
            params = [*user_emb.parameters(), *item_emb.parameters(), *item_bias.parameters()]
            optimiser = (torch.optim.SparseAdam if sparse else torch.optim.Adam)(params, lr=self.lr)
            u_all, i_all = torch.from_numpy(users), torch.from_numpy(items)
            history = []
            for epoch in range(self.epochs):
                perm = torch.from_numpy(rng.permutation(len(users)))
                negatives = torch.from_numpy(rng.integers(0, n_items, size=(len(users), self.negatives)))
                total, steps = 0.0, 0
                for start in range(0, len(users), self.batch_size):
                    idx = perm[start : start + self.batch_size]
                    u, i, j = u_all[idx], i_all[idx], negatives[idx]
                    pu, qi, qj = user_emb(u), item_emb(i), item_emb(j)
                    s_pos = (pu * qi).sum(-1) + item_bias(i).squeeze(-1)
                    s_neg = (pu[:, None, :] * qj).sum(-1) + item_bias(j).squeeze(-1)
                    loss = -torch.nn.functional.logsigmoid(s_pos[:, None] - s_neg).mean()
                    loss = loss + self.reg * ((pu ** 2).sum(-1).mean() + (qi ** 2).sum(-1).mean()
                                              + (qj ** 2).sum(-1).mean())
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    total += float(loss.detach())
                    steps += 1
                history.append(round(total / steps, 6))
                if progress is not None:
                    progress(f"BPR epoch {epoch + 1}/{self.epochs}: loss {total / steps:.4f}")
            self.item_factors = item_emb.weight.detach().numpy().copy()
            self.user_factors = user_emb.weight.detach().numpy().copy()
            self.item_bias = item_bias.weight.detach().numpy()[:, 0].copy()
        self.fit_info = {"pairs": int(len(users)), "users": int(n_users), "items": int(n_items),
                         "seconds": round(time.perf_counter() - t0, 4), "loss_per_epoch": history}
        return self

    def heldout_auc(self, users: np.ndarray, items: np.ndarray, n_samples: int = 100) -> float:
        """Mean AUC of held-out positives ``(users[k], items[k])`` against ``n_samples``
        uniform random items each (0.5 = chance)."""
        if self.item_factors is None:
            raise ValueError("BPRMF is not fitted")
        rng = np.random.default_rng(self.seed + 1)
        users, items = np.asarray(users), np.asarray(items)
        neg_items = rng.integers(0, len(self.item_factors), size=(len(users), n_samples))
        above = ties = 0
        # In blocks of users: the negatives' factors of every held-out user at once are
        # users × n_samples × dim floats (13 GB for half a million users).
        for start in range(0, len(users), _AUC_BLOCK):
            block = slice(start, start + _AUC_BLOCK)
            pu = self.user_factors[users[block]]
            pos = np.einsum("ij,ij->i", pu, self.item_factors[items[block]]) + self.item_bias[items[block]]
            neg = np.einsum("ij,ikj->ik", pu, self.item_factors[neg_items[block]]) + self.item_bias[neg_items[block]]
            above += int((pos[:, None] > neg).sum())
            ties += int((pos[:, None] == neg).sum())
        return float(above / neg_items.size + 0.5 * (ties / neg_items.size))


def collaborative_item_embeddings(interactions: pd.DataFrame, item_ids: np.ndarray, **options: Any
                                  ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """BPR item factors for ``item_ids`` from the positives of ``interactions``.

    Returns ``(vectors float32 [n_items, dim], has_embedding bool [n_items], info)``. Rows
    of items without a training positive are zero with ``has_embedding`` False. Each
    user's most recent positive is held out of training (one fit, not a refit: the
    held-out rows are ~2 % of the positives on the embedded default), and ``info`` carries
    their AUC against random items — whether the factors learned anything (0.5 = chance).
    """
    for column in (schema.USER_ID, schema.ITEM_ID, schema.TS, schema.LABEL):
        if column not in interactions.columns:
            raise ValueError(f"interactions have no {column!r} column (columns: {list(interactions.columns)})")
    positives = interactions[interactions[schema.LABEL] == 1]
    index = pd.Index(item_ids)
    rows = index.get_indexer(positives[schema.ITEM_ID])
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} positive interaction(s) name items absent from item_ids")
    users, user_rows = np.unique(positives[schema.USER_ID].to_numpy(), return_inverse=True)
    ts = positives[schema.TS].to_numpy()
    # Latest positive per user, ties by row order; users with a single positive keep it.
    order = np.lexsort((np.arange(len(ts)), ts, user_rows))
    last = order[np.r_[user_rows[order][1:] != user_rows[order][:-1], True]]
    counts = np.bincount(user_rows, minlength=len(users))
    held = last[counts[user_rows[last]] >= 2]
    train = np.ones(len(rows), dtype=bool)
    train[held] = False
    model = BPRMF(**options).fit(user_rows[train], rows[train], len(users), len(index))
    auc = model.heldout_auc(user_rows[held], rows[held]) if len(held) else float("nan")
    has = np.bincount(rows[train], minlength=len(index)) > 0
    vectors = np.where(has[:, None], model.item_factors, 0.0).astype(np.float32)
    info = {**model.fit_info, "positives": int(len(rows)), "items_with_embedding": int(has.sum()),
            "heldout_users": int(len(held)), "heldout_auc": auc}
    return vectors, has, info
