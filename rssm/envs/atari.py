"""The ``atari:`` suite through ale-py: ``atari:pong`` is ``ALE/Pong-v5`` with frameskip 1.

Needs the extra ``atari`` (``pip install "rssm[atari]"``; ale-py ships the ROMs). Frame skipping
is make_env's ``action_repeat`` (4 in the usual setting), no-op starts its ``noop_max``, image size
and grayscale its ``image_size`` and ``grayscale``.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from rssm.envs.suite import SuiteOptions, image_space, install_error, unknown_name


def _ale():
    try:
        import ale_py
    except ImportError:
        raise install_error("ale-py", "atari") from None
    gymnasium.register_envs(ale_py)
    return ale_py


def list_envs() -> list[str]:
    return sorted(_ale().roms.get_all_rom_ids())


def make(
    task: str,
    common: SuiteOptions,
    *,
    sticky: bool = True,
    full_action_space: bool = False,
    max_pool: bool = True,
) -> gymnasium.Env:
    """Options:

    - ``sticky``: sticky actions (repeat probability 0.25, Machado et al. 2018) or none.
    - ``full_action_space``: all 18 actions instead of the game's minimal set.
    - ``max_pool``: each image is the pixel-wise max of the last two frames (flicker removal; with
      action repeat k this pools the last two frames of the k, as in DQN and Dreamer).
    """
    for option, value in (
        ("sticky", sticky),
        ("full_action_space", full_action_space),
        ("max_pool", max_pool),
    ):
        if not isinstance(value, bool):
            raise ValueError(f"option {option}={value!r} must be a bool")
    games = list_envs()
    if task not in games:
        raise unknown_name("Atari game", task, games)
    env_id = "ALE/" + "".join(part.capitalize() for part in task.split("_")) + "-v5"
    kwargs = {}
    if common.time_limit is not None:
        kwargs["max_episode_steps"] = common.time_limit
    env = gymnasium.make(
        env_id,
        frameskip=1,
        repeat_action_probability=0.25 if sticky else 0.0,
        full_action_space=full_action_space,
        obs_type="grayscale" if common.grayscale else "rgb",
        **kwargs,
    )
    return AtariDict(env, max_pool)


class AtariDict(gymnasium.ObservationWrapper):
    """ALE frames as ``{"image": uint8 [210, 160, C]}``, optionally max-pooled over two frames."""

    def __init__(self, env: gymnasium.Env, max_pool: bool):
        super().__init__(env)
        shape = env.observation_space.shape
        self.observation_space = spaces.Dict({"image": image_space(*shape[:2], *shape[2:] or (1,))})
        self._max_pool = max_pool
        self._previous: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._previous = None
        return super().reset(seed=seed, options=options)

    def observation(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        frame = frame if frame.ndim == 3 else frame[..., None]
        image = frame if self._previous is None else np.maximum(frame, self._previous)
        self._previous = frame if self._max_pool else None
        return {"image": image}
