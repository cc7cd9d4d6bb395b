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

from rssm.config.core import PRESETS_DIR, apply_overrides, from_dict, merge, type_text
from rssm.config.help import describe, field_docs, help_text
from rssm.config.plain import diff, flatten, load, save, to_dict
from rssm.config.presets import PATTERNS, available_presets, expand_patterns, layers, load_presets

__all__ = [
    "PATTERNS",
    "PRESETS_DIR",
    "apply_overrides",
    "available_presets",
    "describe",
    "diff",
    "expand_patterns",
    "field_docs",
    "flatten",
    "from_dict",
    "help_text",
    "layers",
    "load",
    "load_presets",
    "merge",
    "save",
    "to_dict",
    "type_text",
]
