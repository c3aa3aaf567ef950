"""The QFormer: a few learnable queries that read an item's multimodal token matrix.

OneRec's aligner (``shared/REFERENCE.md`` §1): ``N_q`` query tokens ``Q ∈ R^{N_q×d}`` pass
through ``N_c`` blocks of cross-attention to the item's tokens ``M`` followed by an FFN, with
RMSNorm and residuals (pre-norm)::

    Q ← Q + CrossAttn(RMSNorm(Q), M)
    Q ← Q + FFN(RMSNorm(Q))

The token memory ``M`` is built per modality: a linear projection of the modality's tokens
to the model width plus a learned modality embedding (the projection's bias); every item
also gets one learned *null token* that is always attendable, so an item lacking a
modality (an all-False mask row) or lacking every modality still has a well-defined
softmax.

Cross-attention cost. Keys and values are the memory itself: the per-head key projection
is folded into the query side (scores ``(Q W_h) Mᵀ``, ``W_h = W_q,h W_k,hᵀ``) and the value
projection into the output side (``(softmax · M) W_o,h``). This is the same function class
as standard multi-head cross-attention (each head a bilinear form in the query and the
token), without the rank limit, and it costs ``O(T·d)`` per query-head instead of the
``O(T·d²)`` of projecting every token to keys and values in every block. With ~60 tokens
per item and 4 queries, the per-token input projection becomes the only per-token matrix
product, which is what makes a month of training fit in a minute on 2 cores.

The output ``Q`` (``N_q × d``) is pooled — mean over the queries or concatenation — and
L2-normalised into the vector the tokenizers consume.

Caption decoder. :class:`CaptionDecoder` is a small causal transformer whose input is the
``N_q`` query tokens as a prefix followed by the caption's token embeddings; it predicts
the caption's next token over a *compact* vocabulary: the (at most ``vocab_size - 2``)
most frequent token ids of the training captions under the text encoder's own WordPiece
tokenizer, plus PAD and UNK (everything else). The softmax over MiniLM's 30,522 ids would
cost more than the whole encoder; the compact table keeps every id that actually occurs in
the synthetic captions. Input and output embeddings are tied.

A larger frozen causal LM instead of the small decoder: load it from a local folder
(``transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True)``), freeze
it, learn one ``Linear(d, lm_hidden)`` that maps the ``N_q`` query tokens into its input
embedding space, and call it with ``inputs_embeds = concat(prefix, lm.get_input_embeddings()
(caption_ids))`` and labels ``-100`` on the prefix positions — the BLIP-2 / OneRec
(LLaMA3) arrangement. The caption must then be tokenized by the LM's own tokenizer. Only
the projection (and the QFormer) receive gradients. :class:`CaptionDecoder` has that
interface: ``forward(prefix, ids, mask) -> logits``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from semid_assets.core.alignment.captions import PAD, UNK  # noqa: F401  (UNK: re-exported for the tests)
from semid_assets.core.alignment.config import QFormerConfig


class FoldedCrossAttention(nn.Module):
    """Multi-head cross-attention whose key/value projections are folded into the query/output side.

    The memory is a list of per-modality token tensors (never concatenated: copying the
    ``[b, T, d]`` memory costs more than attending to it) plus the shared null token.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.probe = nn.Linear(width, heads * width, bias=False)
        self.out = nn.Linear(heads * width, width)
        self.scale = 1.0 / math.sqrt(width // heads)
        nn.init.normal_(self.probe.weight, std=1.0 / math.sqrt(width))

    def forward(self, q: torch.Tensor, memory: list[torch.Tensor], masks: list[torch.Tensor],
                null: torch.Tensor) -> torch.Tensor:
        b, nq, w = q.shape
        probe = self.probe(q).reshape(b, nq * self.heads, w) * self.scale
        scores = [probe @ null.reshape(w, 1)]  # [b, nq·h, 1]: the always-present null token
        for m, keep in zip(memory, masks):
            scores.append(torch.bmm(probe, m.transpose(1, 2)).masked_fill(~keep[:, None, :], float("-inf")))
        weights = torch.cat(scores, dim=-1).softmax(dim=-1)
        parts = torch.split(weights, [1] + [m.shape[1] for m in memory], dim=-1)
        context = parts[0] * null.reshape(1, 1, w)
        for part, m in zip(parts[1:], memory):
            context = context + torch.bmm(part, m)  # [b, nq·h, w]
        return self.out(context.reshape(b, nq, self.heads * w))


class QFormerBlock(nn.Module):
    def __init__(self, width: int, heads: int, ffn_mult: int) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(width)
        self.attn = FoldedCrossAttention(width, heads)
        self.ffn_norm = nn.RMSNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, ffn_mult * width), nn.GELU(), nn.Linear(ffn_mult * width, width))

    def forward(self, q: torch.Tensor, memory: list[torch.Tensor], masks: list[torch.Tensor],
                null: torch.Tensor) -> torch.Tensor:
        q = q + self.attn(self.attn_norm(q), memory, masks, null)
        return q + self.ffn(self.ffn_norm(q))


class QFormer(nn.Module):
    """Token matrices per modality → ``N_q × d`` query tokens → one pooled, unit-norm vector."""

    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        # Each modality's projection bias is its modality embedding: a learned vector added to
        # every token of that modality (a separate embedding would be the same function, computed twice).
        self.inputs = nn.ModuleList(nn.Linear(d, w) for d in config.modality_dims)
        self.null_token = nn.Parameter(torch.randn(w) * 0.02)
        self.queries = nn.Parameter(torch.randn(config.n_queries, w) / math.sqrt(w))
        self.blocks = nn.ModuleList(QFormerBlock(w, config.heads, config.ffn_mult) for _ in range(config.n_blocks))
        self.out_norm = nn.RMSNorm(w)

    def query_tokens(self, tokens: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
        memory = [proj(x) for proj, x in zip(self.inputs, tokens)]
        q = self.queries.unsqueeze(0).expand(tokens[0].shape[0], -1, -1)
        for block in self.blocks:
            q = block(q, memory, masks, self.null_token)
        return self.out_norm(q)

    def pool(self, q: torch.Tensor) -> torch.Tensor:
        v = q.mean(dim=1) if self.config.pool == "mean" else q.reshape(q.shape[0], -1)
        return nn.functional.normalize(v, dim=-1)

    def forward(self, tokens: list[torch.Tensor], masks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.query_tokens(tokens, masks)
        return q, self.pool(q)


class CaptionDecoder(nn.Module):
    """Causal transformer over ``[N_q query tokens | caption tokens]`` predicting the caption's next tokens."""

    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        w = config.width
        self.prefix = nn.Linear(w, w)
        self.embedding = nn.Embedding(config.vocab_size, w, padding_idx=PAD)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.position = nn.Parameter(torch.randn(config.n_queries + config.caption_max_tokens, w) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(w, config.heads, config.ffn_mult * w, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(config.decoder_layers))
        self.norm = nn.RMSNorm(w)

    def forward(self, prefix: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``[b, L, vocab]``: position ``i`` predicts ``ids[:, i + 1]``.

        ``prefix``: query tokens ``[b, N_q, w]``; ``ids``: compact caption ids ``[b, L]``
        (first = ``[CLS]``); ``mask``: True on real caption tokens.
        """
        b, nq, _ = prefix.shape
        x = torch.cat([self.prefix(prefix), self.embedding(ids)], dim=1)
        x = x + self.position[: x.shape[1]]
        n = x.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool).triu(diagonal=1)  # True = may not attend
        padding = torch.cat([torch.zeros(b, nq, dtype=torch.bool), ~mask], dim=1)
        for layer in self.layers:
            x = layer(x, src_mask=causal, src_key_padding_mask=padding)
        h = self.norm(x[:, nq:])
        return h @ self.embedding.weight.T  # tied output layer


class AlignerNet(nn.Module):
    """The QFormer plus its caption decoder (absent when ``vocab_size == 2``): what is trained and stored."""

    def __init__(self, config: QFormerConfig) -> None:
        super().__init__()
        self.config = config
        self.qformer = QFormer(config)
        self.caption = CaptionDecoder(config) if config.vocab_size > 2 else None
