"""Collecting with a :class:`~rssm.data.driver.Driver`: the uniform random policy (seed episodes,
baselines) and recording whole episodes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rssm.data.driver import Driver

__all__ = ["RandomPolicy", "record_episodes"]


class RandomPolicy:
    """Uniform random actions with the driver's policy signature.

    Args:
        action_dim: Size ``A`` of the action vector.
        discrete: One-hot actions over ``A`` choices instead of uniform in ``[-1, 1]``.
        seed: Seed of the policy's generator.
    """

    def __init__(self, action_dim: int, discrete: bool = False, seed: int | None = None) -> None:
        if action_dim < 1:
            raise ValueError(f"action_dim must be >= 1, got {action_dim}")
        self.action_dim = int(action_dim)
        self.discrete = discrete
        self._rng = np.random.default_rng(seed)

    def __call__(self, carry: Any, obs: Mapping[str, np.ndarray]) -> tuple[Any, np.ndarray]:
        """Return ``(carry, action)`` with ``action`` float32 ``[N, A]``, ``N`` from ``obs``."""
        num = len(obs["is_first"]) if "is_first" in obs else len(next(iter(obs.values())))
        if self.discrete:
            action = np.zeros((num, self.action_dim), np.float32)
            action[np.arange(num), self._rng.integers(0, self.action_dim, num)] = 1.0
        else:
            action = self._rng.uniform(-1.0, 1.0, (num, self.action_dim)).astype(np.float32)
        return carry, action


def record_episodes(driver: Driver, policy: Any, episodes: int) -> list[dict[str, np.ndarray]]:
    """Runs ``driver`` with ``policy`` for ``episodes`` finished episodes and returns the first
    ``episodes`` of them as dicts of ``[L, ...]`` arrays (one row per step, DESIGN.md §3)."""
    finished: list[dict[str, np.ndarray]] = []
    current: dict[int, list[dict[str, Any]]] = {}

    def record(transition: dict[str, Any], worker: int) -> None:
        steps = current.setdefault(worker, [])
        steps.append(transition)
        if transition["is_last"]:
            finished.append({k: np.stack([step[k] for step in steps]) for k in steps[0]})
            steps.clear()

    driver.on_step(record)
    driver(policy, episodes=episodes)
    return finished[:episodes]
