"""The world-model agent core that PlaNet and Dreamer build on, and the world-model-only agent.

:class:`WorldModelAgent` holds a :class:`~rssm.models.WorldModel`, its optimiser
(:class:`~rssm.agents.optimizer.Optimizer`: Adam, clip, non-finite skip) and the agent's
generator; :meth:`~WorldModelAgent.model_update` is the one world-model update every agent takes.
On its own (``agent: world_model``) it learns the world model of what a uniformly random policy
sees (``rssm world-model`` trains it offline from collected episodes); :class:`PlanetAgent` adds
planning and :class:`DreamerAgent` an actor-critic learned in imagination.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rssm.agents.base import Capabilities, Mode
from rssm.agents.configs import WorldModelAgentConfig
from rssm.agents.optimizer import Optimizer
from rssm.agents.random import uniform_actions
from rssm.agents.runtime import Precision, autocast, check_device, check_precision, compile_blocks
from rssm.models import WorldModel, WorldModelConfig

__all__ = ["WorldModelAgent", "WorldModelAgentConfig"]


class WorldModelAgent:
    """A world model and its optimiser; acts uniformly at random.

    Args:
        obs_space: observation space (modality keys, ``EnvSpec.obs_space``).
        action_dim: size A of the action vector.
        world_model: world-model config, e.g. ``world_model_config("dreamer_v3", "xs")``.
        config: the optimiser's settings (``lr``, ``eps``, ``clip``).
        discrete: the env takes one-hot actions (random one-hot actions are sent).
        seed: seeds the initial weights (without touching torch's global generator) and
            ``generator``.
        device: where the model runs.
        precision: ``bfloat16`` runs the world-model loss under autocast (opt-in).
        compile: compile the model's building blocks with ``torch.compile`` (opt-in).

    Attributes:
        model: the world model.
        model_opt: its optimiser, over ``model.parameters()``.
        generator: the agent's random generator, on ``device``.
    """

    capabilities = Capabilities(imagination="none")

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        action_dim: int,
        world_model: WorldModelConfig,
        config: WorldModelAgentConfig,
        *,
        discrete: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
        precision: Precision = "float32",
        compile: bool = False,
    ) -> None:
        self.config = config
        self._setup(
            obs_space, action_dim, world_model, (config.lr, config.eps, config.clip),
            discrete=discrete, seed=seed, device=device, precision=precision, compile=compile,
        )  # fmt: skip

    def _setup(
        self,
        obs_space: gym.spaces.Dict,
        action_dim: int,
        world_model: WorldModelConfig,
        adam: tuple[float, float, float],
        *,
        discrete: bool,
        seed: int,
        device: str | torch.device,
        precision: Precision,
        compile: bool,
    ) -> None:
        """Checks the arguments and builds the model, the modules of :meth:`_build_more` (in the
        same seeded scope, after the model), the model's optimiser and the generator.
        ``adam``: ``(lr, eps, clip)`` of the model's optimiser."""
        name = type(self).__name__
        check_precision(precision)
        check_device(device, name)
        if isinstance(action_dim, bool) or not isinstance(action_dim, int) or action_dim < 1:
            raise ValueError(f"{name}: action_dim must be a positive int, got {action_dim!r}")
        self.action_dim, self.discrete = action_dim, discrete
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = WorldModel(obs_space, action_dim, world_model).to(device)
            self._build_more(device)
        lr, eps, clip = adam
        self.model_opt = Optimizer(self.model.parameters(), name="model", lr=lr, eps=eps, clip=clip)
        self.device, self.precision = torch.device(device), precision
        if compile:
            compile_blocks(self.model)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def _build_more(self, device: str | torch.device) -> None:
        """What a subclass has beside the world model (Dreamer: the actor-critic); none here."""

    # ----------------------------------------------------------------------------- acting
    def initial_carry(self, num_envs: int) -> None:
        """A random policy carries nothing."""
        return None

    def policy(
        self, carry: Any, obs: Mapping[str, np.ndarray | Tensor], mode: Mode
    ) -> tuple[None, Tensor]:
        """Uniform actions in [-1, 1]^A (one-hot when ``discrete``), N = ``len(is_first)``."""
        if mode not in ("explore", "eval"):
            name = type(self).__name__
            raise ValueError(f"{name}.policy: mode={mode!r}; use 'explore' or 'eval'")
        num = len(obs["is_first"])
        return None, uniform_actions(num, self.action_dim, self.discrete, self.generator)

    # ----------------------------------------------------------------------------- learning
    def model_update(self, data: Mapping[str, Tensor]) -> tuple[Any, dict[str, Tensor]]:
        """One world-model update on a preprocessed batch: the loss (under ``precision``), then
        the optimiser step. Returns the loss output (posteriors for the behaviour) and the
        metrics as 0-dim tensors: ``model_loss``, ``model_grad_norm``, ``model_nonfinite`` and
        the model's own (``<term>_loss``, ``kl``, ...)."""
        with autocast(self.device, self.precision):
            output = self.model.loss(data)
        metrics = {"model_loss": output.loss.detach()}
        metrics.update(self.model_opt.step(output.loss))
        metrics.update(output.metrics)
        return output, metrics

    def train_step(self, batch: Mapping[str, np.ndarray | Tensor]) -> dict[str, float]:
        """One world-model update on a replay batch [B, T, ...]; its metrics as floats."""
        _, metrics = self.model_update(self.model.preprocess(batch))
        return floats(metrics)

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Model weights, optimiser state and the generator's state."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.model_opt.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (strict: all keys must be present)."""
        missing = {"model", "optimizer", "generator"} - set(state)
        if missing:
            name = type(self).__name__
            raise ValueError(
                f"{name}.load_state_dict: missing keys {sorted(missing)}; pass the dict returned "
                f"by {name}.state_dict() (is this a checkpoint of another agent?)"
            )
        self.model.load_state_dict(state["model"])
        self.model_opt.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])


def floats(metrics: Mapping[str, Tensor]) -> dict[str, float]:
    """0-dim tensors as floats, with one device sync."""
    values = torch.stack([value.float() for value in metrics.values()]).tolist()
    return dict(zip(metrics, values, strict=True))
