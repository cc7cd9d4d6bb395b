"""PlaNet: act by CEM planning in the latent space of a learned RSSM world model.

Hafner et al. 2019, "Learning Latent Dynamics for Planning from Pixels". Acting filters the newest
observation into the posterior (``WorldModel.obs_step``), then plans with the cross-entropy method
(:func:`rssm.behavior.planner.cem`): each candidate action sequence is scored by the sum of the
reward head's mode over the states imagined from the posterior (``RSSM.imagine``, the one rollout
path). The first action of the final plan mean is executed, plus Gaussian exploration noise while
collecting. Learning is one world-model update per :meth:`PlanetAgent.train_step`.

Randomness: the planner's candidates and the exploration noise draw from ``agent.generator``
(seeded by ``seed``); the latent samples inside the world model draw from torch's global generator.
Seed both for a repeatable action.

Deviations (docs/paper_deviations.md): latent overshooting is an option of the world model
(``world_model.overshooting``), off in the ``planet`` preset; ``warm_start`` (off by default, as
in the paper) starts each plan from the previous one shifted by a step instead of from
``N(0, init_std)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rssm.agents.base import Capabilities, Mode
from rssm.agents.configs import PlanetConfig
from rssm.agents.core import WorldModelAgent
from rssm.agents.runtime import Precision
from rssm.behavior.planner import cem, shift_plan
from rssm.models import WorldModel, WorldModelConfig
from rssm.types import RSSMState

__all__ = ["PlanetAgent", "PlanetCarry", "PlanetConfig", "imagined_return"]


def imagined_return(model: WorldModel, start: RSSMState, actions: Tensor) -> Tensor:
    """Predicted return of action sequences: PlaNet's planning objective.

    ``sum_{i=1..H} reward_head(s_i).mode()`` where ``s_0 = start`` and ``s_1 .. s_H`` are imagined
    by :meth:`RSSM.rollout` (the steps of :meth:`RSSM.imagine`) with sampled latents. The reward
    head scores each state as it comes, [N, F] at a time: the same FLOPs as on all [N, H, F] at
    once, with cache-sized intermediates on the CPU and no stacked trajectory.

    Args:
        model: the world model (its RSSM and reward head).
        start: start states [N].
        actions: [N, H, A].

    Returns:
        Returns [N].
    """
    total = actions.new_zeros(actions.shape[0])
    for _, state in model.rssm.rollout(start, actions, sample=True):
        total = total + model.reward(state.feat()).mode()
    return total


class PlanetCarry(NamedTuple):
    """What :meth:`PlanetAgent.policy` carries from one env step to the next (N environments).

    Attributes:
        state: posterior after the last observation [N], or None before the first step.
        prev_action: action executed after the last observation [N, A] (zeros initially).
        plan: last CEM plan mean [N, H, A] (zeros initially); used with ``warm_start``.
    """

    state: RSSMState | None
    prev_action: Tensor
    plan: Tensor


class PlanetAgent(WorldModelAgent):
    """PlaNet agent: a :class:`WorldModel`, its Adam optimiser and a CEM planner.

    An :class:`~rssm.agents.base.Agent` that acts in imagination by planning; learning, weights
    and checkpoints are the :class:`~rssm.agents.core.WorldModelAgent` core's (one world-model
    update per :meth:`train_step`).

    Args:
        obs_space: observation space (modality keys, ``EnvSpec.obs_space``).
        action_dim: size A of the action vector.
        world_model: world-model config, e.g. ``world_model_config("planet")``.
        config: planner and optimiser settings.
        discrete: the env takes one-hot actions; PlaNet plans continuous actions only, so True
            raises.
        seed: seeds the model's initial weights (without touching torch's global generator) and
            ``generator``.
        device: where the model and the planner run.
        precision: ``bfloat16`` runs the world-model loss under autocast (opt-in).
        compile: compile the model's building blocks with ``torch.compile`` (opt-in).

    Attributes:
        model: the world model (trained by :meth:`train_step`, used by :meth:`policy`).
        model_opt: :class:`~rssm.agents.optimizer.Optimizer` (Adam, clip, non-finite skip) over
            ``model.parameters()``.
        generator: random generator of the planner and the exploration noise, on ``device``.

    Raises:
        ValueError: ``discrete`` is True, or a bad ``action_dim``.
    """

    capabilities = Capabilities(imagination="planner")

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        action_dim: int,
        world_model: WorldModelConfig,
        config: PlanetConfig,
        *,
        discrete: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
        precision: Precision = "float32",
        compile: bool = False,
    ) -> None:
        if discrete:
            raise ValueError(
                "PlanetAgent: discrete=True, but PlaNet's CEM planner needs continuous actions in "
                "[-1, 1] (one-hot CEM is not supported); use the Dreamer agent for discrete "
                "action spaces"
            )
        self.config = config
        self._setup(
            obs_space, action_dim, world_model, (config.lr, config.eps, config.clip),
            discrete=False, seed=seed, device=device, precision=precision, compile=compile,
        )  # fmt: skip

    # ----------------------------------------------------------------------------- acting
    def initial_carry(self, num_envs: int) -> PlanetCarry:
        """Carry before the first step of ``num_envs`` environments (no state, zero actions)."""
        param = next(self.model.parameters())
        zeros = param.new_zeros(num_envs, self.config.horizon, self.action_dim)
        return PlanetCarry(None, zeros[:, 0].clone(), zeros)

    def policy(
        self, carry: PlanetCarry | None, obs: Mapping[str, np.ndarray | Tensor], mode: Mode
    ) -> tuple[PlanetCarry, Tensor]:
        """Filter ``obs`` into the posterior, plan with CEM and return the first action.

        For :class:`rssm.data.Driver` use ``functools.partial(agent.policy, mode="explore")``.
        Acting never trains, logs or counts; it advances ``generator`` and torch's global one.

        Args:
            carry: from :meth:`initial_carry` or the previous call; None means
                ``initial_carry(N)``.
            obs: observations [N, ...] (numpy or tensors), with ``is_first`` [N]; the model
                resets its state and ``prev_action`` where ``is_first`` is set.
            mode: ``"explore"`` adds N(0, expl_noise) to the action (then clips to [-1, 1]);
                ``"eval"`` executes the plan's first action as is.

        Returns:
            ``(carry, action)``: the new carry (``carry.prev_action is action``) and the action
            [N, A] in [-1, 1] on the model's device.
        """
        if mode not in ("explore", "eval"):
            raise ValueError(f"PlanetAgent.policy: mode={mode!r}; use 'explore' or 'eval'")
        with torch.no_grad():
            inputs = self.model.preprocess(obs)
            is_first = inputs["is_first"].bool()
            num = is_first.shape[0]
            carry = self.initial_carry(num) if carry is None else carry
            if carry.prev_action.shape != (num, self.action_dim):
                raise ValueError(
                    f"PlanetAgent.policy: carry.prev_action has shape "
                    f"{tuple(carry.prev_action.shape)} but obs has N={num} envs and A="
                    f"{self.action_dim}; pass initial_carry({num}) or None"
                )
            plan_shape = (num, self.config.horizon, self.action_dim)
            if carry.plan.shape != plan_shape:
                raise ValueError(
                    f"PlanetAgent.policy: carry.plan has shape {tuple(carry.plan.shape)}, expected "
                    f"[N, horizon, A] = {list(plan_shape)}; pass initial_carry({num}) or None"
                )
            state = self.model.obs_step(carry.state, carry.prev_action, inputs)
            plan = self.plan(state, self._initial_plan(carry.plan, is_first))
            action = plan[:, 0]
            if mode == "explore" and self.config.expl_noise > 0:
                noise = torch.randn(
                    action.shape, generator=self.generator, dtype=action.dtype, device=action.device
                )
                action = (action + self.config.expl_noise * noise).clamp_(-1.0, 1.0)
        return PlanetCarry(state, action, plan), action

    def plan(
        self,
        start: RSSMState,
        initial: Tensor,
        generator: torch.Generator | None = None,
        *,
        config: PlanetConfig | None = None,
    ) -> Tensor:
        """The planner, the one entry point for the agent and the tools: CEM over action
        sequences in [-1, 1] scored by :meth:`planning_objective` from ``start`` [N]; returns
        the final plan mean [N, H, A] (H = ``initial``'s).

        Args:
            start: posterior states [N] to plan from.
            initial: the initial CEM mean [N, H, A] (zeros, or a shifted previous plan).
            generator: the candidates' random generator; None uses the agent's ``generator``.
            config: planner settings (candidates, elites, iterations, initial std) other than
                the agent's own ``config``, e.g. ``dataclasses.replace(agent.config,
                candidates=100)``.
        """
        config = self.config if config is None else config
        return cem(
            self.planning_objective(start),
            initial,
            config.init_std,
            iterations=config.iterations,
            candidates=config.candidates,
            elites=config.elites,
            low=-1.0,
            high=1.0,
            generator=self.generator if generator is None else generator,
        ).mean

    def planning_objective(self, start: RSSMState) -> Callable[[Tensor], Tensor]:
        """The CEM objective from posterior ``start`` [N]: predicted return of each candidate.

        The returned function maps actions [N, K, H, A] to scores [N, K]: the sum over imagined
        states ``s_1 .. s_H`` of the reward head's mode, where ``s_0 = start`` (repeated K times)
        and ``s_{i+1} = prior step(s_i, a_i)`` via ``RSSM.imagine`` with sampled latents (PlaNet).
        ``reward[t]`` is the reward received on arriving at ``o_t`` (DESIGN.md §3), so
        ``s_1 .. s_H`` score exactly the rewards the H actions earn.
        """

        def objective(actions: Tensor) -> Tensor:
            N, K, H, A = actions.shape
            assert start.batch_shape == (N,), (tuple(start.batch_shape), N)
            starts = start.map(lambda x: x.unsqueeze(1).expand(N, K, x.shape[-1]).flatten(0, 1))
            return imagined_return(self.model, starts, actions.reshape(N * K, H, A)).reshape(N, K)

        return objective

    def _initial_plan(self, previous: Tensor, is_first: Tensor) -> Tensor:
        """Initial CEM mean [N, H, A]: zeros, or (warm start) the previous plan shifted one step,
        zeros where an episode starts."""
        if not self.config.warm_start:
            return torch.zeros_like(previous)
        return shift_plan(previous).masked_fill_(is_first[:, None, None], 0.0)

    def __repr__(self) -> str:
        return f"PlanetAgent({dataclasses.asdict(self.config)}, action_dim={self.action_dim})"
