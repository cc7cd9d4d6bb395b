"""Lazy package exports (PEP 562): a package names what it exports and from which module, and a
name's module is imported on first use. So importing a config module, or ``rssm`` itself for the
command line's ``--help``, never imports torch until something needs it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def attach(
    namespace: dict[str, Any], exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` of a package whose ``exports`` maps each name to the module
    that defines it; a resolved name is cached in the package's ``namespace``."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
