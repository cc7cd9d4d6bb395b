"""Descriptions of config keys for ``--help``: types, values and one line per key, read from the
config classes' docstrings (and, for configs that hold another class's arguments, from that
class's source with :mod:`ast`, so that nothing is imported)."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
from pathlib import Path
from typing import Any

from rssm.config.core import (
    _MISSING,
    _dataclass_of,
    _fields,
    _is_dataclass_type,
    _join,
    _value_text,
    type_text,
)
from rssm.config.plain import _leaves

__all__ = ["describe", "field_docs", "help_text"]


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
