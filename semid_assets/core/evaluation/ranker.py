"""A small CTR model in torch: user embedding × item representation → MLP → click logit.

The item side is what the ranking experiment varies, everything else stays fixed:

- a *bag* of rows of one embedding table, summed (hashed item id, SID n-grams, SID
  pieces — see ``sid_features``), or
- a frozen dense content vector through a learned linear map.

``u`` is a per-user row plus, when given, the mean representation of the items the
user clicked before the impression (through the same item side, so a SID variant
compares a new item's codes with the codes of what the user liked).
``x = [u, v, u ⊙ v]`` feeds a two-layer MLP, plus ``⟨u, v⟩`` and a user bias; trained with binary cross-entropy on the
impressions' labels, Adam, shuffled mini-batches. The most recent ``validation_share``
of the training rows (callers pass them in time order) is held out: after each epoch
the model is scored on it, and training stops when that log-loss stops improving,
keeping the best epoch's weights — with ~100 impressions per user a user × item model
memorises its training labels within a few epochs, and where that happens depends on
the dataset. Users seen in training have their own row; any other user shares one
untrained (zero) row. Same inputs, same config and seed, same thread count → the same
scores.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from semid_assets.core.evaluation.ranker_config import RankerOptions
from semid_assets.core.evaluation.ranking_features import ItemInput
from semid_assets.core.threads import compute_threads

INIT_STD = 0.05

__all__ = ["RankerOptions", "ItemInput", "CtrModel", "train_ranker", "predict"]


class CtrModel(nn.Module):
    def __init__(self, n_users: int, items: ItemInput, dim: int, hidden: int):
        super().__init__()
        # The last user row stands for every user unseen in training; it stays zero.
        self.users = nn.Embedding(n_users + 1, dim)
        nn.init.normal_(self.users.weight, std=INIT_STD)
        with torch.no_grad():
            self.users.weight[n_users].zero_()
        self.dense = items.dense is not None
        if self.dense:
            vectors = torch.from_numpy(np.ascontiguousarray(items.dense, np.float32))
            self.register_buffer("item_vectors", vectors)
            # Sums of frozen vectors over a history without materialising [batch, H, d]; the extra
            # zero row is the padding.
            self.item_sum = nn.EmbeddingBag.from_pretrained(
                torch.cat([vectors, vectors.new_zeros(1, vectors.shape[1])]), freeze=True, mode="sum",
                padding_idx=len(vectors))
            self.item_map = nn.Linear(items.dense.shape[1], dim)
        else:
            # Padding (-1) becomes the extra row ``rows``, which EmbeddingBag leaves out of the sum.
            bags = np.where(items.bags < 0, items.rows, items.bags)
            self.register_buffer("item_bags", torch.from_numpy(np.ascontiguousarray(bags, np.int64)))
            self.table = nn.EmbeddingBag(items.rows + 1, dim, mode="sum", padding_idx=items.rows)
            nn.init.normal_(self.table.weight, std=INIT_STD)
            with torch.no_grad():
                self.table.weight[items.rows].zero_()
                if items.oov_row is not None:
                    # Zero until the rare features of training items move it: an unseen feature
                    # adds nothing the model did not learn.
                    self.table.weight[items.oov_row].zero_()
        self.mlp = nn.Sequential(nn.Linear(3 * dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))
        self.user_bias = nn.Embedding(n_users + 1, 1)
        nn.init.zeros_(self.user_bias.weight)

    def item_vectors_of(self, items: torch.Tensor) -> torch.Tensor:
        if self.dense:
            return self.item_map(self.item_vectors[items])
        return self.table(self.item_bags[items])

    def history_vectors_of(self, history: torch.Tensor) -> torch.Tensor:
        """Mean representation of each row's history items (-1 = no item); zero for an empty history."""
        mask = history >= 0
        counts = mask.sum(dim=1, keepdim=True)
        if self.dense:
            # The map is affine, so map the mean input once instead of every history item.
            padded = torch.where(mask, history, torch.full_like(history, len(self.item_vectors)))
            raw = self.item_sum(padded) / counts.clamp(min=1)
            return self.item_map(raw) * (counts > 0)
        flat = self.item_vectors_of(history.clamp(min=0).reshape(-1)).reshape(*history.shape, -1)
        return (flat * mask.unsqueeze(-1)).sum(dim=1) / counts.clamp(min=1)

    def forward(self, users: torch.Tensor, items: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
        u = self.users(users)
        if history is not None:
            # The user is also what they recently liked, seen through the same item features:
            # a new item is then judged by its likeness to those, not only by per-user rows.
            u = u + self.history_vectors_of(history)
        v = self.item_vectors_of(items)
        # The dot product gives user and item rows a direct gradient from the first step;
        # through the MLP alone, small initial rows sit on a plateau for many epochs.
        return (self.mlp(torch.cat([u, v, u * v], dim=1)).squeeze(1) + (u * v).sum(dim=1)
                + self.user_bias(users).squeeze(1))


def _check_rows(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> None:
    if users.shape != items.shape or users.ndim != 1:
        raise ValueError(f"users and items must be 1-D of one length, got {users.shape} and {items.shape}")
    if users.size and (users.min() < 0 or users.max() > n_users):
        raise ValueError(f"user indices must lie in [0, {n_users}] ({n_users} = unseen user)")
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"item indices must lie in [0, {n_items - 1}]")


def train_ranker(users: np.ndarray, items: np.ndarray, labels: np.ndarray, n_users: int, item_input: ItemInput,
                 config: RankerOptions = RankerOptions(), progress=None, history: np.ndarray | None = None) -> CtrModel:
    """Fit a CTR model on impressions ``(users[i], items[i]) → labels[i]``.

    ``users`` index ``[0, n_users)``; ``items`` index rows of ``item_input``; ``history``
    (optional, int ``[n, H]``, -1 padded) the items each row's user liked before it.
    """
    history = _check_history(history, len(users), item_input.n_items)
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    labels = np.asarray(labels)
    _check_rows(users, items, n_users, item_input.n_items)
    if labels.shape != users.shape or (labels.size and not np.isin(labels, (0, 1)).all()):
        raise ValueError("labels must be one 0/1 value per training row")
    if not len(labels):
        raise ValueError("no training rows: the ranker needs impressions before the evaluation month")
    n_valid = config.validation_rows(len(labels))
    if not 0 <= config.validation_share < 1 or (config.validation_share > 0 and n_valid < 1):
        raise ValueError(f"validation_share must be in [0, 1) and leave at least one row, got "
                         f"{config.validation_share} of {len(labels)} rows")
    fit = slice(0, len(labels) - n_valid)
    with compute_threads(config.threads):
        torch.manual_seed(config.seed)
        model = CtrModel(n_users, item_input, config.dim, config.hidden)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        loss_fn = nn.BCEWithLogitsLoss()
        u_all, i_all = torch.from_numpy(users[fit]), torch.from_numpy(items[fit])
        h_all = None if history is None else torch.from_numpy(history[fit])
        y_all = torch.from_numpy(labels[fit].astype(np.float32))
        rng = np.random.default_rng(config.seed)
        best, best_state, stale = float("inf"), None, 0
        model.info = {"epochs": 0, "best_epoch": 0, "validation_logloss": float("nan")}
        checks = max(1, config.checks_per_epoch)
        for round_ in range(1, config.max_epochs * checks + 1):
            if (round_ - 1) % checks == 0:
                order = torch.from_numpy(rng.permutation(len(y_all)))
            part = (round_ - 1) % checks
            chunk = order[part * len(order) // checks : (part + 1) * len(order) // checks]
            model.train()
            total = 0.0
            for start in range(0, len(chunk), config.batch_size):
                batch = chunk[start : start + config.batch_size]
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(model(u_all[batch], i_all[batch], None if h_all is None else h_all[batch]),
                               y_all[batch])
                loss.backward()
                optimiser.step()
                total += loss.item() * len(batch)
            model.eval()
            epoch = round_ / checks
            message = f"epoch {epoch:g}: train log-loss {total / max(len(chunk), 1):.4f}"
            model.info["epochs"] = epoch
            if not n_valid:
                model.info["best_epoch"] = epoch
                if progress is not None:
                    progress(message)
                continue
            valid = _logloss(model, users[-n_valid:], items[-n_valid:], labels[-n_valid:],
                             None if history is None else history[-n_valid:], config.threads)
            if progress is not None:
                progress(f"{message}, validation {valid:.4f}")
            if valid < best - 1e-5:
                best, stale = valid, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                model.info.update(best_epoch=epoch, validation_logloss=valid)
            else:
                stale += 1
                if stale >= config.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
    return model


def _check_history(history: np.ndarray | None, n_rows: int, n_items: int) -> np.ndarray | None:
    if history is None:
        return None
    history = np.asarray(history)
    if history.ndim != 2 or len(history) != n_rows:
        raise ValueError(f"history must be [n_rows, H] with one row per impression, got {history.shape} for {n_rows}")
    if history.size and (history.min() < -1 or history.max() >= n_items):
        raise ValueError(f"history entries must be item rows in [0, {n_items - 1}] or -1 (none)")
    return history.astype(np.int64, copy=False)


def _logloss(model: CtrModel, users: np.ndarray, items: np.ndarray, labels: np.ndarray,
             history: np.ndarray | None, threads: int | None) -> float:
    p = np.clip(predict(model, users, items, threads=threads, history=history), 1e-7, 1 - 1e-7)
    return float(-(labels * np.log(p) + (1 - labels) * np.log1p(-p)).mean())


def predict(model: CtrModel, users: np.ndarray, items: np.ndarray, batch_size: int = 16_384,
            threads: int | None = None, history: np.ndarray | None = None) -> np.ndarray:
    """Click probabilities, float64."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    n_users = model.users.num_embeddings - 1
    n_items = len(model.item_vectors) if model.dense else len(model.item_bags)
    _check_rows(users, items, n_users, n_items)
    history = _check_history(history, len(users), n_items)
    out = np.empty(len(users), dtype=np.float64)
    with compute_threads(threads), torch.no_grad():
        for start in range(0, len(users), batch_size):
            u = torch.from_numpy(users[start : start + batch_size])
            i = torch.from_numpy(items[start : start + batch_size])
            h = None if history is None else torch.from_numpy(history[start : start + batch_size])
            out[start : start + batch_size] = torch.sigmoid(model(u, i, h)).double().numpy()
    return out
