"""The ``dmc:`` suite: DeepMind Control tasks as ``dmc:<domain>-<task>``, e.g. ``dmc:walker-walk``.

Needs the extra ``dmc`` (``pip install "rssm[dmc]"``: dm-control 1.0.50 with mujoco>=3.17,<4;
mujoco 4 breaks dm-control 1.0.50) and a headless OpenGL: ``MUJOCO_GL`` defaults to ``egl`` here,
set it to ``osmesa`` before the first import as a fallback. See shared ENVIRONMENTS.md for speeds.
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

_CAMERAS = {"quadruped": 2}  # default camera per domain; 0 elsewhere
_DOMAIN_ALIASES = {"cup": "ball_in_cup"}  # dmc:cup-catch, as in the PlaNet and Dreamer papers


def _suite():
    # MUJOCO_GL must be set before dm_control or mujoco is first imported.
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        from dm_control import suite
    except ImportError:
        raise install_error("dm_control", "dmc") from None
    return suite


def list_envs() -> list[str]:
    return [f"{domain}-{task}" for domain, task in _suite().ALL_TASKS]


def make(
    task: str,
    common: SuiteOptions,
    *,
    obs: str = "pixels",
    camera: int | None = None,
    fast_render: bool = False,
) -> gymnasium.Env:
    """Options:

    - ``obs``: "pixels" (``image``), "proprio" (``state``: the task's observation dict flattened in
      its order to float32) or "both".
    - ``camera``: camera id; default 2 for quadruped, else 0.
    - ``fast_render``: an offscreen buffer of the image size and no shadows: about 3-4x faster
      rendering, slightly different pictures (no shadows). Keep it fixed within a run.
    """
    check_choice("obs", obs, ("pixels", "proprio", "both"))
    if not isinstance(fast_render, bool):
        raise ValueError(f"option fast_render={fast_render!r} must be a bool")
    suite = _suite()
    domain, _, name = task.partition("-")
    domain = _DOMAIN_ALIASES.get(domain, domain)
    if (domain, name) not in suite.ALL_TASKS:
        raise unknown_name("dm_control task", task, list_envs())
    task_kwargs = {"random": common.seed}
    if common.time_limit is not None:
        task_kwargs["time_limit"] = float("inf")  # DMCEnv counts the steps instead
    try:
        env = suite.load(domain, name, task_kwargs=task_kwargs)
    except AttributeError as e:  # e.g. 'MjModel' object has no attribute 'flex_vertedge'
        raise ImportError(
            f"dm_control failed to load {task}: {e}. dm-control 1.0.50 needs mujoco>=3.17,<4: "
            'pip install "rssm[dmc]"'
        ) from None
    camera = _CAMERAS.get(domain, 0) if camera is None else camera
    if fast_render:
        height, width = common.image_size
        visual = env.physics.model.vis  # read when the render context is made, at first render
        visual.global_.offheight, visual.global_.offwidth = height, width
        visual.quality.shadowsize = 0
    return DMCEnv(env, obs, camera, common.image_size, common.time_limit)


class DMCEnv(gymnasium.Env):
    """A dm_control environment with gymnasium's API and dict observations.

    ``terminated`` is True when dm_control ends an episode with discount 0; its time-limit ends
    (discount 1) and ``time_limit`` (raw steps, if given) are truncations. Supports
    ``skip_render`` (see :mod:`rssm.envs.wrappers`); an episode's last step is always rendered.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        env,
        obs: str,
        camera: int,
        image_size: tuple[int, int],
        time_limit: int | None,
    ):
        self._env = env
        self._camera = camera
        self._image_size = image_size
        self._time_limit = time_limit
        self._pixels = obs in ("pixels", "both")
        self._proprio = obs in ("proprio", "both")
        self.render_mode = "rgb_array"
        self.skip_render = False
        self._steps = 0
        self._image: np.ndarray | None = None
        obs_spaces = {}
        if self._pixels:
            obs_spaces["image"] = image_space(*image_size)
        if self._proprio:
            size = sum(int(np.prod(s.shape)) for s in env.observation_spec().values())
            obs_spaces["state"] = state_space(size)
        self.observation_space = spaces.Dict(obs_spaces)
        spec = env.action_spec()
        self.action_space = spaces.Box(
            np.broadcast_to(spec.minimum, spec.shape).astype(np.float32),
            np.broadcast_to(spec.maximum, spec.shape).astype(np.float32),
            dtype=np.float32,
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
        self._steps = 0
        return self._observe(self._env.reset(), render=True), {}

    def step(self, action):
        time_step = self._env.step(np.asarray(action, np.float64))
        self._steps += 1
        terminated = bool(time_step.last() and time_step.discount == 0)
        truncated = not terminated and (
            time_step.last() or (self._time_limit is not None and self._steps >= self._time_limit)
        )
        render = not self.skip_render or terminated or truncated
        obs = self._observe(time_step, render)
        return obs, float(time_step.reward or 0.0), terminated, truncated, {}

    def render(self) -> np.ndarray:
        """The current frame from the env's camera, uint8 ``[H, W, 3]``."""
        height, width = self._image_size
        return self._env.physics.render(height, width, camera_id=self._camera)

    def close(self) -> None:
        self._env.close()

    def _observe(self, time_step, render: bool) -> dict[str, np.ndarray]:
        obs = {}
        if self._pixels:
            if render or self._image is None:
                self._image = self.render()
            obs["image"] = self._image
        if self._proprio:
            values = time_step.observation.values()
            obs["state"] = np.concatenate([np.asarray(v, np.float32).reshape(-1) for v in values])
        return obs
