"""Configs as files and dotted keys: ``save``/``load`` of a YAML file, ``flatten`` to dotted keys
and ``diff`` of two configs (``to_dict`` is in :mod:`rssm.config.core`)."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from rssm.config.core import (
    _MISSING,
    C,
    _fields,
    _is_dataclass_type,
    _is_instance,
    _join,
    _read_yaml,
    from_dict,
    to_dict,
)
from rssm.files import atomic_write

__all__ = ["diff", "flatten", "load", "save"]


def save(instance: Any, path: str | os.PathLike[str]) -> None:
    """Writes ``to_dict(instance)`` as YAML, atomically (temp file in the same folder + rename)."""
    atomic_write(path, yaml.safe_dump(to_dict(instance), sort_keys=False))


def load(cls: type[C], path: str | os.PathLike[str]) -> C:
    """Reads a config written by :func:`save` (or any YAML/JSON mapping), checking it."""
    path = Path(path)
    try:
        return from_dict(cls, _read_yaml(path))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not _MISSING:
        return field.default
    if field.default_factory is not _MISSING:
        return field.default_factory()
    return _MISSING


def _leaves(cls: type, instance: Any, prefix: str) -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, type, value or default) of every leaf; sections recurse."""
    for name, (tp, field) in _fields(cls).items():
        key = _join(prefix, name)
        value = getattr(instance, name) if instance is not None else _field_default(field)
        if _is_instance(value):
            yield from _leaves(type(value), value, key)
        elif value is _MISSING and _is_dataclass_type(tp):
            yield from _leaves(tp, None, key)
        else:
            yield key, tp, value


def flatten(instance: Any) -> dict[str, Any]:
    """Dotted leaf key -> value of a config instance (``dict`` fields are leaves)."""
    if not _is_instance(instance):
        raise TypeError(f"flatten needs a dataclass instance, got {instance!r}")
    return {key: copy.deepcopy(value) for key, _, value in _leaves(type(instance), instance, "")}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def diff(a: Any, b: Any) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> ``(value in a, value in b)`` for every leaf where two configs differ.

    ``a`` and ``b`` must be of the same dataclass type. Sections recurse; ``dict`` fields compare
    as a whole; a section that is a dataclass on one side and not the other (``X | None``) is
    reported as a whole, the dataclass side as a plain dict.
    """
    if not _is_instance(a) or type(a) is not type(b):
        raise TypeError(f"diff needs two configs of one dataclass type, got {type(a)}, {type(b)}")
    out: dict[str, tuple[Any, Any]] = {}
    _diff(a, b, "", out)
    return out


def _diff(a: Any, b: Any, prefix: str, out: dict[str, tuple[Any, Any]]) -> None:
    for name in _fields(type(a)):
        x, y, key = getattr(a, name), getattr(b, name), _join(prefix, name)
        if _is_instance(x) and type(x) is type(y):
            _diff(x, y, key, out)
        elif not _same(x, y):
            out[key] = tuple(to_dict(v) if _is_instance(v) else copy.deepcopy(v) for v in (x, y))
