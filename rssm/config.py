"""Typed configuration: dataclasses are the single source of truth (DESIGN.md §5).

A config is a (nested) dataclass. Plain data (YAML, JSON, CLI text) becomes a config only through
:func:`from_dict`, :func:`merge`, :func:`apply_overrides` or :func:`load_presets`, which check every
value against the field's type and name the dotted key of any mistake. Every function returns a
new instance and leaves its inputs untouched; nothing here mutates a config.

Supported field types: ``bool`` (only ``true``/``false``, never ints), ``int`` (never bools or
floats), ``float`` (ints are converted), ``str``, ``pathlib.Path`` (from ``str``), ``Literal[...]``,
unions such as ``X | None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``dict[K, V]``,
``Any`` and nested dataclasses. Annotations may be postponed (``from __future__ import
annotations``); config dataclasses must then be defined at module level so that their annotations
resolve.

Merging: a mapping applied to a nested dataclass or to a ``dict`` field updates it key by key;
every other value replaces the old one. Presets are one YAML file per preset,
``<directory>/<name>.yaml``, each holding one fragment (a partial mapping); they are applied in
order on top of the defaults, so a later preset wins.

YAML is read with ``yaml.safe_load`` rules plus one fix: ``1e-4`` (an exponent without a dot) is a
float, as in YAML 1.2, not the string PyYAML makes of it.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import difflib
import functools
import importlib.util
import inspect
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar, Union

import yaml

from rssm.files import atomic_write

__all__ = [
    "PRESETS_DIR",
    "apply_overrides",
    "available_presets",
    "describe",
    "diff",
    "flatten",
    "from_dict",
    "help_text",
    "load",
    "load_presets",
    "merge",
    "save",
    "to_dict",
    "type_text",
]

C = TypeVar("C")
PRESETS_DIR = Path(__file__).resolve().parent / "presets"
_UNIONS = (Union, types.UnionType)
_MISSING = dataclasses.MISSING


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-4`` and ``5E+3`` as floats (YAML 1.2)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@functools.cache
def _fields(cls: type) -> Mapping[str, tuple[Any, dataclasses.Field]]:
    """Resolved type and field of every ``init`` field of dataclass ``cls``, in order."""
    try:
        hints = typing.get_type_hints(cls)
    except NameError as error:
        raise TypeError(
            f"cannot resolve the annotations of {cls.__qualname__}: {error}; define config "
            "dataclasses at module level"
        ) from error
    fields = {f.name: (hints[f.name], f) for f in dataclasses.fields(cls) if f.init}
    return types.MappingProxyType(fields)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _is_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _member(tp: Any, accept: Callable[[Any], bool]) -> Any:
    """``tp`` or the first member of union ``tp`` for which ``accept`` holds, else None."""
    for candidate in typing.get_args(tp) if typing.get_origin(tp) in _UNIONS else (tp,):
        if accept(candidate):
            return candidate
    return None


def _dataclass_of(tp: Any) -> type | None:
    return _member(tp, _is_dataclass_type)


def _dict_of(tp: Any) -> Any:
    return _member(tp, lambda t: typing.get_origin(t) in (dict, Mapping) or t in (dict, Mapping))


def type_text(tp: Any) -> str:
    """Readable text of a field type: ``int``, ``float | None``, ``{gaussian,categorical}``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "Any"
    if tp is type(None):
        return "None"
    if origin is Literal:
        return "{" + ",".join(_value_text(a) for a in args) + "}"
    if origin in _UNIONS:
        return " | ".join(type_text(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{type_text(args[0])}, ...]"
        return f"{name}[{', '.join(type_text(a) for a in args)}]" if args else name
    return tp.__name__ if isinstance(tp, type) else str(tp)


def _value_text(value: Any) -> str:
    """``value`` as YAML flow text: what one would type on the command line."""
    text = yaml.safe_dump(
        to_dict(value) if _is_instance(value) else _plain(value),
        default_flow_style=True,
        width=1 << 30,
    )
    text = text.strip()
    return text[: -len("...")].strip() if text.endswith("\n...") else text


def _join(path: str, name: Any) -> str:
    return f"{path}.{name}" if path else str(name)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _mismatch(key: str, tp: Any, value: Any, hint: str = "") -> ValueError:
    return ValueError(
        f"config key {key or '<root>'!r}: expected {type_text(tp)}, got {_short(value)} "
        f"({type(value).__name__}){hint}"
    )


def _suggest(name: str, candidates: Sequence[str]) -> list[str]:
    """Close spellings of ``name`` among ``candidates`` (``-``/``_`` mix-ups and typos first)."""
    tail = name.rsplit(".", 1)[-1].replace("-", "_")
    exact = [c for c in candidates if c == name.replace("-", "_")]
    same_tail = [c for c in candidates if c.rsplit(".", 1)[-1] == tail]
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.8)
    return list(dict.fromkeys(exact + close + same_tail))[:3]


def _unknown(key: str, candidates: Sequence[str], siblings: Sequence[str]) -> ValueError:
    close = _suggest(key, candidates)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    where = f" under {key.rsplit('.', 1)[0]!r}" if "." in key else ""
    note = "; '-' and '_' are not interchangeable in config keys" if "-" in key else ""
    return ValueError(
        f"unknown config key {key!r}{hint} (valid keys{where}: {', '.join(siblings)}{note})"
    )


def _check(tp: Any, value: Any, key: str) -> Any:
    """``value`` validated against type ``tp`` and converted (int to float, list to tuple)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return copy.deepcopy(value)
    if origin is Literal:
        for choice in args:
            if value == choice and type(value) is type(choice):
                return value
        close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"config key {key or '<root>'!r}: expected one of {', '.join(map(repr, args))}, got "
            f"{_short(value)}{hint}"
        )
    if origin in _UNIONS:
        rest = [a for a in args if a is not type(None)]
        if value is None and len(rest) < len(args):
            return None
        if len(rest) == 1 and not (isinstance(rest[0], type) and not _is_dataclass_type(rest[0])):
            return _check(rest[0], value, key)  # X | None: X gives its own, more precise error
        for member in rest:
            with contextlib.suppress(ValueError):
                return _check(member, value, key)
        raise _mismatch(key, tp, value)
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return copy.deepcopy(value)
        if isinstance(value, Mapping):
            return from_dict(tp, value, path=key)
        raise _mismatch(key, tp, value, " (a mapping of its fields)")
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        return _check_sequence(tp, value, key)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _mismatch(key, tp, value)
        key_tp, value_tp = args if args else (Any, Any)
        return {
            _check(key_tp, k, _join(key, k)): _check(value_tp, v, _join(key, k))
            for k, v in value.items()
        }
    return _check_scalar(tp, value, key)


def _check_sequence(tp: Any, value: Any, key: str) -> Any:
    origin, args = typing.get_origin(tp) or tp, typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise _mismatch(key, tp, value, " (a list)")
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            raise _mismatch(key, tp, value, f" (exactly {len(args)} items)")
        return tuple(
            _check(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    item_tp = args[0] if args else Any
    items = [_check(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _check_scalar(tp: Any, value: Any, key: str) -> Any:
    if not isinstance(tp, type):
        raise TypeError(f"config key {key!r}: unsupported field type {tp!r}")
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if issubclass(tp, PurePath) and isinstance(value, str):
        return tp(value)
    if isinstance(value, tp) and (tp is bool or not isinstance(value, bool)):
        return copy.deepcopy(value)
    raise _mismatch(key, tp, value, "; write true or false" if tp is bool else "")


def _check_keys(cls: type, data: Mapping[str, Any], path: str) -> None:
    fields = _fields(cls)
    for name in data:
        if not isinstance(name, str):
            raise ValueError(f"config keys are strings, got {name!r} under {path or '<root>'!r}")
        if name not in fields:
            siblings = [_join(path, n) for n in fields]
            raise _unknown(_join(path, name), siblings, list(fields))


def _construct(cls: type[C], kwargs: dict[str, Any], path: str) -> C:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:  # e.g. a check in __post_init__
        raise type(error)(f"config section {path or cls.__name__!r}: {error}") from error


def from_dict(cls: type[C], data: Mapping[str, Any], *, path: str = "") -> C:
    """Builds dataclass ``cls`` from plain (nested) data, checking every value's type.

    Args:
        cls: a dataclass type.
        data: field name -> value; nested dataclasses take mappings. Missing fields take their
            defaults. ``data`` is not modified and shares nothing with the result.
        path: dotted prefix of ``data`` inside a larger config, used in error messages.

    Raises:
        ValueError: an unknown key (naming the dotted key and close valid names), a value of the
            wrong type (naming the dotted key, the expected type and the value) or a missing
            required field.
    """
    if not _is_dataclass_type(cls):
        raise TypeError(f"from_dict needs a dataclass type, got {cls!r}")
    if not isinstance(data, Mapping):
        raise _mismatch(path, cls, data, " (a mapping of its fields)")
    _check_keys(cls, data, path)
    fields = _fields(cls)
    kwargs = {n: _check(tp, data[n], _join(path, n)) for n, (tp, _) in fields.items() if n in data}
    missing = [
        _join(path, n)
        for n, (_, f) in fields.items()
        if n not in data and f.default is _MISSING and f.default_factory is _MISSING
    ]
    if missing:
        raise ValueError(f"missing required config key(s): {', '.join(missing)}")
    return _construct(cls, kwargs, path)


def merge(base: C, data: Mapping[str, Any], *, path: str = "") -> C:
    """A new config: ``base`` with the (partial, nested) mapping ``data`` applied on top.

    Mappings update nested dataclasses and ``dict`` fields key by key; other values replace.
    Works for frozen and mutable dataclasses; neither ``base`` nor ``data`` is modified and the
    result shares no mutable value with them.

    Raises:
        ValueError: as :func:`from_dict`.
    """
    if not _is_instance(base):
        raise TypeError(f"merge needs a dataclass instance, got {base!r}")
    if not isinstance(data, Mapping):
        raise _mismatch(path, type(base), data, " (a mapping of its fields)")
    _check_keys(type(base), data, path)
    kwargs = {}
    for name, (tp, _) in _fields(type(base)).items():
        current = getattr(base, name)
        kwargs[name] = (
            _merge_value(tp, current, data[name], _join(path, name))
            if name in data
            else copy.deepcopy(current)
        )
    return _construct(type(base), kwargs, path)


def _merge_value(tp: Any, current: Any, new: Any, key: str) -> Any:
    if isinstance(new, Mapping):
        section = _dataclass_of(tp)
        if section is not None and isinstance(current, section):
            return merge(current, new, path=key)
        table = _dict_of(tp)
        if table is not None and isinstance(current, Mapping):
            key_tp, value_tp = typing.get_args(table) or (Any, Any)
            result = copy.deepcopy(dict(current))
            for k, v in new.items():
                k = _check(key_tp, k, _join(key, k))
                result[k] = (
                    _merge_value(value_tp, current[k], v, _join(key, k))
                    if k in current
                    else _check(value_tp, v, _join(key, k))
                )
            return result
    return _check(tp, new, key)


def _split_tokens(overrides: Sequence[str] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``["--a.b", "1", "--c=2"]`` or ``{"a.b": "1"}`` -> ``[("a.b", "1"), ("c", "2")]``."""
    if isinstance(overrides, Mapping):
        return [(k[2:] if k.startswith("--") else k, v) for k, v in overrides.items()]
    if isinstance(overrides, str):
        raise TypeError(f"overrides are a list of tokens (e.g. shlex.split), got {overrides!r}")
    tokens, pairs, i = list(overrides), [], 0
    while i < len(tokens):
        token = tokens[i]
        if not isinstance(token, str) or not token.startswith("--") or token in ("--", "--="):
            raise ValueError(f"expected an option '--key value' or '--key=value', got {token!r}")
        if "=" in token:
            key, value = token[2:].split("=", 1)
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            key, value = token[2:], tokens[i + 1]
            i += 2
        else:
            raise ValueError(f"option {token} needs a value: '{token} VALUE' or '{token}=VALUE'")
        pairs.append((key, value))
    return pairs


def _resolve(cls: type, key: str) -> Any:
    """Type of dotted ``key`` in config class ``cls`` (may end inside a ``dict`` field)."""
    tp, prefix = cls, ""
    for part in key.split("."):
        section = _dataclass_of(tp)
        if not part:
            raise ValueError(f"config key {key!r} has an empty part")
        if section is not None:
            fields = _fields(section)
            if part not in fields:
                candidates = [k for k, _ in _walk_types(cls, "")]
                raise _unknown(_join(prefix, part), candidates, list(fields))
            tp = fields[part][0]
        elif _dict_of(tp) is not None:
            tp = (typing.get_args(_dict_of(tp)) or (Any, Any))[1]
        else:
            raise ValueError(
                f"config key {prefix!r} is a leaf of type {type_text(tp)}, not a section: "
                f"cannot set {key!r}"
            )
        prefix = _join(prefix, part)
    return tp


def _walk_types(cls: type, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every section and leaf key of config class ``cls`` with its type."""
    for name, (tp, _) in _fields(cls).items():
        key = _join(prefix, name)
        yield key, tp
        section = _dataclass_of(tp)
        if section is not None:
            yield from _walk_types(section, key)


def _parse_text(tp: Any, text: str, key: str) -> Any:
    """CLI text as YAML; where that does not fit ``tp`` but the raw text does, the raw text."""
    try:
        parsed = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        parsed = text
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, Mapping) and (_dataclass_of(tp) or _dict_of(tp)) is not None:
        return parsed  # merged key by key; merge() checks it
    try:
        _check(tp, parsed, key)
        return parsed
    except ValueError as error:
        with contextlib.suppress(ValueError):
            return _check(tp, text, key)  # e.g. a str field given "512", "no" or "null"
        raise error from None


def apply_overrides(instance: C, overrides: Sequence[str] | Mapping[str, Any]) -> C:
    """A new config with dotted command-line overrides applied in order (a later one wins).

    Args:
        instance: the config to start from (not modified).
        overrides: tokens such as ``["--run.train_ratio", "512", "--world_model.rssm.deter=256"]``,
            or a mapping ``{"run.train_ratio": "512"}``. Text values are parsed with YAML
            (``yaml.safe_load``) and type-checked; where the YAML value does not fit the field but
            the raw text does (a ``str`` field given ``512``), the raw text is used. Non-text
            mapping values are used as they are. A key ending inside a ``dict`` field sets one
            entry (``--loss_scales.image 2``).

    Raises:
        ValueError: a malformed token list, an unknown key (with the closest valid dotted keys)
            or a value of the wrong type (naming the key, the type and the value).
    """
    if not _is_instance(instance):
        raise TypeError(f"apply_overrides needs a dataclass instance, got {instance!r}")
    result = merge(instance, {})
    for key, value in _split_tokens(overrides):
        tp = _resolve(type(instance), key)
        if isinstance(value, str):
            value = _parse_text(tp, value, key)
        for part in reversed(key.split(".")):
            value = {part: value}
        result = merge(result, value)
    return result


def available_presets(directory: str | os.PathLike[str] = PRESETS_DIR) -> list[str]:
    """Sorted names of the presets in ``directory`` (files ``<name>.yaml``)."""
    directory = Path(directory)
    return sorted(p.stem for p in directory.glob("*.yaml")) if directory.is_dir() else []


def _read_yaml(path: Path) -> Mapping[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_presets(
    cls: type[C],
    names: Sequence[str],
    *,
    directory: str | os.PathLike[str] = PRESETS_DIR,
    base: C | None = None,
) -> C:
    """Applies presets ``<directory>/<name>.yaml`` in order on top of ``base`` (default ``cls()``).

    Raises:
        ValueError: an unknown preset name (listing the available ones), or a preset with an
            unknown key or a wrong type (naming the preset, its file and the key).
    """
    if isinstance(names, str):
        raise TypeError(f"names is a list of preset names, got the string {names!r}")
    if base is not None and not isinstance(base, cls):
        raise TypeError(f"base must be a {cls.__name__}, got {type(base).__name__}")
    if not _is_dataclass_type(cls):
        raise TypeError(f"load_presets needs a dataclass type, got {cls!r}")
    config = merge(cls() if base is None else base, {})
    directory = Path(directory)
    available = available_presets(directory)
    for name in names:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(
                f"unknown preset {name!r}{hint} (available in {directory}: "
                f"{', '.join(available) or 'none'})"
            )
        file = directory / f"{name}.yaml"
        try:
            data = dict(_read_yaml(file))
            config = merge(config, expand_patterns(cls, data.pop(PATTERNS, None) or {}))
            config = merge(config, data)
        except ValueError as error:
            raise ValueError(f"preset {name!r} ({file}): {error}") from None
        except yaml.YAMLError as error:  # its text spans lines: keep the problem and the place
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or type(error).__name__
            raise ValueError(
                f"preset {name!r} ({file}) is not valid YAML{where}: {problem}; fix the file"
            ) from None
    return config


PATTERNS = "patterns"  # a preset's top-level mapping of regex -> value (see expand_patterns)


def expand_patterns(cls: type, patterns: Mapping[str, Any]) -> dict[str, Any]:
    """A nested mapping that sets every leaf key of ``cls`` (dotted, e.g.
    ``world_model.rssm.units``) that one of the ``patterns`` matches in full (``re.fullmatch``)
    to its value; a later pattern wins where several match. A preset states them under
    ``patterns:`` (applied before its explicit keys, which win over them), e.g. a size preset:
    ``'.*\\.(units|mlp_units)': 640``.

    Raises:
        ValueError: a pattern that is not a valid regex or matches no key.
    """
    if not isinstance(patterns, Mapping):
        raise ValueError(f"'{PATTERNS}' must map regexes to values, got {type(patterns).__name__}")
    keys = [key for key, _, _ in _leaves(cls, cls(), "")]
    out: dict[str, Any] = {}
    for pattern, value in patterns.items():
        try:
            regex = re.compile(str(pattern))
        except re.error as error:
            raise ValueError(f"pattern {pattern!r} is not a valid regex ({error})") from None
        matched = [key for key in keys if regex.fullmatch(key)]
        if not matched:
            raise ValueError(
                f"pattern {pattern!r} matches no config key; keys look like "
                "'world_model.rssm.units' (matched in full)"
            )
        for key in matched:
            node = out
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = copy.deepcopy(value)
    return out


def _dotted(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            yield from _dotted(value, _join(prefix, key))
        else:
            yield _join(prefix, key), value


def layers(
    names: Sequence[str],
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    directory: str | os.PathLike[str] = PRESETS_DIR,
) -> list[tuple[str, dict[str, Any]]]:
    """What each layer of a composed config sets explicitly, in order: ``(source, {dotted key:
    value})`` for each preset (``"preset 'x'"``) and then the overrides (``"--key"`` each), so
    that a check can name where a conflicting key came from. Values of overrides are the
    unparsed text (None for a YAML ``null``)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        file = Path(directory) / f"{name}.yaml"
        data = dict(_read_yaml(file))
        data.pop(PATTERNS, None)  # regexes of model sizes: never the keys a check names
        out.append((f"preset {name!r}", dict(_dotted(data))))
    for key, value in _split_tokens(overrides):
        text = value.strip().lower() if isinstance(value, str) else value
        out.append((f"--{key}", {key: None if text in ("null", "none", "~") else value}))
    return out


def _plain(value: Any) -> Any:
    if _is_instance(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return copy.deepcopy(value)


def to_dict(instance: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists, paths strings): YAML/JSON-able."""
    if not _is_instance(instance):
        raise TypeError(f"to_dict needs a dataclass instance, got {instance!r}")
    return _plain(instance)


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


def describe(config: Any) -> list[tuple[str, str, str]]:
    """``(dotted key, type text, default text)`` of every leaf of a config class or instance.

    For a class the defaults are the field defaults (nested sections use their parent's default
    factory); for an instance they are its current values. Default text is YAML flow text (what
    one would type on the command line); a field without a default reads ``(required)``.
    """
    cls = config if isinstance(config, type) else type(config)
    if not _is_dataclass_type(cls):
        raise TypeError(f"describe needs a dataclass type or instance, got {config!r}")
    instance = None if isinstance(config, type) else config
    return [
        (key, type_text(tp), "(required)" if value is _MISSING else _value_text(value))
        for key, tp, value in _leaves(cls, instance, "")
    ]


def _section_docs(doc: str, heading: str) -> dict[str, str]:
    """Name -> first sentence of each entry of a Google-style docstring section (``Args:`` or
    ``Attributes:``; an entry ``a, b: text`` documents several names)."""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        return {}
    entries: list[tuple[list[str], list[str]]] = []
    indent = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        indent = width if indent is None else indent
        if width < indent:
            break
        names, sep, text = line.strip().partition(":")
        if width == indent and sep and re.fullmatch(r"[\w, ]+", names):
            entries.append(([n.strip() for n in names.split(",")], [text.strip()]))
        elif entries:
            entries[-1][1].append(line.strip())
    docs = {}
    for names, parts in entries:
        text = " ".join(p for p in parts if p)
        text = re.sub(r":\w+:`~?(?:[\w.]*\.)?([\w]+)`", r"\1", text)  # :class:`~a.B` -> B
        text = text.replace("``", "")
        first = re.split(r"(?<=\.)\s", text, maxsplit=1)[0].rstrip(".")
        for name in names:
            docs[name] = first
    return docs


def _attribute_docs(cls: type) -> dict[str, str]:
    """Field name -> one-line description: the class's ``Attributes:`` entries, else, for a
    config that holds "(keyword) arguments of :class:`X`" or ":meth:`X.y`", the ``Args:``
    entries of that class or method."""
    doc = inspect.getdoc(cls) or ""
    docs = _section_docs(doc, "Attributes:")
    if docs:
        return docs
    match = re.search(r"rguments of :(?:class|meth):`~?([\w.]+)`", doc)
    if match is None:
        return {}
    doc = _source_docstring(match.group(1))
    return _section_docs(doc, "Args:") if doc is not None else {}


def _source_docstring(dotted: str) -> str | None:
    """The docstring of ``a.b.C`` (a class: its own, else its ``__init__``'s) or ``a.b.C.method``,
    read from the module's source with :mod:`ast`: nothing is imported (so ``--help`` never
    imports torch)."""
    parts = dotted.split(".")
    for split in range(1, len(parts)):  # packages first: a module's spec never executes it
        try:
            spec = importlib.util.find_spec(".".join(parts[:split]))
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return None
        if spec.submodule_search_locations is not None:  # a package: look further down
            continue
        node: Any = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        for name in parts[split:]:
            node = next(
                (n for n in node.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))
                 and n.name == name),
                None,
            )  # fmt: skip
            if node is None:
                return None
        doc = ast.get_docstring(node) or ""
        if isinstance(node, ast.ClassDef) and "Args:" not in doc:
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef)
                         and n.name == "__init__"), None)  # fmt: skip
            doc = (ast.get_docstring(init) or "") if init is not None else doc
        return doc
    return None


def field_docs(cls: type, prefix: str = "") -> dict[str, str]:
    """Dotted leaf key -> one-line description, from the ``Attributes:`` sections of ``cls`` and
    its nested config sections (a key without an entry is left out)."""
    out = {}
    own = _attribute_docs(cls)
    for name, (tp, _) in _fields(cls).items():
        key = _join(prefix, name)
        section = _dataclass_of(tp)
        if section is not None:
            out.update(field_docs(section, key))
        elif name in own:
            out[key] = own[name]
    return out


def help_text(config: Any, *, prefix: str = "--", docs: bool = True) -> str:
    """Aligned lines ``--key  type  default  description``, one per leaf of :func:`describe`
    (the description from the config classes' docstrings, when ``docs`` and one exists)."""
    cls = config if isinstance(config, type) else type(config)
    notes = field_docs(cls) if docs else {}
    rows = [(prefix + k, tp, default, notes.get(k, "")) for k, tp, default in describe(config)]
    if not rows:
        return ""
    width_key = max(len(r[0]) for r in rows)
    width_tp = max(len(r[1]) for r in rows)
    width_default = min(24, max(len(r[2]) for r in rows))
    return "\n".join(
        f"{k:<{width_key}}  {t:<{width_tp}}  {d:<{width_default}}  {n}".rstrip()
        for k, t, d, n in rows
    )


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
