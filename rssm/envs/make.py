"""``make_env("suite:id", ...)``: the suite registry, the common options and the wrapper stack."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import NamedTuple

import gymnasium
import numpy as np
from gymnasium import spaces

from rssm.envs import wrappers
from rssm.envs.suite import SuiteOptions, check_options

# Suite name -> module, imported only when the suite is used: importing rssm.envs never imports
# dm_control, mujoco, ale_py or pygame. Add a suite here (see docs/adding_an_env.md).
_LOADERS: dict[str, str] = {
    "builtin": "rssm.envs.builtin",
    "gym": "rssm.envs.gym",
    "dmc": "rssm.envs.dmc",
    "atari": "rssm.envs.atari",
}
SUITES: tuple[str, ...] = tuple(_LOADERS)


class EnvSpec(NamedTuple):
    """What an agent needs to know about an env made by :func:`make_env`.

    Attributes:
        obs_space: Modality keys only (no reward/is_first/is_last/is_terminal).
        action_dim: Size of the action vector the agent emits.
        discrete: True if the agent emits one-hot vectors of length ``action_dim``.
    """

    obs_space: spaces.Dict
    action_dim: int
    discrete: bool


def make_env(
    name: str,
    *,
    seed: int | None = None,
    action_repeat: int = 1,
    image_size: int | tuple[int, int] = 64,
    grayscale: bool = False,
    time_limit: int | None = None,
    noop_max: int = 0,
    **options,
) -> gymnasium.Env:
    """Makes an environment whose every step yields the observation dict of DESIGN.md §3.

    Args:
        name: "suite:id", e.g. "builtin:pointmass", "dmc:walker-walk", "gym:CartPole-v1",
            "atari:pong". Suites: see ``SUITES``.
        seed: Seed of the first ``reset()`` (and of ``action_space.sample()``); later resets
            continue from it, so a seeded env replays the same episodes.
        action_repeat: Each action is applied this many times; rewards are summed.
        image_size: Height and width of ``image`` (an int, or a (height, width) pair).
        grayscale: Give ``image`` a single channel.
        time_limit: Episode length in raw env steps (before action repeat); None keeps the
            suite's default; no-op starts count toward it. Ending at it sets ``is_last`` but
            not ``is_terminal``.
        noop_max: After each reset, take a random number in [0, noop_max] of no-op actions.
        **options: Suite options (e.g. ``obs="proprio"`` for dmc, ``continuous=False`` passed to
            gymnasium.make for gym); an unknown one is a ValueError naming it.

    Returns:
        A gymnasium env: ``reset() -> (obs, info)``, ``step(action) -> (obs, reward, terminated,
        truncated, info)``. ``obs`` holds modality keys (``image`` uint8 HWC, ``state`` float32
        1-D) plus ``reward`` (float32), ``is_first``, ``is_last``, ``is_terminal`` (bool).
        Box actions are in [-1, 1]; Discrete actions are one-hot vectors.
    """
    suite_name, _, task = name.partition(":")
    if not task or suite_name not in _LOADERS:
        raise ValueError(
            f"env name {name!r} must be 'suite:id' with suite one of {', '.join(SUITES)}"
        )
    common = SuiteOptions(
        seed=_check_int("seed", seed, None) if seed is not None else None,
        image_size=_image_size(image_size),
        grayscale=_check_bool("grayscale", grayscale),
        time_limit=_check_int("time_limit", time_limit, 1) if time_limit is not None else None,
    )
    action_repeat = _check_int("action_repeat", action_repeat, 1)
    noop_max = _check_int("noop_max", noop_max, 0)
    suite = _load(suite_name)
    check_options(suite.make, options, f"suite {suite_name!r}")
    env = suite.make(task, common, **options)
    return _wrap(env, common, action_repeat, noop_max)


def _wrap(
    env: gymnasium.Env, common: SuiteOptions, action_repeat: int, noop_max: int
) -> gymnasium.Env:
    if noop_max > 0:
        env = wrappers.NoopStart(env, noop_max)
    if action_repeat > 1:
        env = wrappers.ActionRepeat(env, action_repeat)
    if "image" in env.observation_space.spaces:
        if env.observation_space["image"].shape[:2] != common.image_size:
            env = wrappers.ResizeImage(env, common.image_size)
        if common.grayscale and env.observation_space["image"].shape[-1] == 3:
            env = wrappers.GrayscaleImage(env)
    elif common.grayscale:
        raise ValueError("option grayscale=True needs an 'image' observation; this env has none")
    if isinstance(env.action_space, spaces.Discrete):
        env = wrappers.OneHotAction(env)
    elif isinstance(env.action_space, spaces.Box) and len(env.action_space.shape) == 1:
        env = wrappers.normalize_action(env)
    else:
        raise ValueError(
            f"unsupported action space {env.action_space}: rssm handles Discrete and 1-D Box"
        )
    env = wrappers.ObsDict(env)
    return wrappers.SeedFirstReset(env, common.seed)


def env_spec(env: gymnasium.Env) -> EnvSpec:
    """The :class:`EnvSpec` of an env made by :func:`make_env`."""
    obs_space = env.observation_space
    action_space = env.action_space
    if not isinstance(obs_space, spaces.Dict) or not all(
        k in obs_space.spaces for k in wrappers.FLAG_KEYS
    ):
        raise TypeError(f"env_spec needs an env from make_env, got observation space {obs_space}")
    if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
        raise TypeError(f"env_spec needs a 1-D Box action space, got {action_space}")
    modalities = {k: v for k, v in obs_space.spaces.items() if k not in wrappers.FLAG_KEYS}
    return EnvSpec(
        obs_space=spaces.Dict(modalities),
        action_dim=int(action_space.shape[0]),
        discrete=isinstance(action_space, wrappers.OneHot),
    )


def list_envs(suite: str) -> list[str]:
    """Env ids a suite knows (the suite must be installed), e.g. ``list_envs("builtin")``."""
    if suite not in _LOADERS:
        raise ValueError(f"unknown suite {suite!r}; known suites: {', '.join(SUITES)}")
    return list(_load(suite).list_envs())


def _load(suite: str) -> ModuleType:
    return importlib.import_module(_LOADERS[suite])


def _image_size(value: int | tuple[int, int]) -> tuple[int, int]:
    size = (value, value) if isinstance(value, (int, np.integer)) else value
    valid = isinstance(size, (tuple, list)) and len(size) == 2
    if not valid or not all(_is_int(s) and s > 0 for s in size):
        raise ValueError(
            f"option image_size={value!r} must be a positive int or (height, width) of them"
        )
    return int(size[0]), int(size[1])


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(option: str, value: object, minimum: int | None) -> int:
    if not _is_int(value):
        raise ValueError(f"option {option}={value!r} must be an int")
    if minimum is not None and value < minimum:
        raise ValueError(f"option {option}={value!r} must be >= {minimum}")
    return int(value)


def _check_bool(option: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"option {option}={value!r} must be a bool")
    return bool(value)
