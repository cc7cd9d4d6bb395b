"""The agent interface: what the training loop and the viewing tools may ask of an agent.

Every agent (``AGENTS[name]``) has the same constructor (``obs_space, action_dim, world_model,
config, *, discrete, seed, device, precision, compile``) and the members of :class:`Agent`. What
an agent can do beyond acting and learning is declared in its :class:`Capabilities`, which
``rssm.run`` reads instead of probing attributes:

* ``learns``: ``train_step`` updates it, so the loop samples replay batches and counts updates
  (the random baseline does not);
* ``world_model``: it holds ``model``, a :class:`~rssm.models.WorldModel` (open-loop videos,
  ``rssm dream`` and ``rssm report``);
* ``acts_in_imagination``: it acts from imagined latent states, by an actor
  (``imagine_action(state, generator)``) or by planning (``plan(start, initial, generator)``:
  CEM with its settings over ``planning_objective(start)``); ``imagination`` says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

__all__ = ["Agent", "Capabilities", "Mode"]

Mode = Literal["explore", "eval"]


@dataclass(frozen=True)
class Capabilities:
    """What an agent can do beyond ``policy`` and ``train_step`` (see the module docstring)."""

    learns: bool = True
    world_model: bool = True
    imagination: Literal["actor", "planner", "none"] = "none"

    @property
    def acts_in_imagination(self) -> bool:
        return self.imagination != "none"


@runtime_checkable
class Agent(Protocol):
    """The members every agent has (the constructor is described in the module docstring)."""

    capabilities: ClassVar[Capabilities]
    action_dim: int
    generator: torch.Generator  # the agent's own randomness (exploration, latent samples)

    def initial_carry(self, num_envs: int) -> Any:
        """The policy's carry before the first step of ``num_envs`` environments."""
        ...

    def policy(
        self, carry: Any, obs: Mapping[str, np.ndarray | Tensor], mode: Mode
    ) -> tuple[Any, Tensor]:
        """``(carry, action [N, A])`` for observations ``[N, ...]``; ``carry`` None: initial."""
        ...

    def train_step(self, batch: Mapping[str, np.ndarray | Tensor]) -> dict[str, float]:
        """One update on a replay batch ``[B, T, ...]``; returns its metrics."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimiser states and generators: everything a checkpoint needs."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores a :meth:`state_dict`; a mismatch is one clear error naming the keys."""
        ...
