"""A uniformly random agent with the agent surface (``policy``, ``train_step``, ``state_dict``).

Useful as a baseline and for seed episodes; it has no model and learns nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rssm.agents.base import Capabilities
from rssm.agents.runtime import check_device

__all__ = ["RandomAgent", "uniform_actions"]


def uniform_actions(
    num: int, action_dim: int, discrete: bool, generator: torch.Generator
) -> Tensor:
    """``[num, action_dim]`` actions uniform in [-1, 1], or uniform one-hot ones when
    ``discrete``, drawn from ``generator`` on its device."""
    device = generator.device
    if discrete:
        index = torch.randint(action_dim, (num,), generator=generator, device=device)
        return torch.nn.functional.one_hot(index, action_dim).float()
    action = torch.rand((num, action_dim), generator=generator, device=device)
    return action.mul_(2.0).sub_(1.0)


class RandomAgent:
    """Uniform actions in [-1, 1]^A, or uniform one-hot actions over A choices.

    The constructor mirrors the other agents' so that ``AGENTS[name](...)`` builds any of them;
    ``obs_space``, ``world_model`` and ``config`` are accepted and ignored.

    Args:
        obs_space: observation space (unused).
        action_dim: size A of the action vector.
        world_model: unused (there is no model).
        config: unused.
        discrete: emit one-hot actions instead of continuous ones.
        seed: seeds ``generator``.
        device: device of the returned actions.
        precision, compile: accepted for a uniform constructor; nothing to speed up.
    """

    # The training loop neither samples replay batches nor counts updates for it; no model.
    capabilities = Capabilities(learns=False, world_model=False)

    def __init__(
        self,
        obs_space: gym.spaces.Dict | None,
        action_dim: int,
        world_model: Any = None,
        config: Any = None,
        *,
        discrete: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
        precision: str = "float32",
        compile: bool = False,
    ) -> None:
        if isinstance(action_dim, bool) or not isinstance(action_dim, int) or action_dim < 1:
            raise ValueError(f"RandomAgent: action_dim must be a positive int, got {action_dim!r}")
        self.action_dim = action_dim
        self.discrete = discrete
        self.device = check_device(device, "RandomAgent")
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def initial_carry(self, num_envs: int) -> None:
        """The random agent carries nothing."""
        return None

    def policy(
        self, carry: None, obs: Mapping[str, np.ndarray | Tensor], mode: Literal["explore", "eval"]
    ) -> tuple[None, Tensor]:
        """Return ``(carry, action [N, A])``, N from ``obs["is_first"]`` (same in both modes)."""
        if mode not in ("explore", "eval"):
            raise ValueError(f"RandomAgent.policy: mode={mode!r}; use 'explore' or 'eval'")
        num = len(obs["is_first"])
        return carry, uniform_actions(num, self.action_dim, self.discrete, self.generator)

    def train_step(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """Nothing to learn: returns ``{}``."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The generator state (so a resumed run draws the same actions)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if "generator" not in state:
            raise ValueError(
                f"RandomAgent.load_state_dict: missing key 'generator' (got {sorted(state)}); "
                "pass the dict returned by RandomAgent.state_dict()"
            )
        self.generator.set_state(state["generator"])
