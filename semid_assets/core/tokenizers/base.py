"""The tokenizer interface every method of semid implements: embeddings in, coarse-to-fine codes out.

A tokenizer *method* (``rq_kmeans``, ``rq_kmeans_balanced``, ``rq_vae``, ``letter``) is a subclass
of :class:`Tokenizer` that declares what sets it apart instead of leaving callers to find out:

- ``Options``: its frozen options dataclass (a :class:`QuantiserOptions` subclass), which
  validates every value and documents every field;
- ``anchoring``: how a new version continues an earlier one (:class:`Anchoring`);
- ``side_inputs``: inputs a fit needs beyond the embeddings (LETTER's ``collaborative``);
- ``population_codes``: whether a whole catalogue's codes (``encode_catalogue``) differ from
  encoding its items one by one (``encode``), as balanced RQ-Kmeans' capacity makes them.

Every method quantises some vectors (``quantised``: the embeddings themselves, or an encoder's
latent) with residual codebooks ``[levels, codebook_size, d_q]``; encoding, beam search, the
collision re-assignment candidates and the artefact format are shared here.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from semid_assets.core.options import replace_options
from semid_assets.core.threads import compute_threads
from semid_assets.core.tokenizers.codes import check_codes
from semid_assets.core.tokenizers.metrics import level_report
from semid_assets.core.tokenizers.residual import beam_encode, last_level_candidates
from semid_assets.core.validation import as_float32_matrix, check_int, check_optional_int

__all__ = ["Anchoring", "QuantiserOptions", "WarmStart", "Tokenizer", "Progress", "store_checked", "stored_params",
           "FORMAT_VERSION"]

# Version of the artefact layout written by ``to_arrays`` (the same for every method).
FORMAT_VERSION = 1
# faiss keeps seeds in a C int.
_MAX_SEED = 2**31 - 1

Progress = Callable[[str], None]


class Anchoring(enum.Enum):
    """How a fit continues an earlier version of the same method (``WarmStart``)."""

    CODEBOOKS = "codebooks"
    """The k-means family: every level's Lloyd iterations start from given centroids (by default the
    earlier version's codebooks; anchored retraining passes its partition carried over into today's
    space), then codes are relabelled to the earlier version's."""
    WHOLE_MODEL = "whole_model"
    """RQ-VAE and LETTER: encoder, decoder and codebooks are copied from the earlier version and training
    continues from them, then codes are relabelled to the earlier version's."""


def store_checked(options: Any, **values: Any) -> None:
    """Set validated (normalised) field values on a frozen options instance, from its ``__post_init__``."""
    for name, value in values.items():
        object.__setattr__(options, name, value)


@dataclass(frozen=True, kw_only=True)
class QuantiserOptions:
    """Options every tokenizer method takes: the shape of the codes, the seed, encoding and threads."""

    levels: int = 3
    """Code levels L: the length of a semantic ID before its collision suffix."""
    codebook_size: int = 256
    """Codes per level K (at least 2). Every level has its own K-row codebook, and a fit needs at
    least K items."""
    seed: int = 0
    """Seeds everything random in a fit (training samples, initialisation, batch order, code resets):
    the same embeddings, options and seed give bit-identical codebooks and codes. At most 2**31 - 1."""
    beam_size: int = 1
    """Code paths kept per level when encoding: 1 takes the nearest code level by level (greedy);
    B > 1 keeps the B best partial paths (faiss's residual-quantizer beam search) for a lower
    reconstruction error at B times the search cost. Training is unchanged;
    ``encode(X, beam_size=...)`` overrides it for one call."""
    n_threads: int = 1
    """faiss, torch and BLAS threads during ``fit`` and ``encode``, set for the call and restored after it
    (never the process's own setting, which depends on how the run was launched).
    Another thread count changes floating-point rounding, which can flip near-tie assignments while
    training and send a fit to a different, equally good optimum: keep it fixed to reproduce a fit.
    Encoding with stored codebooks is unaffected except at exact ties. On a machine shared with other
    CPU-bound processes, extra threads mostly wait for each other at every barrier."""

    def __post_init__(self) -> None:
        store_checked(self, levels=check_int("levels", self.levels, 1),
                      codebook_size=check_int("codebook_size", self.codebook_size, 2),
                      seed=check_int("seed", self.seed, 0, _MAX_SEED),
                      beam_size=check_int("beam_size", self.beam_size, 1),
                      n_threads=check_int("n_threads", self.n_threads, 1))


@dataclass(frozen=True)
class WarmStart:
    """What a fit continues from: an earlier fitted version of the same method and shape."""

    previous: Tokenizer | None
    """The earlier version (``Tokenizer.warm_start_mismatch`` says whether it fits); None only for a
    ``CODEBOOKS`` start from ``init_codebooks`` alone (e.g. a partition carried into a new space)."""
    init_codebooks: np.ndarray | None = None
    """``Anchoring.CODEBOOKS`` only: the start centroids ``[levels, codebook_size, dim]``
    (default: ``previous.codebooks``)."""
    steps: int | None = None
    """Lloyd iterations per level (``CODEBOOKS``) or epochs (``WHOLE_MODEL``) of the warm fit;
    None: what the method's options give a fit from scratch. Every step lets more border items
    change code."""

    def __post_init__(self) -> None:
        if self.previous is None and self.init_codebooks is None:
            raise TypeError("a WarmStart needs a previous Tokenizer or init_codebooks")
        if self.previous is not None and not isinstance(self.previous, Tokenizer):
            raise TypeError(f"WarmStart.previous must be a fitted Tokenizer, got {type(self.previous).__name__}")
        object.__setattr__(self, "steps", check_optional_int("steps", self.steps, 1))


def stored_params(params: dict[str, Any]) -> dict[str, Any]:
    """The options of a stored artefact's ``params``. Artefacts written while ``n_threads`` could be
    None ("the process's setting") read it as the default, 1: it never shaped the stored arrays."""
    return {k: v for k, v in params.items() if not (k == "n_threads" and v is None)}


class Tokenizer(abc.ABC):
    """A residual quantiser: ``fit`` learns codebooks, ``encode`` gives int32 codes ``[n, levels]``,
    ``decode`` reconstructs float32 vectors ``[n, dim]``.

    Construct with the method's options object, or with its fields as keywords
    (``RQKMeans(levels=3, codebook_size=256)``), or both (keywords override the object).
    """

    method: ClassVar[str]
    Options: ClassVar[type[QuantiserOptions]]
    anchoring: ClassVar[Anchoring]
    side_inputs: ClassVar[tuple[str, ...]] = ()
    population_codes: ClassVar[bool] = False
    artifact_format: ClassVar[str]

    codebooks: np.ndarray | None

    def __init__(self, options: QuantiserOptions | None = None, /, **overrides: Any) -> None:
        if options is None:
            options = replace_options(self.Options(), **overrides) if overrides else self.Options()
        elif type(options) is not self.Options:
            raise TypeError(f"{type(self).__name__} takes {self.Options.__name__}, got {type(options).__name__}")
        elif overrides:
            options = replace_options(options, **overrides)
        self.options = options
        self.dim: int | None = None
        self.fit_info: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def get_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self.options)

    @property
    def levels(self) -> int:
        return self.options.levels

    @property
    def codebook_size(self) -> int:
        return self.options.codebook_size

    @property
    def is_fitted(self) -> bool:
        return self.codebooks is not None

    def _threads(self) -> AbstractContextManager:
        """The thread settings of one call: ``n_threads`` for faiss, torch and BLAS, restored on exit."""
        return compute_threads(self.options.n_threads)

    def _check_fitted(self, action: str) -> None:
        if not self.is_fitted:
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() before {action}()")

    def _checked_input(self, X: Any) -> np.ndarray:
        X = as_float32_matrix(X)
        if X.shape[1] != self.dim:
            raise ValueError(f"X has dim {X.shape[1]} but the tokenizer was fitted on dim {self.dim}")
        return X

    # ------------------------------------------------------------------ fitting

    def fit(self, X: Any, *, progress: Progress | None = None, warm_start: WarmStart | None = None,
            **side: Any) -> Tokenizer:
        """Learn the codebooks (and, for RQ-VAE/LETTER, the networks) on ``X`` [n, dim]."""
        self.fit_encode(X, progress=progress, warm_start=warm_start, **side)
        return self

    def fit_encode(self, X: Any, *, progress: Progress | None = None, warm_start: WarmStart | None = None,
                   **side: Any) -> np.ndarray:
        """Fit on ``X`` [n, dim] (float; float64 is cast to float32) and return its codes, int32 [n, levels]:
        the codes ``encode_catalogue(X)`` gives with the fitted model.

        ``progress`` receives one line per level or epoch. ``warm_start`` continues an earlier version
        (see :class:`Anchoring`). ``side``: the method's ``side_inputs``, each with one row per item of X.
        """
        self._check_side_names(side)
        if warm_start is not None:
            if not isinstance(warm_start, WarmStart):
                raise TypeError(f"warm_start must be a WarmStart, got {type(warm_start).__name__}")
            if warm_start.init_codebooks is not None and self.anchoring is not Anchoring.CODEBOOKS:
                raise ValueError(f"init_codebooks warm-start the k-means family; {type(self).__name__} "
                                 "warm-starts the whole model from WarmStart.previous")
        with self._threads():
            return self._fit_encode(X, progress, warm_start, side)

    @abc.abstractmethod
    def _fit_encode(self, X: Any, progress: Progress | None, warm_start: WarmStart | None,
                    side: dict[str, Any]) -> np.ndarray:
        """Fit and return the codes; runs inside the call's thread settings."""

    def _check_side_names(self, side: dict[str, Any]) -> None:
        name = type(self).__name__
        unknown = sorted(set(side) - set(self.side_inputs))
        if unknown:
            takes = f"only {list(self.side_inputs)}" if self.side_inputs else "no side inputs"
            raise ValueError(f"{name}.fit takes {takes}, got {unknown}")
        missing = [key for key in self.side_inputs if side.get(key) is None]
        if missing:
            raise ValueError(f"{name} needs side input(s) {missing}: fit(X, {missing[0]}=...) with one row "
                             "per item of X")

    def _training_matrix(self, X: Any, warm_start: WarmStart | None) -> np.ndarray:
        """``X`` validated for a fit: float32 [n, dim], at least ``codebook_size`` rows, and a shape
        ``warm_start.previous`` can continue."""
        X = as_float32_matrix(X)
        n, d = X.shape
        K = self.codebook_size
        if n < K:
            raise ValueError(
                f"X has {n} points but codebook_size is {K}: a level needs at least one point per code; "
                f"use codebook_size <= {n} (a power of two such as {1 << max(1, int(np.log2(max(n, 2))) - 1)} "
                "keeps codes compact)")
        if warm_start is not None and warm_start.previous is not None:
            mismatch = self.warm_start_mismatch(warm_start.previous, d)
            if mismatch is not None:
                raise ValueError(mismatch)
        return X

    def _shape(self, dim: int | None) -> dict[str, Any]:
        """What must agree between a model and the earlier version it warm-starts from."""
        return {"dim": dim, "levels": self.levels, "codebook_size": self.codebook_size}

    def warm_start_mismatch(self, previous: Any, dim: int) -> str | None:
        """Why this model cannot warm-start from ``previous`` on inputs of width ``dim``, or None if it can:
        ``previous`` must be a fitted version of the same method with the same shape (``_shape``)."""
        if not isinstance(previous, Tokenizer) or previous.method != self.method:
            return f"a warm start of {self.method} needs a fitted {self.method} version, got {type(previous).__name__}"
        if not previous.is_fitted:
            return f"the warm start {type(previous).__name__} is not fitted"
        mine, theirs = self._shape(int(dim)), previous._shape(previous.dim)
        if mine != theirs:
            return (f"cannot warm-start from a {type(previous).__name__} of shape {theirs}: this model and its "
                    f"data have shape {mine}; train unanchored or configure the same shape")
        return None

    # ---------------------------------------------------------------- encoding

    def quantised(self, X: Any) -> np.ndarray:
        """The vectors the codebooks quantise, float32 [n, d_q]: ``X`` itself here."""
        self._check_fitted("quantised")
        return self._checked_input(X)

    def encode(self, X: Any, *, beam_size: int | None = None) -> np.ndarray:
        """Codes of ``X`` [n, dim] item by item (what a new upload gets): int32 [n, levels], the best path
        of a beam of ``beam_size`` (default: the options') through the codebooks."""
        self._check_fitted("encode")
        beam = self.options.beam_size if beam_size is None else check_int("beam_size", beam_size, 1)
        with self._threads():
            return beam_encode(self.quantised(X), self.codebooks, beam)

    def encode_catalogue(self, X: Any) -> np.ndarray:
        """The codes of a whole population ``X`` (a catalogue's semantic IDs): ``encode`` unless the
        method's ``population_codes`` make them depend on the population."""
        return self.encode(X)

    def decode(self, codes: Any) -> np.ndarray:
        """Reconstruction from every level's code: float32 [n, dim]."""
        return self.decode_prefix(codes, self.levels)

    def decode_prefix(self, codes: Any, levels: int) -> np.ndarray:
        """Reconstruction from the first ``levels`` codes, ``sum_{l < levels} C_l[codes[:, l]]``: float32 [n, dim]."""
        self._check_fitted("decode")
        codes = check_codes(codes, levels=self.levels, codebook_size=self.codebook_size)
        levels = check_int("levels", levels, 1, self.levels)
        books = self.codebooks
        out = books[0][codes[:, 0]]
        for lvl in range(1, levels):
            out += books[lvl][codes[:, lvl]]
        return out

    def level_report(self, X: Any, codes: Any) -> pd.DataFrame:
        """Per level: reconstruction error from the first l codes, utilisation, entropy and collisions
        of the prefix (the columns of ``metrics.level_report``)."""
        self._check_fitted("level_report")
        return level_report(X, codes, self.codebooks)

    def relative_mse(self, X: Any, codes: Any) -> float:
        """The reconstruction error from every level relative to X's variance: the last row's
        ``relative_mse`` of :meth:`level_report` (a method may compute it alone, for less)."""
        return float(self.level_report(X, codes)["relative_mse"].iloc[-1])

    def last_level_candidates(self, X: Any, codes: Any, k: int) -> np.ndarray:
        """int64 [n, k]: each item's ``k`` nearest last-level codes given its own first L - 1 codes, nearest
        first — where a colliding item can move without changing its prefix."""
        self._check_fitted("last_level_candidates")
        codes = check_codes(codes, levels=self.levels, codebook_size=self.codebook_size)
        k = check_int("k", k, 1)
        with self._threads():
            return last_level_candidates(self.quantised(X), self.codebooks, codes, k)

    # --------------------------------------------------------------- artefact

    @abc.abstractmethod
    def _state_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The fitted state: arrays, and metadata beyond the common keys."""

    @abc.abstractmethod
    def _load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore what ``_state_arrays`` wrote (``dim`` is already set)."""

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The fitted model as numpy arrays plus JSON metadata (``core/artifact.py``: stored without pickle)."""
        self._check_fitted("to_arrays")
        arrays, extra = self._state_arrays()
        meta = {"format": self.artifact_format, "format_version": FORMAT_VERSION, "class": type(self).__name__,
                "params": self.get_params(), "dim": self.dim, "fit_info": self.fit_info, **extra}
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Tokenizer:
        if meta.get("format") != cls.artifact_format:
            raise ValueError(f"not a stored {cls.__name__}: format {meta.get('format')!r}, "
                             f"expected {cls.artifact_format!r}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported {cls.__name__} format_version {meta.get('format_version')!r} "
                             f"(this code reads {FORMAT_VERSION})")
        if meta.get("class", cls.__name__) != cls.__name__:
            raise ValueError(f"artefact holds a {meta.get('class')}, not a {cls.__name__}")
        obj = cls(**stored_params(meta["params"]))
        obj.dim = int(meta["dim"])
        obj._load_state(arrays, meta)
        obj.fit_info = dict(meta.get("fit_info", {}))
        return obj
