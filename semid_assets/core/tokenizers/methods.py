"""The tokenizer methods a ``method`` partition can name, and how to build one from its options.

Each method is a :class:`~semid_assets.core.tokenizers.base.Tokenizer` subclass that declares its
options class, anchoring, side inputs and whether its catalogue codes depend on the population;
callers ask the class or the model, never its type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from semid_assets.core.tokenizers.balanced_kmeans import RQKMeansBalanced
from semid_assets.core.tokenizers.base import QuantiserOptions, Tokenizer
from semid_assets.core.tokenizers.letter import LETTER
from semid_assets.core.tokenizers.rq_kmeans import RQKMeans
from semid_assets.core.tokenizers.rq_vae import RQVAE

__all__ = ["METHODS", "tokenizer_class", "make_tokenizer"]

METHODS: dict[str, type[Tokenizer]] = {cls.method: cls for cls in (RQKMeans, RQKMeansBalanced, RQVAE, LETTER)}


def tokenizer_class(method: str) -> type[Tokenizer]:
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(f"unknown tokenizer method {method!r}; known: {', '.join(METHODS)}") from None


def _option_names(cls: type[Tokenizer]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls.Options) if f.init}


def make_tokenizer(method: str, options: Mapping[str, Any] | QuantiserOptions | None = None, /,
                   **overrides: Any) -> Tokenizer:
    """An unfitted tokenizer of ``method``.

    ``options``: a mapping of this method's option names (an option of another method is an error
    naming the methods that take it), or an options object whose fields this method takes (e.g.
    the shared ``QuantiserOptions``); ``overrides`` replace single options.
    """
    cls = tokenizer_class(method)
    if type(options) is cls.Options and not overrides:
        return cls(options)
    if isinstance(options, QuantiserOptions):
        values = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.init}
    elif isinstance(options, Mapping) or options is None:
        values = dict(options or {})
    else:
        raise TypeError(f"options must be a mapping or a QuantiserOptions, got {type(options).__name__}")
    values.update(overrides)
    unknown = sorted(set(values) - _option_names(cls))
    if unknown:
        owners = {name: [m for m, other in METHODS.items() if name in _option_names(other)] for name in unknown}
        where = "; ".join(f"{name} is an option of {', '.join(found)}" if found else f"{name} is no option of any method"
                          for name, found in owners.items())
        raise ValueError(f"{method} has no option(s) {unknown} ({where}); it takes {sorted(_option_names(cls))}")
    return cls(cls.Options(**values))
