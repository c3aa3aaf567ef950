"""Options of the library's estimators: frozen dataclasses whose fields document themselves.

Every trainable piece of semid takes its options as one frozen dataclass, and each field
carries its description as an attribute docstring, the string literal right under it::

    @dataclass(frozen=True, kw_only=True)
    class PairOptions:
        window_months: int = 3
        \"\"\"Swing sees positives of the last ``window_months`` months.\"\"\"

The default and the description are written once, there. The orchestration layer builds
its launchpad config from these classes (``semid_assets/config.py``), so an option added
here reaches the UI with its description without being restated.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["Option", "option_docs", "options_of", "replace_options"]


@dataclass(frozen=True)
class Option:
    name: str
    annotation: Any
    default: Any
    doc: str


@lru_cache(maxsize=None)
def _own_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings written in ``cls``'s own body (not its bases')."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body[0].body
    docs = {}
    for statement, following in zip(body, body[1:]):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def option_docs(cls: type) -> dict[str, str]:
    """``{field: description}`` of a dataclass, bases first, a subclass's own text winning."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_docs(klass))
    return docs


def options_of(cls: type) -> list[Option]:
    """Every init field of the options dataclass ``cls``, in declaration order, with its default and doc."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass of options")
    docs = option_docs(cls)
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation naming what the module cannot resolve
        hints = {}
    found = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        found.append(Option(f.name, hints.get(f.name, f.type), default, docs.get(f.name, "")))
    return found


def replace_options(options: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that names the options class and its fields when a name is unknown."""
    known = {f.name for f in dataclasses.fields(options) if f.init}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"{type(options).__name__} has no option(s) {unknown}; it takes {sorted(known)}")
    return dataclasses.replace(options, **changes)
