"""Launchpad config generated from the library's options dataclasses.

One rule for every stage: the library's frozen options dataclass (``core/options.py``) holds
each default and its description once; this module turns it into a ``dg.Config`` class, so
the Dagster launchpad shows every option with its description, and ``to_options`` turns the
run config back into the dataclass. A test checks every library option reaches the launchpad.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import dagster as dg
import pydantic

from semid_assets.core.options import options_of

__all__ = ["config_class", "to_options"]


def _field(option, default: Any = dataclasses.MISSING) -> tuple[Any, Any]:
    value = option.default if default is dataclasses.MISSING else default
    if isinstance(value, tuple):
        value = list(value)
    annotation = option.annotation
    if typing.get_origin(annotation) is tuple:
        annotation = list[typing.get_args(annotation)[0]]
    description = option.doc or None
    if value is dataclasses.MISSING:
        return annotation, pydantic.Field(description=description)
    return annotation, pydantic.Field(default=value, description=description)


def _written_doc(options: type | None) -> str | None:
    """The class docstring its author wrote (a dataclass without one gets its signature as ``__doc__``)."""
    doc = getattr(options, "__doc__", None)
    if not doc or doc.startswith(f"{options.__name__}("):
        return None
    return doc


def config_class(name: str, options: type | None = None, *, doc: str | None = None,
                 sections: dict[str, type] | None = None, extra: dict[str, tuple[Any, Any]] | None = None,
                 defaults: dict[str, Any] | None = None, exclude: tuple[str, ...] = ()) -> type[dg.Config]:
    """A ``dg.Config`` subclass named ``name`` with one field per option of ``options``.

    ``sections``: nested config classes (e.g. one per tokenizer method), each a field of this one.
    ``extra``: pipeline-only fields ``{name: (annotation, pydantic.Field(...))}`` that no library
    dataclass holds. ``defaults``: a different default for a field (e.g. the dataset's codebook
    size), still described by the library. ``exclude``: options the stage sets itself.
    """
    defaults = defaults or {}
    fields: dict[str, tuple[Any, Any]] = {}
    for option in options_of(options) if options is not None else []:
        if option.name not in exclude:
            fields[option.name] = _field(option, defaults.get(option.name, dataclasses.MISSING))
    for section, section_class in (sections or {}).items():
        fields[section] = (section_class, pydantic.Field(default_factory=section_class,
                                                         description=section_class.__doc__))
    fields.update(extra or {})
    model = pydantic.create_model(name, __base__=dg.Config, __doc__=doc or _written_doc(options), **fields)
    model.__module__ = __name__
    return model


def to_options(config: dg.Config, options: type, **fixed: Any) -> Any:
    """The library dataclass ``options`` from the fields of ``config`` it names, plus ``fixed`` values."""
    names = {f.name for f in dataclasses.fields(options) if f.init}
    values = {k: v for k, v in config.model_dump().items() if k in names}
    values.update(fixed)
    annotations = typing.get_type_hints(options)
    for key, value in values.items():
        if isinstance(value, list) and typing.get_origin(annotations.get(key)) is tuple:
            values[key] = tuple(value)
    return options(**values)


class OptionsResource(dg.ConfigurableResource):
    """A resource whose fields are a library options dataclass (:func:`resource_class`)."""

    def options(self):
        return to_options(self, type(self).options_class)


def resource_class(name: str, options: type, doc: str | None = None) -> type[OptionsResource]:
    """A ``dg.ConfigurableResource`` named ``name`` with one field per option of ``options`` (defaults and
    descriptions from the library), whose ``options()`` gives the dataclass back."""
    fields = {option.name: _field(option) for option in options_of(options)}
    model = pydantic.create_model(name, __base__=OptionsResource, __doc__=doc or _written_doc(options), **fields)
    model.__module__ = __name__
    model.options_class = options
    return model
