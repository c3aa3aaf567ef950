"""Training the QFormer aligner (no orchestrator import).

:func:`train_aligner` fits an :class:`~semid_assets.core.alignment.qformer.AlignerNet` on collaborative
item pairs with two losses:

* **contrastive**: symmetric InfoNCE over a batch of ``B`` pairs ``(a_i, b_i)`` with in-batch
  negatives, ``logits = z_a z_bᵀ / τ``; an off-diagonal cell whose two items are themselves
  a known pair (or the same item) is masked out, so a true pair is never pushed apart. τ is
  learned (log-parametrised, clamped to ≥ 0.01) unless ``learn_temperature=False``.
* **caption**: next-token cross-entropy of the item's caption by the small causal decoder
  conditioned on the query tokens, on up to ``caption_items_per_step`` items of each batch
  that are not in the caption hold-out.

* **stability** (warm start only, ``stability_weight > 0``): the mean squared distance
  ``‖z − z_prev‖²`` of the batch's item vectors from the vectors the warm-start aligner gives
  the same items (computed once before training). Fine-tuning on a new month otherwise moves
  every vector a little, and the residual tokenizer levels turn that into churn of fine SIDs;
  this term keeps consecutive versions in one continuing space.

``loss = contrastive_weight · L_nce + caption_weight · L_caption + stability_weight · L_stab``.
AdamW, linear warm-up then
cosine decay to a tenth of the learning rate. Batches are drawn from per-epoch permutations
of the training pairs seeded by ``seed``; with the same inputs, seed and thread count the
weights are bit-identical.

The result is an :class:`~semid_assets.core.alignment.aligner.Aligner` (the stored model).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from semid_assets.core.alignment.aligner import Aligner, feature_tensors
from semid_assets.core.threads import compute_threads
from semid_assets.core.alignment.captions import PAD, CaptionData
from semid_assets.core.alignment.config import AlignerTrainConfig, QFormerConfig
from semid_assets.core.alignment.qformer import AlignerNet
from semid_assets.core.features.multimodal import MultimodalFeatures


def _pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)


def _warm_start(net: AlignerNet, previous: Aligner, vocabulary: np.ndarray) -> list[str]:
    """Copy the previous aligner's tensors that fit; caption rows are matched by token id. Returns what was copied."""
    copied = []
    own = net.state_dict()
    old_rows = {int(t): i + 2 for i, t in enumerate(previous.vocabulary.tolist())}
    with torch.no_grad():
        for name, value in previous.state.items():
            if name not in own:
                continue
            target = own[name]
            if name == "caption.embedding.weight":
                new_rows = [i + 2 for i, t in enumerate(vocabulary.tolist()) if int(t) in old_rows]
                src_rows = [old_rows[int(vocabulary[i - 2])] for i in new_rows]
                keep = list(range(min(2, value.shape[0])))  # PAD and UNK
                target[keep + new_rows] = torch.from_numpy(value[keep + src_rows])
                copied.append(name)
            elif tuple(target.shape) == tuple(value.shape):
                target.copy_(torch.from_numpy(value))
                copied.append(name)
    return copied


def train_aligner(
    features: MultimodalFeatures,
    pairs_a: np.ndarray,
    pairs_b: np.ndarray,
    config: AlignerTrainConfig = AlignerTrainConfig(),
    captions: CaptionData | None = None,
    *,
    warm_start: Aligner | None = None,
    stability_targets: np.ndarray | None = None,
    store=None,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[Aligner, list[dict[str, float]]]:
    """Train on the pairs ``(pairs_a[i], pairs_b[i])`` (catalogue positions in ``features``).

    ``stability_targets`` [n_items, out_dim]: the warm-start aligner's vectors of every item,
    when the caller already has them (otherwise they are computed when the stability term is on).
    Returns the trained :class:`Aligner` and the per-step history (``step, loss,
    contrastive, caption, stability, temperature, lr``).
    """
    pairs_a = np.asarray(pairs_a, np.int64)
    pairs_b = np.asarray(pairs_b, np.int64)
    if len(pairs_a) != len(pairs_b):
        raise ValueError(f"pairs_a and pairs_b differ in length ({len(pairs_a)} vs {len(pairs_b)}).")
    if len(pairs_a) < 2 and config.contrastive_weight > 0:
        raise ValueError(f"the contrastive loss needs at least 2 training pairs, got {len(pairs_a)}; "
                         f"check item_pairs for this month or use aligner='none'.")
    with compute_threads(config.threads) as threads:
        return _train(features, pairs_a, pairs_b, config, captions, warm_start, stability_targets, store, log,
                      threads)


def _train(features, pairs_a, pairs_b, config, captions, warm_start, stability_targets, store, log, threads):
    n = features.n_items
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    qconfig, vocabulary, use_caption = _net_config(features, config, captions, store)
    net = AlignerNet(qconfig)
    copied = _warm_start(net, warm_start, vocabulary) if warm_start is not None else []
    if warm_start is not None:
        log(f"warm start: {len(copied)} of {len(net.state_dict())} tensors copied from the previous aligner")
    anchor = _stability_targets(warm_start, stability_targets, features, qconfig, config, store, log)
    log_tau = nn.Parameter(torch.tensor(math.log(config.temperature)), requires_grad=config.learn_temperature)
    params = [p for p in net.parameters()] + ([log_tau] if config.learn_temperature else [])
    optimiser = _optimiser(params, config)
    steps = config.steps or max(1, math.ceil(config.epochs * len(pairs_a) / config.batch_pairs))
    lr_at = _schedule(config, steps)

    known = np.unique(_pair_keys(pairs_a, pairs_b, n))
    batches = _pair_batches(len(pairs_a), config.batch_pairs, rng)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    progress = _Progress(steps, config.log_every, log)
    net.train()
    log(f"training {steps} steps of {config.batch_pairs} pairs on {len(pairs_a)} pairs, {threads} threads")
    for step in range(steps):
        batch = next(batches)
        a, b = pairs_a[batch], pairs_b[batch]
        rows = np.unique(np.concatenate([a, b]))
        tokens, masks = feature_tensors(features.token_matrices(rows, store), features)
        q, z = net.qformer([t[:, :cap] for t, cap in zip(tokens, qconfig.max_tokens)],
                           [m[:, :cap] for m, cap in zip(masks, qconfig.max_tokens)])
        tau = log_tau.exp().clamp(min=0.01)
        nce = (_contrastive(z, rows, a, b, tau, known, n) if config.contrastive_weight > 0 else torch.zeros(()))
        cap_loss = _caption_term(net, q, rows, captions, config.caption_items_per_step, rng) if use_caption else None
        stab_loss = (z - anchor[rows]).square().sum(dim=1).mean() if anchor is not None else torch.zeros(())
        loss = torch.zeros(())
        if config.contrastive_weight > 0:
            loss = loss + config.contrastive_weight * nce
        if cap_loss is not None:
            loss = loss + config.caption_weight * cap_loss
        if anchor is not None:
            loss = loss + config.stability_weight * stab_loss

        for group in optimiser.param_groups:
            group["lr"] = lr_at(step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()

        record = {"step": step, "loss": loss.item(), "contrastive": nce.item(), "caption": 0.0 if cap_loss is None else cap_loss.item(),
                  "stability": stab_loss.item(), "temperature": tau.item(), "lr": lr_at(step)}
        history.append(record)
        progress.step(record, len(batch), len(rows))

    net.eval()
    info = {
        "train_seconds": round(time.perf_counter() - started, 3),
        "train_pairs": int(len(pairs_a)),
        "steps": steps,
        "threads": threads,
        "temperature": float(log_tau.detach().exp().clamp(min=0.01)),
        "caption_column": captions.column if use_caption else None,
        "warm_started": warm_start is not None,
        "warm_start_tensors": len(copied),
        "stability_anchored": anchor is not None,
        "train_config": asdict(config),
    }
    return Aligner.from_net(net, vocabulary, info), history


def _net_config(features, config, captions, store) -> tuple[QFormerConfig, np.ndarray, bool]:
    """The network's shape for these features (token caps from the longest item) and captions, the caption
    vocabulary, and whether the caption loss trains."""
    counts = features.token_counts(store)
    max_tokens = tuple(
        max(1, min(int(counts[m].max(initial=0)), config.max_text_tokens if m == "text" else 1 << 30))
        for m in features.modality_names)
    use_caption = captions is not None and config.caption_weight > 0 and captions.trainable.any()
    vocabulary = captions.vocabulary if use_caption else np.zeros(0, np.int64)
    qconfig = QFormerConfig(
        modalities=tuple(features.modality_names), modality_dims=tuple(features.dims[m] for m in features.modality_names),
        max_tokens=max_tokens, n_queries=config.n_queries, n_blocks=config.n_blocks, width=config.width,
        heads=config.heads, ffn_mult=config.ffn_mult, pool=config.pool,
        vocab_size=len(vocabulary) + 2 if use_caption else 2, decoder_layers=config.decoder_layers,
        caption_max_tokens=captions.ids.shape[1] if use_caption else config.caption_max_tokens)
    return qconfig, vocabulary, use_caption


def _optimiser(params: list, config) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, norms or the temperature)."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)


def _schedule(config, steps: int):
    """The learning rate at a step: linear warm-up, then cosine decay to a tenth of ``config.lr``."""
    warmup = min(config.warmup_steps, steps // 4)

    def lr_at(step: int) -> float:
        if step < warmup:
            return config.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    return lr_at


def _pair_batches(n_pairs: int, batch_pairs: int, rng: np.random.Generator):
    """Batches of pair positions, endlessly: one permutation per pass, a partial tail skipped."""
    order, cursor = np.zeros(0, np.int64), 0
    while True:
        if cursor + batch_pairs > len(order):
            order, cursor = rng.permutation(n_pairs), 0
        yield order[cursor : cursor + batch_pairs]
        cursor += batch_pairs


def _contrastive(z: torch.Tensor, rows: np.ndarray, a: np.ndarray, b: np.ndarray, tau: torch.Tensor,
                 known: np.ndarray, n: int) -> torch.Tensor:
    """Symmetric InfoNCE over the batch's pairs; other known pairs and the same item are not negatives."""
    ia, ib = np.searchsorted(rows, a), np.searchsorted(rows, b)
    logits = z[ia] @ z[ib].T / tau
    cross = _pair_keys(np.repeat(a, len(b)), np.tile(b, len(a)), n)
    false_negative = (np.isin(cross, known) | (np.repeat(a, len(b)) == np.tile(b, len(a))))
    false_negative = false_negative.reshape(len(a), len(b))
    np.fill_diagonal(false_negative, False)
    logits = logits.masked_fill(torch.from_numpy(false_negative), float("-inf"))
    target = torch.arange(len(a))
    return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target))


def _caption_term(net: AlignerNet, q: torch.Tensor, rows: np.ndarray, captions: CaptionData, per_step: int,
                  rng: np.random.Generator) -> torch.Tensor | None:
    """The caption loss on up to ``per_step`` of the batch's items that have a trainable caption (None
    when none has)."""
    candidates = rows[captions.trainable[rows] & captions.mask[rows, 1:].any(axis=1)]
    if not len(candidates):
        return None
    chosen = np.sort(rng.permutation(candidates)[:per_step])
    return caption_loss(net, q[np.searchsorted(rows, chosen)], captions.ids[chosen], captions.mask[chosen])[0]


class _Progress:
    """Logs the loss and the pairs and items per second every ``every`` steps (and at the last)."""

    def __init__(self, steps: int, every: int, log):
        self.steps, self.every, self.log = steps, every, log
        self.since, self.pairs, self.items = time.perf_counter(), 0, 0

    def step(self, record: dict, pairs: int, items: int) -> None:
        self.pairs += pairs
        self.items += items
        step = record["step"] + 1
        if step % self.every and step != self.steps:
            return
        now = time.perf_counter()
        self.log(f"step {step}/{self.steps}: loss {record['loss']:.4f} (contrastive {record['contrastive']:.4f}, "
                 f"caption {record['caption']:.4f}, stability {record['stability']:.4f}), "
                 f"τ {record['temperature']:.4f}, {self.pairs / (now - self.since):.0f} pairs/s, "
                 f"{self.items / (now - self.since):.0f} items/s")
        self.since, self.pairs, self.items = now, 0, 0


def _stability_targets(warm_start, targets, features, qconfig, config, store, log) -> torch.Tensor | None:
    """The warm-start aligner's vectors of every item, the stability term's targets; None when the term is off."""
    if warm_start is None or config.stability_weight == 0:
        return None
    if warm_start.out_dim != qconfig.out_dim:
        # A deliberate change of shape starts a new space; there is nothing to stay close to.
        log(f"stability term off: the previous aligner gives {warm_start.out_dim}-dim vectors, this one "
            f"{qconfig.out_dim}")
        return None
    if targets is None:
        try:
            warm_start.check_features(features)
        except ValueError as error:  # other modalities: a new space again
            log(f"stability term off: the previous aligner cannot embed these items ({error})")
            return None
        targets = warm_start.embed(features, store=store, threads=config.threads)
    targets = np.asarray(targets, np.float32)
    if targets.shape != (features.n_items, qconfig.out_dim):
        raise ValueError(f"stability_targets has shape {targets.shape}, expected {(features.n_items, qconfig.out_dim)}: "
                         "one vector per item of features, from the warm-start aligner")
    log(f"stability term: weight {config.stability_weight} toward the previous aligner's vectors")
    return torch.from_numpy(targets)


def caption_loss(net: AlignerNet, q: torch.Tensor, ids: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean next-token cross-entropy over real target tokens, and the number of correct argmax predictions."""
    ids_t = torch.from_numpy(ids)
    mask_t = torch.from_numpy(mask)
    logits = net.caption(q, ids_t, mask_t)[:, :-1]
    target = ids_t[:, 1:]
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=PAD)
    correct = ((logits.argmax(-1) == target) & mask_t[:, 1:]).sum()
    return loss, correct


def caption_metrics(aligner: Aligner, features: MultimodalFeatures, rows: np.ndarray, captions: CaptionData,
                    store=None, batch: int = 256, threads: int | None = None) -> dict[str, float]:
    """Caption cross-entropy (nats/token) and next-token accuracy on the items at ``rows``, with
    ``threads`` torch threads (None: 1)."""
    net = aligner.net()
    rows = np.asarray(rows, np.int64)
    rows = rows[captions.mask[rows, 1:].any(axis=1)]
    if net.caption is None or not len(rows):
        return {"caption_loss": float("nan"), "token_accuracy": float("nan"), "tokens": 0}
    pad_to = dict(zip(aligner.config.modalities, aligner.config.max_tokens))
    total_loss, total_correct, total = 0.0, 0, 0
    with torch.inference_mode(), compute_threads(threads):
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            tokens, masks = feature_tensors(features.token_matrices(chunk, store, pad_to=pad_to), features)
            q = net.qformer.query_tokens(tokens, masks)
            loss, correct = caption_loss(net, q, captions.ids[chunk], captions.mask[chunk])
            n_tokens = int(captions.mask[chunk, 1:].sum())
            total_loss += float(loss) * n_tokens
            total_correct += int(correct)
            total += n_tokens
    return {"caption_loss": total_loss / total, "token_accuracy": total_correct / total, "tokens": total}


def unigram_baseline(captions: CaptionData, train_rows: np.ndarray, eval_rows: np.ndarray) -> dict[str, float]:
    """Cross-entropy and accuracy of a content-blind model: the training captions' token frequencies."""
    v = len(captions.vocabulary) + 2
    train_targets = captions.ids[train_rows, 1:][captions.mask[train_rows, 1:]]
    eval_targets = captions.ids[eval_rows, 1:][captions.mask[eval_rows, 1:]]
    if not len(train_targets) or not len(eval_targets):
        return {"caption_loss": float("nan"), "token_accuracy": float("nan")}
    freq = np.bincount(train_targets, minlength=v).astype(np.float64) + 0.5  # add-half smoothing
    p = freq / freq.sum()
    return {"caption_loss": float(-np.log(p[eval_targets]).mean()),
            "token_accuracy": float((eval_targets == int(np.argmax(freq))).mean())}
