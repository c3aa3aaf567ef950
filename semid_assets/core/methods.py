"""The tokenizer methods a ``method`` partition can name, built from one set of options."""

from __future__ import annotations

from typing import Any

from semid_assets.core.rq_kmeans import RQKMeans

METHODS: dict[str, type] = {"rq_kmeans": RQKMeans}


def make_tokenizer(method: str, **options: Any):
    try:
        cls = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown tokenizer method {method!r}; known: {', '.join(METHODS)}") from None
    return cls(**options)
