"""The tokenizer methods a ``method`` partition can name, and how to build one from its options.

Each method is a :class:`~semid_assets.core.tokenizers.base.Tokenizer` subclass that declares its
options class, anchoring, side inputs and whether its catalogue codes depend on the population;
callers ask the class or the model, never its type.

A method's class is imported on first use: RQ-VAE and LETTER import torch, and loading the
pipeline's definitions (or running an RQ-Kmeans month) must not. What the definitions need
before that — the options (the launchpad config) and the side inputs (which inputs a run
reads) — is declared here, and a test holds each declaration equal to its class.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from semid_assets.core.tokenizers.balanced_kmeans import BalancedOptions
from semid_assets.core.tokenizers.base import QuantiserOptions, Tokenizer
from semid_assets.core.tokenizers.rq_kmeans import RQKMeansOptions
from semid_assets.core.tokenizers.vae_options import LETTEROptions, RQVAEOptions

__all__ = ["METHODS", "MethodDeclaration", "declared", "tokenizer_class", "make_tokenizer"]


@dataclass(frozen=True)
class MethodDeclaration:
    """What is known of a method without importing its class."""

    options: type[QuantiserOptions]
    """The class's ``Options``."""
    implementation: str
    """``module:Class`` of the :class:`Tokenizer` subclass."""
    side_inputs: tuple[str, ...] = ()
    """The class's ``side_inputs``."""

    @property
    def class_name(self) -> str:
        return self.implementation.rsplit(":", 1)[1]

    def load(self) -> type[Tokenizer]:
        module, name = self.implementation.split(":")
        return getattr(importlib.import_module(module), name)


_TOKENIZERS = "semid_assets.core.tokenizers"
_DECLARED: dict[str, MethodDeclaration] = {
    "rq_kmeans": MethodDeclaration(RQKMeansOptions, f"{_TOKENIZERS}.rq_kmeans:RQKMeans"),
    "rq_kmeans_balanced": MethodDeclaration(BalancedOptions, f"{_TOKENIZERS}.balanced_kmeans:RQKMeansBalanced"),
    "rq_vae": MethodDeclaration(RQVAEOptions, f"{_TOKENIZERS}.rq_vae:RQVAE"),
    "letter": MethodDeclaration(LETTEROptions, f"{_TOKENIZERS}.letter:LETTER", side_inputs=("collaborative",)),
}


class _MethodClasses(Mapping[str, type[Tokenizer]]):
    """Method name → class, in declaration order; a class is imported when it is looked up."""

    def __getitem__(self, method: str) -> type[Tokenizer]:
        return _DECLARED[method].load()

    def __iter__(self) -> Iterator[str]:
        return iter(_DECLARED)

    def __len__(self) -> int:
        return len(_DECLARED)


METHODS: Mapping[str, type[Tokenizer]] = _MethodClasses()


def declared(method: str) -> MethodDeclaration:
    """The declaration of ``method`` (its class is not imported)."""
    try:
        return _DECLARED[method]
    except KeyError:
        raise ValueError(f"unknown tokenizer method {method!r}; known: {', '.join(_DECLARED)}") from None


def tokenizer_class(method: str) -> type[Tokenizer]:
    return declared(method).load()


def _option_names(options: type[QuantiserOptions]) -> set[str]:
    return {f.name for f in dataclasses.fields(options) if f.init}


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
    unknown = sorted(set(values) - _option_names(cls.Options))
    if unknown:
        owners = {name: [m for m, d in _DECLARED.items() if name in _option_names(d.options)] for name in unknown}
        where = "; ".join(f"{name} is an option of {', '.join(found)}" if found else f"{name} is no option of any method"
                          for name, found in owners.items())
        raise ValueError(f"{method} has no option(s) {unknown} ({where}); it takes {sorted(_option_names(cls.Options))}")
    return cls(cls.Options(**values))
