"""Named world models of the papers, loaded from the YAML presets (``rssm/presets/``), which are
the one source of every configuration: ``world_model_config(name, size)`` is the ``world_model``
section of the preset stack ``[name, size]`` (e.g. ``dreamer_v3`` then ``xs``), the observation
keys defaulting to ``image`` (CNN) and ``state`` (MLP), usually overridden per environment suite.

Deviations shared by all presets (docs/paper_deviations.md): the conv stacks use "same" padding
down to 4x4, so a 64x64 image gives a ``cnn_depth * 8 * 16`` embedding (4096 at depth 32, where
PlaNet/V1 had 1024 from valid padding down to 2x2); PlaNet's latent overshooting
(``WorldModelConfig.overshooting``) is off; the 2025 DreamerV3 sizes reuse the 2023 conv stack
(channel doubling, kernel 4) with ``depth = classes`` and an 8-block LayerNorm GRU, not the 2025
encoder.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field

from rssm.models.configs import WorldModelConfig

__all__ = ["PRESET_SIZES", "V3_2025_SIZES", "V3_SIZES", "world_model_config"]

# Size presets of DreamerV3 (their numbers live in the YAML files of the same names).
V3_SIZES = ("xs", "s", "m", "l", "xl")  # the 2023 table
V3_2025_SIZES = ("size1m", "size12m", "size25m", "size50m", "size100m", "size200m", "size400m")
# The preset stack of each (algorithm, size); None: the algorithm has no sizes.
_STACKS: dict[str, dict[str | None, tuple[str, ...]]] = {
    "planet": {None: ("planet",)},
    "dreamer_v1": {None: ("dreamer_v1",)},
    "dreamer_v2": {"atari": ("dreamer_v2",), "dmc": ("dreamer_v2", "v2_dmc")},
    "dreamer_v3": {size: ("dreamer_v3", size) for size in (*V3_SIZES, *V3_2025_SIZES)},
}
PRESET_SIZES: dict[str, tuple[str | None, ...]] = {k: tuple(v) for k, v in _STACKS.items()}
_DEFAULT_SIZE = {"dreamer_v2": "atari", "dreamer_v3": "s"}


@dataclass
class _WorldModelSection:
    """The ``world_model`` section of a run config, alone (what the presets are loaded into)."""

    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)


@functools.cache
def _load(stack: tuple[str, ...]) -> WorldModelConfig:
    from rssm.config.presets import load_presets  # the config layer reads the files

    return load_presets(_WorldModelSection, list(stack), only="world_model").world_model


def world_model_config(name: str, size: str | None = None) -> WorldModelConfig:
    """A fresh world-model config of a paper preset.

    Args:
        name: ``planet``, ``dreamer_v1``, ``dreamer_v2`` or ``dreamer_v3``.
        size: ``dreamer_v2``: ``atari`` (default) or ``dmc`` (the ``v2_dmc`` preset);
            ``dreamer_v3``: ``xs s m l xl`` (2023, default ``s``) or ``size1m size12m size25m
            size50m size100m size200m size400m`` (2025; ``12m`` is accepted for ``size12m``);
            None for the others.

    Raises:
        ValueError: unknown name or size (the message lists the known ones).
    """
    if name not in _STACKS:
        raise ValueError(f"world_model_config: unknown preset {name!r}; known: {sorted(_STACKS)}")
    if size is None:
        size = _DEFAULT_SIZE.get(name)
    elif f"size{size}" in _STACKS[name]:
        size = f"size{size}"
    if size not in _STACKS[name]:
        known = [s for s in _STACKS[name] if s is not None] or ["None (no sizes)"]
        raise ValueError(f"world_model_config: {name!r} has no size {size!r}; known: {known}")
    return copy.deepcopy(_load(_STACKS[name][size]))
