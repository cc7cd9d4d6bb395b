"""Wrappers that turn a suite's raw env into the observation dict of DESIGN.md §3.

``make_env`` stacks them in this order, innermost first (gymnasium's own wrappers where they do
the job):

1. the suite's env, which enforces its time limit (``gymnasium.wrappers.TimeLimit`` or its own);
2. :class:`NoopStart` — a random number of no-op actions after each reset;
3. :class:`ActionRepeat` — repeats each action, sums rewards, stops at the episode end;
4. :class:`ResizeImage`, :class:`GrayscaleImage` — on the ``image`` key only (after the repeat,
   so only the frames the agent sees are processed);
5. :class:`OneHotAction` (Discrete) or :func:`normalize_action` (Box, to [-1, 1]);
6. :class:`ObsDict` — adds ``reward``, ``is_first``, ``is_last``, ``is_terminal``;
7. :class:`SeedFirstReset` — applies ``make_env(seed=...)`` to the first reset.

Render skipping: an env in the stack may define an attribute ``skip_render``. While it is True the
env may leave the ``image`` of a step stale (not render it), but it must still render a step that
ends the episode (terminated or truncated, its time limit included). :class:`ActionRepeat` and
:class:`NoopStart` set it for the steps whose observation nobody sees, so action repeat 8 costs one
render, not eight.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import ClipAction, RescaleAction, TransformObservation

FLAG_KEYS = ("reward", "is_first", "is_last", "is_terminal")


def _set_skip_render(env: gymnasium.Env, value: bool) -> None:
    env.set_wrapper_attr("skip_render", value, force=False)


class ActionRepeat(gymnasium.Wrapper):
    """Repeats each action ``repeat`` times; rewards are summed; stops early at the episode end.

    The observation, flags and info are those of the last inner step.
    """

    def __init__(self, env: gymnasium.Env, repeat: int):
        if not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"action_repeat must be an int >= 1, got {repeat!r}")
        super().__init__(env)
        self.repeat = repeat
        self._lazy = env.has_wrapper_attr("skip_render")

    def step(self, action):
        total = 0.0
        for i in range(self.repeat):
            if self._lazy:
                _set_skip_render(self.env, i < self.repeat - 1)
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        if self._lazy:
            _set_skip_render(self.env, False)
        return obs, total, terminated, truncated, info


class NoopStart(gymnasium.Wrapper):
    """After each reset, takes a uniform random number in [0, noop_max] of no-op actions.

    Their rewards are dropped. The no-op is ``noop_action`` if given, else action 0 for Discrete
    spaces (NOOP in ALE) and the zero vector clipped into the bounds for Box spaces. The count is
    drawn from a generator seeded by ``reset(seed=...)``. If the episode ends during the no-ops,
    the env is reset again (without a seed) and the remaining no-ops continue.
    """

    def __init__(self, env: gymnasium.Env, noop_max: int, noop_action: Any = None):
        if not isinstance(noop_max, int) or noop_max < 0:
            raise ValueError(f"noop_max must be an int >= 0, got {noop_max!r}")
        super().__init__(env)
        self.noop_max = noop_max
        self.noop_action = _default_noop(env.action_space) if noop_action is None else noop_action
        self._rng = np.random.default_rng()
        self._lazy = env.has_wrapper_attr("skip_render")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        count = int(self._rng.integers(0, self.noop_max + 1))
        for i in range(count):
            if self._lazy:
                _set_skip_render(self.env, i < count - 1)
            obs, _, terminated, truncated, info = self.env.step(self.noop_action)
            if terminated or truncated:
                if self._lazy:
                    _set_skip_render(self.env, False)
                obs, info = self.env.reset()
        if self._lazy:
            _set_skip_render(self.env, False)
        return obs, info


def _default_noop(space: spaces.Space) -> Any:
    if isinstance(space, spaces.Discrete):
        return space.start
    if isinstance(space, spaces.Box):
        return np.clip(np.zeros(space.shape, space.dtype), space.low, space.high)
    raise ValueError(f"no default no-op for action space {space}; pass noop_action")


@functools.lru_cache(maxsize=64)
def _area_weights(size_in: int, size_out: int) -> np.ndarray:
    """[size_out, size_in] weights; output pixel o averages input span [o, o + 1) * in / out."""
    edges = np.arange(size_out + 1) * (size_in / size_out)
    pixels = np.arange(size_in)[None, :]
    overlap = np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)
    overlap = np.clip(overlap, 0.0, None)
    return (overlap / overlap.sum(1, keepdims=True)).astype(np.float32)


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes a uint8 ``[H, W, C]`` image to ``size = (height, width)`` by area averaging.

    Area averaging is exact for downscaling (no aliasing of thin lines); upscaling comes out close
    to nearest-neighbour. Two small matrix products, numpy only.
    """
    height, width = size
    h, w, c = image.shape
    if (h, w) == (height, width):
        return image
    rows = _area_weights(h, height) @ image.reshape(h, w * c).astype(np.float32)
    out = rows.reshape(height, w, c).transpose(0, 2, 1) @ _area_weights(w, width).T
    return np.clip(out.transpose(0, 2, 1) + 0.5, 0, 255).astype(np.uint8)


def grayscale(image: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> ``[H, W, 1]`` with ITU-R 601 luma weights."""
    luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(luma + 0.5, 0, 255).astype(np.uint8)[..., None]


def _with_image(space: spaces.Dict, key: str, shape: tuple[int, ...]) -> spaces.Dict:
    if key not in space.spaces:
        raise ValueError(f"observation has no {key!r} key (keys: {list(space.spaces)})")
    return spaces.Dict({**space.spaces, key: spaces.Box(0, 255, shape, np.uint8)})


class ResizeImage(TransformObservation):
    """Resizes the ``key`` image of a dict observation to ``size = (height, width)``."""

    def __init__(self, env: gymnasium.Env, size: tuple[int, int], key: str = "image"):
        height, width = size
        if height <= 0 or width <= 0:
            raise ValueError(f"image_size must be positive, got {size!r}")
        channels = env.observation_space[key].shape[-1]
        space = _with_image(env.observation_space, key, (height, width, channels))
        super().__init__(env, lambda obs: {**obs, key: resize(obs[key], size)}, space)


class GrayscaleImage(TransformObservation):
    """Converts the RGB ``key`` image of a dict observation to one channel (``[H, W, 1]``)."""

    def __init__(self, env: gymnasium.Env, key: str = "image"):
        shape = env.observation_space[key].shape
        if shape[-1] != 3:
            raise ValueError(f"grayscale needs an RGB {key!r}, got shape {shape}")
        space = _with_image(env.observation_space, key, (*shape[:2], 1))
        super().__init__(env, lambda obs: {**obs, key: grayscale(obs[key])}, space)


class OneHot(spaces.Box):
    """A one-hot action space of ``n`` float32 entries; ``sample()`` returns one-hot vectors."""

    def __init__(self, n: int, seed: int | None = None):
        super().__init__(0.0, 1.0, (n,), np.float32, seed=seed)
        self.n = n

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        out = np.zeros(self.n, np.float32)
        out[self.np_random.integers(self.n)] = 1.0
        return out

    def __repr__(self) -> str:
        return f"OneHot({self.n})"


class OneHotAction(gymnasium.ActionWrapper):
    """Exposes a Discrete(n) action space as :class:`OneHot` ``(n,)``.

    The agent passes a one-hot vector, or any float vector whose argmax is the action (an int is
    accepted too).
    """

    def __init__(self, env: gymnasium.Env):
        if not isinstance(env.action_space, spaces.Discrete):
            raise TypeError(f"OneHotAction needs a Discrete action space, got {env.action_space}")
        super().__init__(env)
        self._start = int(env.action_space.start)
        self.action_space = OneHot(int(env.action_space.n))

    def action(self, action: Any) -> int:
        action = np.asarray(action)
        if action.ndim == 0 and np.issubdtype(action.dtype, np.integer):
            index = int(action)
        elif action.shape == self.action_space.shape:
            index = int(np.argmax(action))
        else:
            raise ValueError(
                f"expected a one-hot action of shape {self.action_space.shape}, got {action.shape}"
            )
        return self._start + index


def normalize_action(env: gymnasium.Env) -> gymnasium.Env:
    """Box actions in [-1, 1]: gymnasium's RescaleAction, then ClipAction for out-of-range inputs.

    Spaces already in [-1, 1] are only clipped. Infinite bounds are an error: the agents act in
    [-1, 1], so an unbounded env would only ever see that slice of its range.
    """
    space = env.action_space
    if not isinstance(space, spaces.Box):
        raise TypeError(f"normalize_action needs a Box action space, got {space}")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError(
            f"the action space {space} has infinite bounds; the agents act in [-1, 1] and would "
            "only ever reach that slice of it: give the env finite low/high that cover the "
            "actions it needs (its action_space), then rssm rescales them to [-1, 1]"
        )
    if not (np.all(space.low == -1) and np.all(space.high == 1)):
        one = np.ones(space.shape, space.dtype)
        env = RescaleAction(env, -one, one)
    clipped = ClipAction(env)
    clipped.action_space = env.action_space  # ClipAction advertises (-inf, inf); keep [-1, 1]
    return clipped


class ObsDict(gymnasium.Wrapper):
    """Adds ``reward``, ``is_first``, ``is_last`` and ``is_terminal`` to every observation dict.

    ``reward`` is float32 and 0 on reset; ``is_first`` is True only on reset; ``is_last`` is
    ``terminated or truncated``; ``is_terminal`` is ``terminated`` (False at a time-limit end).
    The flags and reward are 0-d numpy arrays. The gymnasium 5-tuple is returned as usual. A Box
    action of another shape than the action space's is a ValueError.
    """

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        inner = env.observation_space
        if not isinstance(inner, spaces.Dict):
            raise TypeError(f"ObsDict needs a Dict observation space, got {inner}")
        clash = [k for k in FLAG_KEYS if k in inner.spaces]
        if clash:
            raise ValueError(f"observation keys {clash} are reserved for the step flags")
        flag = spaces.Box(0, 1, (), bool)
        self.observation_space = spaces.Dict(
            {
                **inner.spaces,
                "reward": spaces.Box(-np.inf, np.inf, (), np.float32),
                "is_first": flag,
                "is_last": flag,
                "is_terminal": flag,
            }
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._obs(obs, 0.0, True, False, False), info

    def step(self, action):
        space = self.action_space
        if type(space) is spaces.Box and np.shape(action) != space.shape:
            # Checked here: the wrappers below would broadcast it or fail deep inside numpy.
            raise ValueError(
                f"action of shape {np.shape(action)} does not fit the action space {space}: "
                f"step one env with {space.shape[0] if space.shape else 1} numbers (a policy "
                "returns [N, A], one row per env)"
            )
        obs, reward, terminated, truncated, info = self.env.step(action)
        last = bool(terminated or truncated)
        return self._obs(obs, reward, False, last, terminated), reward, terminated, truncated, info

    @staticmethod
    def _obs(obs: dict, reward: float, first: bool, last: bool, terminal: bool) -> dict:
        return {
            **obs,
            "reward": np.array(reward, np.float32),
            "is_first": np.array(first),
            "is_last": np.array(last),
            "is_terminal": np.array(bool(terminal)),
        }


class SeedFirstReset(gymnasium.Wrapper):
    """Passes ``seed`` to the first ``reset()`` called without one, and seeds the action space."""

    def __init__(self, env: gymnasium.Env, seed: int | None):
        super().__init__(env)
        self._seed = seed
        if seed is not None:
            self.action_space.seed(seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        seed = self._seed if seed is None else seed
        self._seed = None
        return self.env.reset(seed=seed, options=options)
