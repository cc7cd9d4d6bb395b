"""The ``gym:`` suite: any registered gymnasium id, e.g. ``gym:CartPole-v1``, ``gym:CarRacing-v3``.

Ids may carry gymnasium's module prefix (``gym:my_package:MyEnv-v0`` imports ``my_package`` to
register it). ``ALE/...`` ids import ale_py to register the Atari envs; prefer the ``atari:`` suite.
"""

from __future__ import annotations

import os

import gymnasium
import numpy as np
from gymnasium import spaces

from rssm.envs.suite import (
    SuiteOptions,
    check_choice,
    image_space,
    install_error,
    state_space,
    unknown_name,
)
from rssm.envs.wrappers import resize

# Words in gymnasium's DependencyNotInstalled messages -> our extra that installs the package.
_EXTRAS = {"pygame": "classic", "box2d": "box2d", "mujoco": "dmc", "ale_py": "atari"}


def list_envs() -> list[str]:
    return list(gymnasium.registry)


def make(task: str, common: SuiteOptions, *, obs: str = "vector", **kwargs) -> gymnasium.Env:
    """Options: ``obs`` ("vector", "pixels", "both"); the rest go to ``gymnasium.make``."""
    check_choice("obs", obs, ("vector", "pixels", "both"))
    if task.startswith("ALE/"):
        try:
            import ale_py
        except ImportError:
            raise install_error("ale-py", "atari") from None
        gymnasium.register_envs(ale_py)
    if ":" not in task and task not in gymnasium.registry:
        error = unknown_name("gymnasium id", task, gymnasium.registry)
        raise ValueError(
            f"{error} An env registered by your own code is made from a fresh process (rssm eval, "
            f"--resume) as gym:<module>:{task}, which imports <module> (and so registers it) "
            "first."
        ) from None
    if obs != "vector":  # unused (and harmless) when the env's own observation is an image
        kwargs.setdefault("render_mode", "rgb_array")
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering of gymnasium's MuJoCo envs
    if kwargs.get("render_mode") == "rgb_array":
        # Off-screen frames need no display: SDL's dummy video driver keeps pygame (classic
        # control, Box2D) from looking for one and printing "XDG_RUNTIME_DIR is invalid".
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if common.time_limit is not None:
        kwargs["max_episode_steps"] = common.time_limit
    try:
        env = gymnasium.make(task, **kwargs)
    except gymnasium.error.DependencyNotInstalled as e:
        raise _dependency_error(e) from None
    except TypeError as e:
        raise ValueError(
            f"gymnasium.make({task!r}) rejected the options {sorted(kwargs)}: {e} "
            "(options that rssm does not use are passed to gymnasium.make)"
        ) from None
    return GymDict(env, obs, common.image_size)


def _is_image(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and (len(space.shape) == 2 or (len(space.shape) == 3 and space.shape[-1] in (1, 3)))
    )


def _dependency_error(error: Exception) -> ImportError:
    message = str(error)
    for word, extra in _EXTRAS.items():
        if word in message.lower():
            return ImportError(f'{message}; install it with: pip install "rssm[{extra}]"')
    return ImportError(message)


class GymDict(gymnasium.Wrapper):
    """A gymnasium env with dict observations of modality keys.

    - ``obs="vector"``: the env's own observation, as ``image`` if it is an image (uint8 HxW or
      HxWxC), else flattened to a float32 ``state`` (Tuple/Discrete spaces via
      ``gymnasium.spaces.flatten``). A ``Dict`` observation is split by entry: every image-like
      entry keeps its own key (resized to ``image_size``; the CNN path), every other entry is
      flattened into ``state`` in key order (the MLP path); an entry that is neither (e.g. a
      ``Text`` space) is a ValueError naming it.
    - ``obs="pixels"``: ``image`` from ``env.render()`` (render_mode "rgb_array"), resized to
      ``image_size``; an env whose own observation is an image uses that instead.
    - ``obs="both"``: ``state`` (or the Dict's entries) and the rendered ``image``.

    Supports ``skip_render`` (see :mod:`rssm.envs.wrappers`): gymnasium.make's TimeLimit is
    below this wrapper, so episode ends are always rendered.
    """

    def __init__(self, env: gymnasium.Env, obs: str, image_size: tuple[int, int]):
        super().__init__(env)
        self.skip_render = False
        space = env.observation_space
        native_image = _is_image(space)
        self._native = "image" if native_image else ("state" if obs != "pixels" else None)
        self._images: list[str] = []  # Dict entries passed on as images
        self._vectors: list[str] = []  # Dict entries flattened into state
        self._image_size = image_size
        self._image: np.ndarray | None = None
        obs_spaces = {}
        if native_image:
            shape = space.shape if len(space.shape) == 3 else (*space.shape, 1)
            obs_spaces["image"] = image_space(*shape)
        elif self._native == "state" and isinstance(space, spaces.Dict):
            self._native = "dict"
            obs_spaces = self._split(space, image_size)
        elif self._native == "state":
            obs_spaces["state"] = state_space(int(spaces.flatdim(space)))
        self._render = obs != "vector" and not native_image
        if self._render:
            if env.render_mode != "rgb_array":
                raise ValueError(
                    f"option obs={obs!r} needs render_mode='rgb_array', got {env.render_mode!r}"
                )
            if "image" in obs_spaces:
                raise ValueError(
                    f"option obs={obs!r} renders an 'image', but the env's Dict observation "
                    "already has an 'image' entry; use obs='vector'"
                )
            obs_spaces["image"] = image_space(*image_size)
        self.observation_space = spaces.Dict(obs_spaces)

    def _split(self, space: spaces.Dict, image_size: tuple[int, int]) -> dict[str, spaces.Box]:
        """The observation spaces of a Dict observation's entries (see the class docstring)."""
        out: dict[str, spaces.Box] = {}
        flat = 0
        for key, sub in space.spaces.items():
            if _is_image(sub):
                channels = sub.shape[-1] if len(sub.shape) == 3 else 1
                out[key] = image_space(*image_size, channels)
                self._images.append(key)
            elif isinstance(sub, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete,
                                  spaces.MultiBinary)):  # fmt: skip
                flat += int(spaces.flatdim(sub))
                self._vectors.append(key)
            else:
                raise ValueError(
                    f"observation entry {key!r} has space {sub}, which is neither an image "
                    "(uint8 HxW or HxWxC) nor a vector (Box, Discrete, MultiDiscrete, "
                    "MultiBinary); drop or convert it in a wrapper before rssm sees the env"
                )
        if self._vectors:
            if "state" in self._images:
                raise ValueError(
                    "observation entry 'state' is an image, but the Dict's vector entries "
                    f"{self._vectors} are concatenated into 'state'; rename the image entry"
                )
            out["state"] = state_space(flat)
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._convert(obs, fresh=True), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        fresh = not self.skip_render or terminated or truncated
        return self._convert(obs, fresh), reward, terminated, truncated, info

    def _convert(self, obs, fresh: bool) -> dict[str, np.ndarray]:
        out = {}
        if self._native == "image":
            out["image"] = obs if obs.ndim == 3 else obs[..., None]
        elif self._native == "state":
            flat = spaces.flatten(self.env.observation_space, obs)
            out["state"] = np.asarray(flat, np.float32).reshape(-1)
        elif self._native == "dict":
            space = self.env.observation_space
            for key in self._images:
                image = np.asarray(obs[key], np.uint8)
                image = image if image.ndim == 3 else image[..., None]
                out[key] = resize(image, self._image_size)
            if self._vectors:
                parts = [
                    np.asarray(spaces.flatten(space[key], obs[key]), np.float32).reshape(-1)
                    for key in self._vectors
                ]
                out["state"] = np.concatenate(parts)
        if self._render:
            if fresh or self._image is None:
                try:
                    frame = self.env.render()
                except gymnasium.error.DependencyNotInstalled as e:
                    raise _dependency_error(e) from None
                self._image = resize(np.asarray(frame, np.uint8), self._image_size)
            out["image"] = self._image
        return out
