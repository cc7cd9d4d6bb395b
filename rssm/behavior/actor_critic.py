"""Dreamer's actor-critic, learned in the imagination of a world model.

From every start state (detached posteriors of a replay batch, flattened to ``[N]``) the actor
imagines H steps through ``RSSM.imagine`` (the one rollout path): states ``s_0..s_H`` and actions
``a_0..a_{H-1}`` as ``[N, H+1]`` / ``[N, H, A]`` (DESIGN.md §3). The world model's heads give
rewards and continuation flags, the critic gives values, and :func:`lambda_return` turns them into
targets ``R_0..R_{H-1}``; every loss term is weighted by :func:`discount_weights` (the probability
of reaching a state, including the root's own continuation).

Versions are options, not forks (presets ``dreamer_v1``/``v2``/``v3`` set them):

* actor gradients: ``dynamics`` backpropagates the returns through the learned dynamics into the
  actions (V1; V2/V3 for continuous actions), ``reinforce`` uses the score function with the
  critic as baseline (V2/V3 discrete), ``mix`` weighs both (V2's ρ);
* the actor: tanh-squashed Normal (V1), Normal with a tanh-bounded mean and a sigmoid-bounded std
  (V3), one-hot categorical with unimix (discrete);
* the critic: Normal/MSE regression (V1/V2) or symlog two-hot (V3); a slow critic (EMA of the
  critic) as bootstrap target (V2: hard copy every 100 updates) and/or as a regulariser the critic
  is pulled toward (V3);
* return normalisation by the EMA of the 5th-95th percentile range, divided by max(1, range) (V3).

References: Hafner et al. 2020 (Dreamer, eq. 5-8), 2021 (DreamerV2, eq. 5-6), 2023 (DreamerV3,
"Critic learning" and "Actor learning").
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rssm.behavior.configs import ActorConfig, ActorCriticConfig, CriticConfig
from rssm.behavior.returns import ReturnNormalizer, discount_weights, ema_update, lambda_return
from rssm.nn.dists import Distribution, Normal, OneHotCategorical, TanhNormal
from rssm.nn.heads import Head
from rssm.nn.layers import MLP, init_fan_avg_
from rssm.types import RSSMState

__all__ = [
    "Actor",
    "ActorConfig",
    "ActorCritic",
    "ActorCriticConfig",
    "ActorCriticLoss",
    "CriticConfig",
    "Imagination",
]


class Actor(nn.Module):
    """Maps features [..., F] to an action distribution over [..., A].

    Continuous actions live in [-1, 1] (``TanhNormal`` or ``Normal`` with a bounded mean, whose
    samples the agent clips); discrete actions are one-hot samples with straight-through
    gradients.
    """

    def __init__(self, feat_dim: int, action_dim: int, config: ActorConfig, *, discrete: bool):
        super().__init__()
        self.discrete = discrete
        self.config = config
        outputs = action_dim if discrete else 2 * action_dim
        self.trunk = MLP(feat_dim, None, config.units, config.layers, config.act, config.norm)
        self.out = nn.Linear(self.trunk.out_dim, outputs)
        self.outscale = config.outscale  # re-applied by init_fan_avg_
        if config.outscale != 1.0:
            with torch.no_grad():
                self.out.weight.mul_(config.outscale)
                self.out.bias.mul_(config.outscale)
        # softplus(raw + shift) = init_std at raw = 0.
        self._std_shift = math.log(math.expm1(config.init_std)) if config.init_std > 0 else 0.0

    def forward(self, feat: Tensor) -> Distribution:
        out = self.out(self.trunk(feat))
        config = self.config
        if self.discrete:
            return OneHotCategorical(out, config.unimix)
        mean, raw_std = out.chunk(2, dim=-1)
        if config.dist_cont == "tanh_normal":
            mean = 5.0 * torch.tanh(mean / 5.0)
            std = F.softplus(raw_std + self._std_shift) + config.min_std
            return TanhNormal(mean, std)
        std = (config.max_std - config.min_std) * torch.sigmoid(raw_std + 2.0) + config.min_std
        return Normal(torch.tanh(mean), std)


class _Reattach(torch.autograd.Function):
    """``out`` -- computed from ``leaf``, a detached copy of ``x`` -- as a function of ``x``.

    The forward pass reuses ``out`` (no second computation); the backward pass differentiates
    ``out``'s own graph with respect to ``leaf`` only and hands that gradient to ``x``, so the
    parameters inside that graph receive nothing from this path. The graph is retained: the
    caller's other loss on ``out`` (the critic's) backpropagates through it afterwards.
    """

    @staticmethod
    def forward(ctx, x: Tensor, pair: tuple[Tensor, Tensor]) -> Tensor:  # type: ignore[override]
        del x
        ctx.pair = pair
        return pair[0].detach()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None]:  # type: ignore[override]
        out, leaf = ctx.pair
        # A re-entrant backward into the leaf (as reentrant checkpointing does), not
        # autograd.grad: module hooks on the leaf (FlopCounterMode's, for one) refuse the latter.
        leaf.grad = None
        torch.autograd.backward(out, grad, inputs=[leaf], retain_graph=True)
        g, leaf.grad = leaf.grad, None
        return g, None


class Imagination(NamedTuple):
    """An imagined batch: ``states`` [N, H+1], ``actions`` [N, H, A], features [N, H+1, F], and
    the actor's ``log_prob`` of its actions and ``entropy`` at ``s_0..s_{H-1}`` [N, H]; for
    continuous actions ``mode`` [N, H, A] is the actor's detached mode there (None: discrete)."""

    states: RSSMState
    actions: Tensor
    feat: Tensor
    log_prob: Tensor
    entropy: Tensor
    mode: Tensor | None = None


class ActorCriticLoss(NamedTuple):
    """Scalar ``actor`` and ``critic`` losses, and detached metrics (0-dim tensors)."""

    actor: Tensor
    critic: Tensor
    metrics: dict[str, Tensor]


class ActorCritic(nn.Module):
    """Actor, critic, slow critic and return normaliser, trained on imagined trajectories.

    Args:
        feat_dim: size F of the model state's features (``RSSMState.feat()``).
        action_dim: A.
        config: see :class:`ActorCriticConfig`.
        discrete: one-hot actions (then ``actor_grad_disc`` applies, else ``actor_grad_cont``).

    The world model is an argument of :meth:`loss`, not a submodule: the behaviour's
    ``state_dict`` holds only its own weights.
    """

    def __init__(
        self, feat_dim: int, action_dim: int, config: ActorCriticConfig, *, discrete: bool
    ) -> None:
        super().__init__()
        self.config = config
        self.discrete = discrete
        self.action_dim = action_dim
        self.actor_grad = config.actor_grad_disc if discrete else config.actor_grad_cont
        self.actor = Actor(feat_dim, action_dim, config.actor, discrete=discrete)
        critic = config.critic
        self.critic = Head(
            feat_dim, (), critic.dist, units=critic.units, layers=critic.layers, act=critic.act,
            norm=critic.norm, bins=critic.bins, outscale=critic.outscale,
        )  # fmt: skip
        if config.init == "fan_avg":
            init_fan_avg_(self)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.normalizer = ReturnNormalizer(
            config.return_norm_decay, config.return_norm_low, config.return_norm_high,
            config.return_norm_min,
        )  # fmt: skip
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        # One critic forward for its loss and the values under dynamics backprop (saves one
        # critic forward per update, ~7 % of a small model's FLOPs); False computes the values
        # with a second forward on the live features, the reference the tests compare against.
        self.share_critic = True

    # ----------------------------------------------------------------------------- imagination
    def imagine(self, rssm: nn.Module, start: RSSMState) -> Imagination:
        """Roll the actor forward H steps in the prior from ``start`` [N] (detached by caller).

        With ``dynamics``/``mix`` gradients the rollout keeps its graph: actions are
        reparameterised (or straight-through) samples, and returns backpropagate through the
        dynamics into them. With ``reinforce`` the rollout runs without a graph (actions are
        plain samples) and only the actor's log-probabilities and entropies carry gradients.
        The actor always sees detached features, as in DreamerV3.
        """
        dists: list[Distribution] = []

        def policy(state: RSSMState) -> Tensor:
            with torch.enable_grad():  # distributions cache their probabilities: build them here
                dist = self.actor(state.feat().detach())
                action = dist.sample()
            dists.append(dist)
            return action if self.actor_grad != "reinforce" else action.detach()

        with torch.set_grad_enabled(self.actor_grad != "reinforce" and torch.is_grad_enabled()):
            states, actions = rssm.imagine(start, policy, self.config.horizon)
            feat = states.feat()
        taken = actions.detach()
        log_prob = torch.stack([d.log_prob(taken[:, i]) for i, d in enumerate(dists)], 1)
        entropy = torch.stack([d.entropy() for d in dists], 1)
        mode = None
        if not self.discrete:
            mode = torch.stack([d.mode().detach() for d in dists], 1)
        return Imagination(states, actions, feat, log_prob, entropy, mode)

    # ----------------------------------------------------------------------------- losses
    def loss(
        self,
        model: nn.Module,
        start: RSSMState,
        start_cont: Tensor | None = None,
    ) -> ActorCriticLoss:
        """Actor and critic losses on trajectories imagined from ``start``.

        Args:
            model: the world model (``rssm``, ``reward`` and optional ``cont`` heads).
            start: detached start states [N] (e.g. a batch's posteriors flattened).
            start_cont: continuation of each start state [N] (``1 - is_terminal``); None: ones.

        Returns:
            :class:`ActorCriticLoss`; ``actor`` has gradients only for the actor's parameters
            (and, with ``dynamics``/``mix``, paths through the model that the caller must not
            step: use ``backward(inputs=actor params)``); ``critic`` only for the critic's.
            Backpropagate ``actor`` before ``critic``: with dynamics backprop the two share the
            critic's one forward, whose graph the critic's backward frees.
        """
        config = self.config
        imag = self.imagine(model.rssm, start)
        # The returns never use reward_0, and cont_0 is the start's own continuation: the heads'
        # column 0 is dropped. They still read all of s_0..s_H, a contiguous [N, H+1, F]: a slice
        # s_1..s_H costs a strided copy (on the CPU a batched matmul) in the forward and a
        # zero-filled gradient in the backward, more than the 1/H extra rows (2026-12-02, xxs
        # model on a CPU: 4 % of the update). One critic forward, on detached features, serves
        # both its loss and the bootstrap values. With REINFORCE the values need no graph; with
        # dynamics backprop they are re-attached to the imagined features (:class:`_Reattach`),
        # so the actor's loss still differentiates them into the dynamics, while the critic's
        # loss reaches only the critic's weights.
        reinforce = self.actor_grad == "reinforce"
        grad = torch.is_grad_enabled()
        shared = grad and not config.slow_target and (reinforce or self.share_critic)
        critic_dist = critic_in = None
        if shared:
            critic_in = imag.feat.detach().requires_grad_(not reinforce)
            critic_dist = self.critic(critic_in)
        with torch.set_grad_enabled(not reinforce and grad):
            reward = F.pad(model.reward(imag.feat).mode()[:, 1:], (1, 0))  # [N, H+1], col 0 unused
            first = imag.feat.new_ones(imag.feat.shape[0], 1)
            if start_cont is not None:
                first = start_cont.to(first.dtype)[:, None]
            if getattr(model, "cont", None) is not None:
                cont_dist = model.cont(imag.feat)
                all_cont = cont_dist.mode() if config.imag_cont == "mode" else cont_dist.mean
                cont = torch.cat([first, all_cont[:, 1:]], 1)
            else:
                cont = torch.cat([first, torch.ones_like(reward[:, 1:])], 1)
            if critic_dist is not None:
                with torch.enable_grad():  # distributions cache derived tensors: build them here
                    own = critic_dist.mode()
                value = own.detach() if reinforce else _Reattach.apply(imag.feat, (own, critic_in))
            else:
                target_critic = self.slow_critic if config.slow_target else self.critic
                value = target_critic(imag.feat).mode()  # [N, H+1]
            returns = lambda_return(
                reward, cont, value, discount=config.discount, lam=config.lam
            )  # [N, H]
        weights = discount_weights(cont, config.discount)  # detached [N, H]
        actor_loss, actor_metrics = self._actor_loss(imag, returns, value[:, :-1], weights)
        critic_loss, critic_metrics = self._critic_loss(imag.feat, returns, weights, critic_dist)
        metrics = {**actor_metrics, **critic_metrics}
        metrics["imag_reward"] = reward[:, 1:].detach().mean()
        metrics["imag_cont"] = cont[:, 1:].detach().mean()
        return ActorCriticLoss(actor_loss, critic_loss, metrics)

    def _actor_loss(
        self, imag: Imagination, returns: Tensor, base: Tensor, weights: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Maximise normalised returns or advantages ``(R_t - V(s_t)) / S`` differentiated
        through the dynamics (``dynamics``; ``dynamics_baseline`` picks which), and/or advantages
        as weights of ``log π`` (REINFORCE), plus an entropy bonus; every term weighted per state
        (DreamerV3 eq. 11). ``base`` is V(s_0..s_{H-1}) [N, H] with its graph (dynamics) or
        detached (REINFORCE)."""
        config = self.config
        if config.return_norm:
            self.normalizer.update(returns)
            scale = self.normalizer.scale()
        else:
            scale = returns.new_ones(())
        objective = returns.new_zeros(returns.shape)
        if self.actor_grad in ("dynamics", "mix"):
            # V3: the normalised advantage, differentiated through both terms: the imagined
            # states s_1..s_{H-1} depend on the actor's earlier actions, so the baseline V(s_t)
            # carries gradient too (DreamerV3's released code: ``-(normed_ret - normed_base)``).
            # Without it (V1, V2) the actor also climbs the critic's values at its own
            # intermediate states: a different gradient, pinned by a test.
            mix = 1.0 if self.actor_grad == "dynamics" else config.actor_grad_mix
            target = returns - base if config.dynamics_baseline else returns
            objective = objective + mix * target / scale
        if self.actor_grad in ("reinforce", "mix"):
            mix = 1.0 if self.actor_grad == "reinforce" else 1.0 - config.actor_grad_mix
            advantage = ((returns - base) / scale).detach()
            objective = objective + mix * imag.log_prob * advantage
        objective = objective + config.entropy * imag.entropy
        loss = -(weights * objective).mean()
        metrics = {
            "actor_loss": loss.detach(),
            "actor_entropy": imag.entropy.detach().mean(),
            "return_mean": returns.detach().mean(),
            "return_scale": scale.detach(),
            "advantage_mean": ((returns - base) / scale).detach().mean(),
        }
        if imag.mode is not None:
            # Mean |mode| of a continuous actor in [0, 1]: near 1 it sits at the action bounds
            # (bang-bang control), which a tanh-Normal's very negative entropy also signals.
            metrics["actor_mode_abs"] = imag.mode.abs().mean()
        if config.return_norm:  # the percentiles behind the scale (diagnostics)
            metrics["return_low"] = self.normalizer.low_ema.detach().clone()
            metrics["return_high"] = self.normalizer.high_ema.detach().clone()
        return loss, metrics

    def _critic_loss(
        self, feat: Tensor, returns: Tensor, weights: Tensor, dist: Distribution | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Critic regression of V(s_0..s_{H-1}) on the detached λ-returns [N, H], plus V3's pull
        toward the slow critic's prediction. ``feat``: all H+1 states [N, H+1, F] (the critics
        read the contiguous whole; the last column's terms are dropped); ``dist``: the critic's
        output there when the caller already has it.
        """
        feat = feat.detach()
        H = returns.shape[1]
        if dist is None:
            dist = self.critic(feat)
        padded = F.pad(returns.detach(), (0, 1))
        loss = dist.loss(padded)[:, :H]
        if self.config.slow_regularizer > 0:
            with torch.no_grad():
                slow = self.slow_critic(feat).mode()  # [N, H+1]
            loss = loss + self.config.slow_regularizer * dist.loss(slow)[:, :H]
        loss = (weights * loss).mean()
        value = dist.mode().detach()[:, :H]
        return loss, {"critic_loss": loss.detach(), "value_mean": value.mean()}

    def update_slow_critic(self) -> None:
        """Count an update; refresh the slow critic every ``slow_critic_every`` updates."""
        self.updates += 1
        if int(self.updates) % self.config.slow_critic_every == 0:
            ema_update(self.slow_critic, self.critic, self.config.slow_critic_rate)

    def act(self, feat: Tensor, sample: bool) -> Tensor:
        """An action [N, A] for features [N, F]: a sample (exploring) or the mode (evaluating)."""
        dist = self.actor(feat)
        return dist.sample() if sample else dist.mode()
