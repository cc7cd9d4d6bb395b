"""Dreamer (V1, V2, V3): learn a world model, learn behaviour in its imagination.

Hafner et al. 2020 ("Dream to Control"), 2021 ("Mastering Atari with Discrete World Models"),
2023 ("Mastering Diverse Domains through World Models"). The versions differ only by options of
the shared parts (presets ``dreamer_v1``, ``dreamer_v2``, ``dreamer_v3``): the world model's latent,
KL scheme and heads (:class:`~rssm.models.WorldModelConfig`) and the actor-critic's gradients,
distributions, critic and normalisation (:class:`~rssm.behavior.ActorCriticConfig`).

Acting filters the newest observation into the posterior and asks the actor: a sample when
exploring (plus V1's Gaussian exploration noise, or ε-random one-hot actions for discrete
envs), the mode in evaluation. A train step is one world-model update followed by one
actor-critic update from the detached posteriors of the same batch (N = B·T start states), each
with its own Adam optimiser, epsilon and gradient clip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rssm.agents.base import Capabilities, Mode
from rssm.agents.configs import DreamerConfig
from rssm.agents.core import WorldModelAgent, floats
from rssm.agents.optimizer import Optimizer
from rssm.agents.runtime import Precision, autocast, compile_blocks
from rssm.behavior.actor_critic import ActorCritic
from rssm.models import WorldModelConfig
from rssm.types import RSSMState

__all__ = ["DreamerAgent", "DreamerCarry", "DreamerConfig"]


class DreamerCarry(NamedTuple):
    """What :meth:`DreamerAgent.policy` carries between env steps: the posterior [N] (None before
    the first step) and the action executed after it [N, A]."""

    state: RSSMState | None
    prev_action: Tensor


class DreamerAgent(WorldModelAgent):
    """A world model, an actor-critic trained in its imagination, and their three optimisers.

    An :class:`~rssm.agents.base.Agent` that acts in imagination with its actor.

    Args:
        obs_space: observation space (modality keys).
        action_dim: A; the size of the action vector (the number of choices when discrete).
        world_model: world-model config (any latent: Gaussian or categorical).
        config: optimisers, exploration and the actor-critic.
        discrete: one-hot actions.
        seed: seeds the initial weights (without touching torch's global generator) and
            ``generator`` (exploration noise).
        device: where everything runs.
        precision: ``bfloat16`` runs the losses under autocast (opt-in).
        compile: compile the building blocks with ``torch.compile`` (opt-in).

    Attributes:
        model: the :class:`WorldModel`.
        behavior: the :class:`~rssm.behavior.ActorCritic` (``behavior.actor`` acts and is trained:
            one module, no copies).
        model_opt, actor_opt, critic_opt: the :class:`~rssm.agents.optimizer.Optimizer` s (Adam,
            clip, non-finite skip).
    """

    capabilities = Capabilities(imagination="actor")

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        action_dim: int,
        world_model: WorldModelConfig,
        config: DreamerConfig,
        *,
        discrete: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
        precision: Precision = "float32",
        compile: bool = False,
    ) -> None:
        self.config = config
        self._setup(
            obs_space, action_dim, world_model,
            (config.model_lr, config.model_eps, config.model_clip), discrete=discrete,
            seed=seed, device=device, precision=precision, compile=compile,
        )  # fmt: skip
        self.actor_opt = Optimizer(
            self.behavior.actor.parameters(), name="actor", lr=config.actor_lr,
            eps=config.actor_eps, clip=config.actor_clip,
        )  # fmt: skip
        self.critic_opt = Optimizer(
            self.behavior.critic.parameters(), name="critic", lr=config.critic_lr,
            eps=config.critic_eps, clip=config.critic_clip,
        )  # fmt: skip
        if compile:
            compile_blocks(self.behavior)
            # A compiled backward frees its buffers and refuses the retained graph that one
            # shared critic forward needs: compiled critics take the values from a second one.
            self.behavior.share_critic = False

    def _build_more(self, device: str | torch.device) -> None:
        """The actor-critic, built after the model in the same seeded scope."""
        feat_dim = self.model.rssm.feat_dim
        self.behavior = ActorCritic(
            feat_dim, self.action_dim, self.config.actor_critic, discrete=self.discrete
        ).to(device)

    # ----------------------------------------------------------------------------- acting
    def initial_carry(self, num_envs: int) -> DreamerCarry:
        """Carry before the first step of ``num_envs`` environments."""
        param = next(self.model.parameters())
        return DreamerCarry(None, param.new_zeros(num_envs, self.action_dim))

    def policy(
        self, carry: DreamerCarry | None, obs: Mapping[str, np.ndarray | Tensor], mode: Mode
    ) -> tuple[DreamerCarry, Tensor]:
        """Filter ``obs`` into the posterior and act with the actor.

        Args:
            carry: from :meth:`initial_carry` or the previous call; None means
                ``initial_carry(N)``.
            obs: observations [N, ...] with ``is_first`` [N].
            mode: ``"explore"`` samples the actor (plus ``expl_noise``); ``"eval"`` takes its
                mode.

        Returns:
            ``(carry, action)``: action [N, A] in [-1, 1] (continuous) or one-hot (discrete).
        """
        if mode not in ("explore", "eval"):
            raise ValueError(f"DreamerAgent.policy: mode={mode!r}; use 'explore' or 'eval'")
        with torch.no_grad():
            inputs = self.model.preprocess(obs)
            num = inputs["is_first"].shape[0]
            carry = self.initial_carry(num) if carry is None else carry
            if carry.prev_action.shape != (num, self.action_dim):
                raise ValueError(
                    f"DreamerAgent.policy: carry.prev_action has shape "
                    f"{tuple(carry.prev_action.shape)} but obs has N={num} envs and A="
                    f"{self.action_dim}; pass initial_carry({num}) or None"
                )
            state = self.model.obs_step(carry.state, carry.prev_action, inputs)
            action = self.behavior.act(state.feat(), sample=mode == "explore")
            if mode == "explore":
                action = self._explore(action)
            if not self.discrete:
                action = action.clamp(-1.0, 1.0)
        return DreamerCarry(state, action), action

    def _explore(self, action: Tensor) -> Tensor:
        noise = self.config.expl_noise
        if noise == 0:
            return action
        if not self.discrete:
            eps = torch.randn(
                action.shape, generator=self.generator, device=action.device, dtype=action.dtype
            )
            return action + noise * eps
        num = action.shape[0]
        pick = torch.rand(num, generator=self.generator, device=action.device) < noise
        index = torch.randint(
            self.action_dim, (num,), generator=self.generator, device=action.device
        )
        random = torch.nn.functional.one_hot(index, self.action_dim).to(action.dtype)
        return torch.where(pick[:, None], random, action)

    def imagine_action(self, state: RSSMState, generator: torch.Generator | None = None) -> Tensor:
        """The actor's mode at imagined states [N] (``rssm dream --policy agent``)."""
        with torch.no_grad():
            action = self.behavior.act(state.feat(), sample=False)
        return action if self.discrete else action.clamp(-1.0, 1.0)

    # ----------------------------------------------------------------------------- learning
    def train_step(self, batch: Mapping[str, np.ndarray | Tensor]) -> dict[str, float]:
        """One world-model update, then one actor-critic update from the batch's posteriors.

        Args:
            batch: replay batch [B, T, ...]: observation keys, ``action``, ``reward``,
                ``is_first``, ``is_terminal``.

        Returns:
            The world model's metrics, ``model_loss``, the actor-critic's (``actor_loss``,
            ``critic_loss``, ``actor_entropy``, ``return_mean``, ``return_scale``,
            ``value_mean``, ``imag_reward``, ...), and per optimiser ``<name>_grad_norm`` and
            ``<name>_nonfinite`` (1 when its update was skipped) as floats.
        """
        data = self.model.preprocess(batch)
        output, metrics = self.model_update(data)

        posterior, terminal = output.posterior.detach(), data["is_terminal"]  # [B, T]
        last = self.config.actor_critic.imag_last
        if last:  # only the last ``imag_last`` steps of each sequence start an imagination
            posterior = posterior.at((slice(None), slice(-last, None)))
            terminal = terminal[:, -last:]
        start = posterior.reshape(-1)  # [N = B*T] (or B*imag_last)
        start_cont = 1.0 - terminal.reshape(-1).to(start.deter.dtype)
        with autocast(self.device, self.precision):
            losses = self.behavior.loss(self.model, start, start_cont)
        # only_own: the actor's loss differentiates through the dynamics (dynamics backprop) but
        # accumulates gradients only into the actor's weights; the world model receives nothing.
        metrics.update(self.actor_opt.step(losses.actor, only_own=True))
        metrics.update(self.critic_opt.step(losses.critic, only_own=True))
        self.behavior.update_slow_critic()
        metrics.update(losses.metrics)
        return floats(metrics)

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Weights of the model and the behaviour (slow critic and normaliser included), the
        three optimisers and the exploration generator."""
        return {
            "model": self.model.state_dict(),
            "behavior": self.behavior.state_dict(),
            "model_opt": self.model_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (strict)."""
        keys = {"model", "behavior", "model_opt", "actor_opt", "critic_opt", "generator"}
        missing = keys - set(state)
        if missing:
            raise ValueError(
                f"DreamerAgent.load_state_dict: missing keys {sorted(missing)}; pass the dict "
                "returned by DreamerAgent.state_dict() (is this a checkpoint of another agent?)"
            )
        self.model.load_state_dict(state["model"])
        self.behavior.load_state_dict(state["behavior"])
        self.model_opt.load_state_dict(state["model_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return (
            f"DreamerAgent(action_dim={self.action_dim}, discrete={self.discrete}, "
            f"actor_grad={self.behavior.actor_grad!r}, {dataclasses.asdict(self.config)})"
        )
