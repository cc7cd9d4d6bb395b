"""Presets: YAML fragments applied in order on top of a config's defaults, with pattern keys
(:func:`expand_patterns`) and the per-layer record of what each preset set (:func:`layers`)."""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from rssm.config.core import (
    PRESETS_DIR,
    C,
    _is_dataclass_type,
    _join,
    _read_yaml,
    _split_tokens,
    merge,
)
from rssm.config.plain import _leaves

__all__ = ["PATTERNS", "available_presets", "expand_patterns", "layers", "load_presets"]


def available_presets(directory: str | os.PathLike[str] = PRESETS_DIR) -> list[str]:
    """Sorted names of the presets in ``directory`` (files ``<name>.yaml``)."""
    directory = Path(directory)
    return sorted(p.stem for p in directory.glob("*.yaml")) if directory.is_dir() else []


def load_presets(
    cls: type[C],
    names: Sequence[str],
    *,
    directory: str | os.PathLike[str] = PRESETS_DIR,
    base: C | None = None,
    only: str | None = None,
) -> C:
    """Applies presets ``<directory>/<name>.yaml`` in order on top of ``base`` (default ``cls()``).

    ``only``: apply just this top-level section of each preset (and the pattern keys that fall in
    it), for a ``cls`` that holds only that section (e.g. the world model of
    :func:`rssm.models.world_model_config`).

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
    for name in with_bases(names, directory):
        file = directory / f"{name}.yaml"
        try:
            data = dict(_read_yaml(file))
            data.pop(BASE, None)
            patterns = expand_patterns(cls, data.pop(PATTERNS, None) or {}, strict=only is None)
            if only is not None:
                patterns = {only: patterns[only]} if only in patterns else {}
                data = {only: data[only]} if only in data else {}
            config = merge(config, patterns)
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


BASE = "base"  # a preset's top-level name (or list) of presets it is a diff of


def with_bases(names: Sequence[str], directory: str | os.PathLike[str] = PRESETS_DIR) -> list[str]:
    """``names`` with each preset's ``base:`` presets (recursively) before it: the order in which
    they are applied. A preset states only what it changes from its base (``diff`` of two
    presets with one base shows exactly their differences).

    Raises:
        ValueError: an unknown preset (listing the available ones) or a cycle of bases.
    """
    directory = Path(directory)
    available = available_presets(directory)
    out: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            where = f" (the base of {chain[-1]!r})" if chain else ""
            raise ValueError(
                f"unknown preset {name!r}{where}{hint} (available in {directory}: "
                f"{', '.join(available) or 'none'})"
            )
        if name in chain:
            raise ValueError(f"presets are each other's base: {' -> '.join([*chain, name])}")
        try:
            bases = _read_yaml(directory / f"{name}.yaml").get(BASE) or []
        except (yaml.YAMLError, ValueError):
            bases = []  # load_presets names the file and the problem
        for base in [bases] if isinstance(bases, str) else bases:
            visit(str(base), (*chain, name))
        out.append(name)

    for name in names:
        visit(name, ())
    return out


PATTERNS = "patterns"  # a preset's top-level mapping of regex -> value (see expand_patterns)


def expand_patterns(
    cls: type, patterns: Mapping[str, Any], *, strict: bool = True
) -> dict[str, Any]:
    """A nested mapping that sets every leaf key of ``cls`` (dotted, e.g.
    ``world_model.rssm.units``) that one of the ``patterns`` matches in full (``re.fullmatch``)
    to its value; a later pattern wins where several match. A preset states them under
    ``patterns:`` (applied before its explicit keys, which win over them), e.g. a size preset:
    ``'.*\\.(units|mlp_units)': 640``.

    Raises:
        ValueError: a pattern that is not a valid regex, or (``strict``) matches no key.
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
        if not matched and strict:
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
    for name in with_bases(names, directory):
        file = Path(directory) / f"{name}.yaml"
        data = dict(_read_yaml(file))
        data.pop(BASE, None)
        data.pop(PATTERNS, None)  # regexes of model sizes: never the keys a check names
        out.append((f"preset {name!r}", dict(_dotted(data))))
    for key, value in _split_tokens(overrides):
        text = value.strip().lower() if isinstance(value, str) else value
        out.append((f"--{key}", {key: None if text in ("null", "none", "~") else value}))
    return out
