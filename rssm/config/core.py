"""The typed config core: checking plain data against dataclass fields, merging, overrides,
saving and loading, flattening and diffing (see :mod:`rssm.config`)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import functools
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar, Union

import yaml

__all__ = [
    "PRESETS_DIR",
    "apply_overrides",
    "from_dict",
    "merge",
    "to_dict",
    "type_text",
]

C = TypeVar("C")
PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"
_UNIONS = (Union, types.UnionType)
_MISSING = dataclasses.MISSING


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-4`` and ``5E+3`` as floats (YAML 1.2)."""


class Replace(dict):
    """A mapping that replaces a ``dict`` field instead of updating it key by key: a preset's
    ``loss_scales: !replace {kl: 0.1}`` drops the keys its base set."""


_Loader.add_constructor(
    "!replace", lambda loader, node: Replace(loader.construct_mapping(node, deep=True))
)
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

    Mappings update nested dataclasses and ``dict`` fields key by key (a :class:`Replace`
    mapping, ``!replace`` in YAML, replaces a ``dict`` field whole); other values replace.
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
    if isinstance(new, Replace):
        return _check(tp, dict(new), key)
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


def _read_yaml(path: Path) -> Mapping[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


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
