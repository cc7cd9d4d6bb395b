"""Built-in environments, numpy only: ``pointmass``, ``pointmass-discrete`` and ``echo``."""

from __future__ import annotations

from typing import Literal

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit

from rssm.envs.suite import (
    SuiteOptions,
    check_choice,
    check_options,
    image_space,
    state_space,
    unknown_name,
)

# Discrete force directions: none, up, down, left, right (+ the four diagonals for 9 actions).
_DIRECTIONS = np.array(
    [[0, 0], [0, 1], [0, -1], [-1, 0], [1, 0], [1, 1], [-1, 1], [1, -1], [-1, -1]], np.float64
)
_DIRECTIONS[5:] /= np.sqrt(2.0)

_BACKGROUND = np.array([24, 24, 32], np.uint8)
_TARGET_COLOUR = np.array([60, 200, 90], np.uint8)
_MASS_COLOUR = np.array([235, 70, 50], np.uint8)


class PointMass(gymnasium.Env):
    """A point mass in the box [-1, 1]^2 pushed toward a target by a 2-D force.

    Dynamics per step (dt = 0.1): ``v += dt * (accel * force - friction * v)``, ``p += dt * v``;
    at a wall the position is clipped and that velocity component zeroed. With the defaults the
    top speed is 5 units/s; a uniformly random force moves the mass a disc radius or more within
    a few steps, so that even 16x16 images show the dynamics. Start position and target
    are uniform in [-0.8, 0.8]^2 from the env's seeded generator; the start velocity is zero.

    Reward: ``clip(1 - (d - target_radius) / 1.0, 0, 1)`` with ``d`` the distance from the mass to
    the target: 1 on the target, falling linearly to 0 one unit away. The env never terminates;
    the episode length is a time limit (``make_env``: 100 steps by default).

    Observations (dict): ``image`` uint8 ``[H, W, 3]`` (target a green disc, mass a red disc on a
    dark background, y up) and/or ``state`` float32 ``[6]`` = (px, py, vx, vy, tx, ty).

    Args:
        obs: "pixels" (``image``), "state" or "both".
        image_size: (height, width) of the image.
        num_actions: None for a continuous ``Box(-1, 1, (2,))`` force; 5 (none, up, down, left,
            right) or 9 (plus diagonals) for a Discrete force direction.
        accel: Acceleration per unit of force.
        friction: Linear velocity damping per second.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    dt = 0.1
    mass_radius = 0.25
    target_radius = 0.3

    def __init__(
        self,
        obs: Literal["pixels", "state", "both"] = "pixels",
        image_size: tuple[int, int] = (64, 64),
        num_actions: int | None = None,
        accel: float = 5.0,
        friction: float = 1.0,
        render_mode: str | None = None,
    ):
        check_choice("obs", obs, ("pixels", "state", "both"))
        if num_actions not in (None, 5, 9):
            raise ValueError(f"option num_actions={num_actions!r} must be 5 or 9")
        self.obs_mode = obs
        self.image_size = tuple(image_size)
        self.accel, self.friction = float(accel), float(friction)
        self.render_mode = render_mode
        obs_spaces = {}
        if obs in ("pixels", "both"):
            obs_spaces["image"] = image_space(*self.image_size)
        if obs in ("state", "both"):
            obs_spaces["state"] = state_space(6)
        self.observation_space = spaces.Dict(obs_spaces)
        if num_actions is None:
            self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        else:
            self.action_space = spaces.Discrete(num_actions)
        height, width = self.image_size
        # World coordinates of pixel centres; row 0 is the top (y = +1).
        self._xs = ((np.arange(width) + 0.5) / width * 2 - 1)[None, :]
        self._ys = (1 - (np.arange(height) + 0.5) / height * 2)[:, None]
        self._pos = np.zeros(2)
        self._vel = np.zeros(2)
        self._target = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(-0.8, 0.8, 2)
        self._target = self.np_random.uniform(-0.8, 0.8, 2)
        self._vel = np.zeros(2)
        return self._observation(), {}

    def step(self, action):
        if isinstance(self.action_space, spaces.Discrete):
            force = _DIRECTIONS[int(action)]
        else:
            force = np.clip(np.asarray(action, np.float64).reshape(2), -1.0, 1.0)
        self._vel = self._vel + self.dt * (self.accel * force - self.friction * self._vel)
        pos = self._pos + self.dt * self._vel
        bound = 1.0 - self.mass_radius
        hit = np.abs(pos) > bound
        self._pos = np.clip(pos, -bound, bound)
        self._vel = np.where(hit, 0.0, self._vel)
        distance = float(np.linalg.norm(self._pos - self._target))
        reward = float(np.clip(1.0 - (distance - self.target_radius), 0.0, 1.0))
        return self._observation(), reward, False, False, {"distance": distance}

    def render(self) -> np.ndarray:
        """The current frame, uint8 ``[H, W, 3]``."""
        height, width = self.image_size
        image = np.empty((height, width, 3), np.float32)
        image[:] = _BACKGROUND
        for centre, radius, colour in (
            (self._target, self.target_radius, _TARGET_COLOUR),
            (self._pos, self.mass_radius, _MASS_COLOUR),
        ):
            cover = self._disc(centre, radius)[..., None]
            image += cover * (colour.astype(np.float32) - image)
        return np.rint(image).astype(np.uint8)

    def _disc(self, centre: np.ndarray, radius: float) -> np.ndarray:
        """Anti-aliased coverage in [0, 1] of each pixel by a disc: sub-pixel motion shows."""
        distance = np.sqrt((self._xs - centre[0]) ** 2 + (self._ys - centre[1]) ** 2)
        pixel = 2.0 / min(self.image_size)
        return np.clip((radius - distance) / pixel + 0.5, 0.0, 1.0).astype(np.float32)

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {}
        if self.obs_mode != "state":
            obs["image"] = self.render()
        if self.obs_mode != "pixels":
            obs["state"] = np.concatenate([self._pos, self._vel, self._target]).astype(np.float32)
        return obs


class Echo(gymnasium.Env):
    """A deterministic vector env for time-alignment tests.

    Semantics, with ``a_t`` the action taken after seeing ``o_t`` (DESIGN.md §3):

    - ``reset()`` returns ``o_0 = {"state": [0, 0, ..., 0]}`` (length ``1 + action_dim``).
    - ``step(a_{t-1})`` returns ``o_t = {"state": [t, *a_{t-1}]}`` and the reward
      ``r_t = sum(a_{t-1})``: the reward received on arriving at ``o_t`` is the sum of the action
      that led there, and the observation echoes that action.
    - ``terminated`` is True exactly at ``t == length``; never truncated. Stepping past it raises.

    Actions are ``Box(-1, 1, (action_dim,))``; the env echoes them as given (through make_env
    they are clipped to [-1, 1] first). No randomness: ``seed`` changes nothing.
    """

    def __init__(self, length: int = 10, action_dim: int = 2):
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"option length={length!r} must be an int >= 1")
        if not isinstance(action_dim, int) or action_dim < 1:
            raise ValueError(f"option action_dim={action_dim!r} must be an int >= 1")
        self.length = length
        self.observation_space = spaces.Dict({"state": state_space(1 + action_dim)})
        self.action_space = spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        return {"state": np.zeros(self.observation_space["state"].shape, np.float32)}, {}

    def step(self, action):
        if self._t >= self.length:
            raise RuntimeError("Echo stepped after termination; call reset()")
        action = np.asarray(action, np.float32).reshape(self.action_space.shape)
        self._t += 1
        state = np.concatenate([[self._t], action]).astype(np.float32)
        return {"state": state}, float(action.sum()), self._t == self.length, False, {}


def _pointmass(
    common: SuiteOptions,
    *,
    obs: str = "pixels",
    accel: float = 5.0,
    friction: float = 1.0,
    num_actions: int | None = None,
) -> gymnasium.Env:
    env = PointMass(obs, common.image_size, num_actions, accel, friction)
    return TimeLimit(env, common.time_limit or 100)


def _pointmass_discrete(
    common: SuiteOptions,
    *,
    obs: str = "pixels",
    accel: float = 5.0,
    friction: float = 1.0,
    num_actions: int = 5,
) -> gymnasium.Env:
    if num_actions is None:
        raise ValueError("option num_actions of builtin:pointmass-discrete must be 5 or 9")
    return _pointmass(common, obs=obs, accel=accel, friction=friction, num_actions=num_actions)


def _echo(common: SuiteOptions, *, length: int = 10, action_dim: int = 2) -> gymnasium.Env:
    env = Echo(length, action_dim)
    return env if common.time_limit is None else TimeLimit(env, common.time_limit)


TASKS = {"pointmass": _pointmass, "pointmass-discrete": _pointmass_discrete, "echo": _echo}


def list_envs() -> list[str]:
    return list(TASKS)


def make(task: str, common: SuiteOptions, **options) -> gymnasium.Env:
    if task not in TASKS:
        raise unknown_name("builtin env", task, TASKS)
    check_options(TASKS[task], options, f"builtin:{task}")
    return TASKS[task](common, **options)
