"""Recurrent state-space model (RSSM) with Gaussian (PlaNet, Dreamer V1) or categorical (V2, V3)
latents, and its single rollout path :meth:`RSSM.imagine`.

Time alignment follows DESIGN.md §3 (see :mod:`rssm.types`): the state at row t is
``h_t = f(h_{t-1}, z_{t-1}, prev_action_t)`` and ``z_t ~ q(h_t, embed_t)`` (posterior) or
``p(h_t)`` (prior). At ``is_first`` the previous ``h``, ``z`` and ``prev_action`` are reset to the
initial state inside the loop, per step, so sequences that cross episode boundaries are handled.

References:
    Hafner et al. 2019 (PlaNet) §3 "Recurrent State Space Model"; Hafner et al. 2021 (DreamerV2)
    §2 "Categorical latents" and "KL balancing"; Hafner et al. 2023 (DreamerV3) eq. 5 (dynamics and
    representation losses with free bits) and §"Robust Predictions" (unimix).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rssm.kinds import GRUKind, Initial, KLScheme, Latent
from rssm.nn.dists import Normal, OneHotCategorical
from rssm.nn.gru import make_gru
from rssm.nn.layers import MLP, Activation, make_act
from rssm.types import RSSMState

__all__ = ["RSSM", "imagine"]

Policy = Callable[[RSSMState], Tensor]

# LayerNorm eps of rssm.nn.layers (DreamerV3 uses 1e-3).
_NORM_EPS = 1e-3


class RSSM(nn.Module):
    """Recurrent state-space model: a GRU core with a stochastic latent per step.

    One step (``_core``): ``x = act(norm(W_z z_{t-1} + W_a a_{t-1}))``, ``h_t = GRU(x, h_{t-1})``;
    prior stats ``= MLP(h_t)``; posterior stats ``= Linear(act(norm(W_h h_t + W_e e_t)))``. The
    action and embed halves of the input layers are applied to the whole sequence at once before
    the time loop, and the prior head is applied to all ``h_t`` after it, so the loop only runs
    what truly depends on the previous step.

    Args:
        action_dim: size A of the (one-hot or continuous) action vector.
        embed_dim: size E of the observation embedding.
        latent: ``"gaussian"`` (``stoch`` dims, std = softplus + ``min_std``) or ``"categorical"``
            (``stoch`` groups of ``classes`` one-hot classes, straight-through gradients).
        deter: size D of the deterministic GRU state.
        stoch: Gaussian dims, or number of categorical groups.
        classes: classes per categorical group (unused for Gaussian latents).
        units: hidden units of the input, prior and posterior layers.
        gru: GRU core kind, see :func:`rssm.nn.gru.make_gru`.
        gru_layers: layers of a ``"stacked"`` core.
        gru_blocks: blocks of a ``"block"`` (block-diagonal) core.
        min_std: lower bound of the Gaussian std (PlaNet/V1: 0.1).
        unimix: uniform mixture of categorical probabilities (V3: 0.01, V2: 0).
        initial: ``"zeros"`` (PlaNet, V1, V2) or ``"learned"`` (V3: ``deter = tanh(w)``, ``stoch``
            = mode of its prior).
        act: activation of the hidden layers.
        norm: LayerNorm in the hidden layers (and passed to ``make_gru``).
        action_clip: actions entering the dynamics are scaled into [-clip, clip] with a
            stop-gradient on the scale, ``a * sg(clip / max(clip, |a|))`` (DreamerV3's released
            code: imagined samples of its unbounded Normal actor stay in the range the model saw
            in replay, while their gradient keeps its direction); 0: off.
    """

    def __init__(
        self,
        action_dim: int,
        embed_dim: int,
        *,
        latent: Latent = "categorical",
        deter: int = 512,
        stoch: int = 32,
        classes: int = 32,
        units: int = 512,
        gru: GRUKind = "layernorm",
        gru_layers: int = 1,
        gru_blocks: int = 1,
        min_std: float = 0.1,
        unimix: float = 0.01,
        initial: Initial = "zeros",
        act: Activation = "silu",
        norm: bool = True,
        action_clip: float = 0.0,
    ) -> None:
        super().__init__()
        _check_options(latent=latent, initial=initial)
        if not action_clip >= 0:
            raise ValueError(f"RSSM: action_clip={action_clip!r} must be >= 0 (0: off)")
        self.action_clip = float(action_clip)
        for name, value in dict(
            action_dim=action_dim, embed_dim=embed_dim, deter=deter, stoch=stoch, units=units
        ).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RSSM: {name}={value!r} must be a positive int")
        if latent == "categorical" and classes < 2:
            raise ValueError(f"RSSM: classes={classes} must be >= 2 for categorical latents")
        self.latent: Latent = latent
        self.action_dim, self.embed_dim = action_dim, embed_dim
        self.deter_dim, self.groups = deter, stoch
        self.classes = classes if latent == "categorical" else 0
        self.min_std, self.unimix, self.initial_kind = min_std, unimix, initial
        self.stoch_dim = stoch * classes if latent == "categorical" else stoch
        self.stats_dim = stoch * classes if latent == "categorical" else 2 * stoch
        self.feat_dim = deter + self.stoch_dim
        self._act = make_act(act)

        def norm_layer() -> nn.Module:
            return nn.LayerNorm(units, eps=_NORM_EPS) if norm else nn.Identity()

        # Input layer split into its stoch and action halves (the latter precomputable over T).
        self._img_in_stoch = nn.Linear(self.stoch_dim, units, bias=False)
        self._img_in_action = nn.Linear(action_dim, units)
        self._img_in_norm = norm_layer()
        self._gru = make_gru(gru, units, deter, layers=gru_layers, blocks=gru_blocks, norm=norm)
        self._prior = MLP(deter, self.stats_dim, units=units, layers=1, act=act, norm=norm)
        # Posterior layer on concat(h, embed), split so that the embed half runs over all T at once.
        self._obs_in_deter = nn.Linear(deter, units, bias=False)
        self._obs_in_embed = nn.Linear(embed_dim, units)
        self._obs_norm = norm_layer()
        self._obs_out = nn.Linear(units, self.stats_dim)
        if initial == "learned":
            self._initial_deter = nn.Parameter(torch.zeros(deter))
        self._compiled_prior_step: Callable[..., tuple[Tensor, Tensor, Tensor]] | None = None

    def _action_in(self, action: Tensor) -> Tensor:
        """The action half of the input layer, after the optional ``action_clip``."""
        if self.action_clip > 0:
            scale = self.action_clip / action.detach().abs().clamp(min=self.action_clip)
            action = action * scale
        return self._img_in_action(action)

    # ----------------------------------------------------------------------------- distributions
    def dist(self, stats: Tensor) -> Normal | OneHotCategorical:
        """The latent distribution of ``stats`` [..., stats dim]; batch shape [...].

        Gaussian: ``Normal(mean, std, event_dims=1)``; categorical: a product of ``stoch``
        categoricals ``OneHotCategorical(logits [..., S, C], unimix, event_dims=1)``.
        """
        if self.latent == "gaussian":
            mean, std = stats.chunk(2, -1)
            return Normal(mean, std, event_dims=1)
        return OneHotCategorical(
            stats.unflatten(-1, (self.groups, self.classes)), unimix=self.unimix, event_dims=1
        )

    def _stats(self, raw: Tensor) -> Tensor:
        """Raw layer output -> stored stats (Gaussian std through softplus + min_std)."""
        if self.latent == "gaussian":
            mean, std = raw.chunk(2, -1)
            return torch.cat([mean, F.softplus(std) + self.min_std], -1)
        return raw

    def _sample(self, stats: Tensor) -> Tensor:
        sample = self.dist(stats).sample()
        return sample if self.latent == "gaussian" else sample.flatten(-2)

    def _mode(self, stats: Tensor) -> Tensor:
        mode = self.dist(stats).mode()
        return mode if self.latent == "gaussian" else mode.flatten(-2)

    # ----------------------------------------------------------------------------- steps
    def _core(self, deter: Tensor, stoch: Tensor, action_proj: Tensor) -> Tensor:
        """``h_t`` [N, D] from ``h_{t-1}``, ``z_{t-1}`` and the projected action [N, units]."""
        x = self._act(self._img_in_norm(self._img_in_stoch(stoch) + action_proj))
        return self._gru(x, deter)

    def _post_stats(self, deter: Tensor, embed_proj: Tensor) -> Tensor:
        x = self._act(self._obs_norm(self._obs_in_deter(deter) + embed_proj))
        return self._stats(self._obs_out(x))

    def _prior_stats(self, deter: Tensor) -> Tensor:
        return self._stats(self._prior(deter))

    def _prior_step(
        self, deter: Tensor, stoch: Tensor, action_proj: Tensor, sample: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The body of every prior step (``img_step``, ``imagine``): ``(deter, stoch, stats)`` of
        ``s_{t+1}`` from ``h_t``, ``z_t`` and the projected action; compiled by
        :meth:`compile_prior_step`."""
        if self._compiled_prior_step is not None:
            return self._compiled_prior_step(deter, stoch, action_proj, sample)
        return self._prior_step_eager(deter, stoch, action_proj, sample)

    def _prior_step_eager(
        self, deter: Tensor, stoch: Tensor, action_proj: Tensor, sample: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        deter = self._core(deter, stoch, action_proj)
        stats = self._prior_stats(deter)
        return deter, (self._sample if sample else self._mode)(stats), stats

    def compile_prior_step(self) -> None:
        """Compile the prior step with ``torch.compile`` (in place; the state dict is unchanged).

        One graph covers the input layer, the GRU core, the prior MLP and the sample, so the
        elementwise work between the matmuls is fused. Every rollout (``img_step``, ``imagine``:
        CEM candidates, actor-critic imagination, open-loop videos) then runs it. The first call
        per input shape compiles (seconds; on the CPU it needs a C++ compiler). Meant for GPUs,
        where a rollout step is launch-bound; on the 2-core CPU planner it gained nothing
        measurable (docs/results.md).
        """
        self._compiled_prior_step = torch.compile(self._prior_step_eager)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # a compiled function does not pickle or deep-copy
        return {**state, "_compiled_prior_step": None}

    def _initial_one(self) -> RSSMState:
        """The initial state with batch shape [1] (differentiable when learned)."""
        weight = self._obs_out.weight
        if self.initial_kind == "learned":
            deter = torch.tanh(self._initial_deter).unsqueeze(0)
            stats = self._prior_stats(deter)
            return RSSMState(deter, self._mode(stats), stats)
        deter = weight.new_zeros(1, self.deter_dim)
        stoch = weight.new_zeros(1, self.stoch_dim)
        if self.latent == "gaussian":  # stats of N(0, 1), so that dist(initial.stats) is valid
            stats = torch.cat([stoch, torch.ones_like(stoch)], -1)
        else:  # uniform logits
            stats = weight.new_zeros(1, self.stats_dim)
        return RSSMState(deter, stoch, stats)

    def initial(self, batch_size: int) -> RSSMState:
        """Initial state with batch shape [batch_size] (zeros, or learned as in DreamerV3)."""
        return self._initial_one().map(lambda x: x.expand(batch_size, x.shape[-1]))

    def img_step(self, state: RSSMState, action: Tensor) -> RSSMState:
        """One prior step: ``h' = f(h, z, action)``, ``z' ~ p(h')``.

        Args:
            state: [N] state.
            action: [N, A] action taken in ``state``.

        Returns:
            Prior state [N].
        """
        return RSSMState(*self._prior_step(state.deter, state.stoch, self._action_in(action), True))

    def obs_step(
        self, state: RSSMState, prev_action: Tensor, embed: Tensor, is_first: Tensor
    ) -> tuple[RSSMState, RSSMState]:
        """One filtering step, e.g. while acting; resets where ``is_first``.

        Args:
            state: previous posterior [N] (or ``initial(N)``).
            prev_action: [N, A] action taken after the previous observation.
            embed: [N, E] embedding of the new observation.
            is_first: [N] bool/float, true where the new observation starts an episode.

        Returns:
            ``(posterior, prior)``, each [N].
        """
        first = is_first.bool()
        state = state.where(first, self._initial_one())
        prev_action = prev_action.masked_fill(first.unsqueeze(-1), 0.0)
        deter = self._core(state.deter, state.stoch, self._action_in(prev_action))
        post_stats = self._post_stats(deter, self._obs_in_embed(embed))
        prior_stats = self._prior_stats(deter)
        posterior = RSSMState(deter, self._sample(post_stats), post_stats)
        return posterior, RSSMState(deter, self._sample(prior_stats), prior_stats)

    def observe(
        self,
        state: RSSMState | None,
        embed: Tensor,
        prev_action: Tensor,
        is_first: Tensor,
    ) -> tuple[RSSMState, RSSMState]:
        """Filter a batch of sequences.

        Args:
            state: state before the first row [B] (e.g. ``last_state`` of the previous chunk), or
                None for the initial state. Ignored for rows where ``is_first`` is set.
            embed: [B, T, E] observation embeddings.
            prev_action: [B, T, A] action taken before each row (DESIGN §3); zeroed here at
                ``is_first``.
            is_first: [B, T] bool/float episode starts.

        Returns:
            ``(posterior, prior)``, each an :class:`RSSMState` with fields [B, T, ...]. Both share
            ``deter``; the prior's ``stoch`` is a sample of ``p(h_t)``.
        """
        B, T = is_first.shape
        self._check_sequence(embed, prev_action, B, T)
        if state is None:
            state = self.initial(B)
        init = self._initial_one()
        first = is_first.bool()
        prev_action = prev_action.masked_fill(first.unsqueeze(-1), 0.0)
        # Time-major, precomputed halves of the input and posterior layers: [T, B, units].
        action_proj = self._action_in(prev_action.transpose(0, 1))
        embed_proj = self._obs_in_embed(embed.transpose(0, 1))
        first_tm = first.t().unsqueeze(-1)
        deter, stoch = state.deter, state.stoch
        deters, stochs, stats = [], [], []
        for t in range(T):
            deter = torch.where(first_tm[t], init.deter, deter)
            stoch = torch.where(first_tm[t], init.stoch, stoch)
            deter = self._core(deter, stoch, action_proj[t])
            post_stats = self._post_stats(deter, embed_proj[t])
            stoch = self._sample(post_stats)
            deters.append(deter)
            stochs.append(stoch)
            stats.append(post_stats)
        deter_bt = torch.stack(deters, 1)
        posterior = RSSMState(deter_bt, torch.stack(stochs, 1), torch.stack(stats, 1))
        prior_stats = self._prior_stats(deter_bt)  # all [B, T] at once
        return posterior, RSSMState(deter_bt, self._sample(prior_stats), prior_stats)

    def imagine(
        self,
        state: RSSMState,
        policy_or_actions: Policy | Tensor,
        horizon: int | None = None,
        *,
        sample: bool = True,
    ) -> tuple[RSSMState, Tensor]:
        """Roll the prior forward: the one rollout path (actor-critic, CEM, open-loop video, latent
        overshooting), stacked; :meth:`rollout` gives the same steps one at a time.

        ``s_0 = state``; ``a_i = policy(s_i)`` or ``actions[:, i]``; ``s_{i+1} = img_step(s_i,
        a_i)`` for ``i = 0 .. H-1``. Nothing is detached here: detach the start state and/or the
        policy's actions in the caller as the algorithm requires (e.g. Dreamer V1 backpropagates
        through the dynamics, REINFORCE does not).

        Args:
            state: start state with one batch dim [N] (use ``state.reshape(-1)`` for [B, T]).
            policy_or_actions: ``policy(state [N]) -> action [N, A]``, or actions [N, H, A].
            horizon: H; defaults to ``actions.shape[1]`` for an action tensor, required for a
                policy.
            sample: draw each ``z`` from the prior (training, CEM); False takes its mode, the
                single most likely prediction (open-loop scoring).

        Returns:
            ``(states [N, H+1], actions [N, H, A])``: ``states.at((slice(None), 0))`` is the start,
            and ``actions[:, i]`` is the action taken in ``states[:, i]``.
        """
        start, actions, policy, horizon = self._rollout_inputs(state, policy_or_actions, horizon)
        states, taken = [start], []
        for action, nxt in self._steps(start, actions, policy, horizon, sample):
            taken.append(action)
            states.append(nxt)
        if actions is None:
            N = start.batch_shape[0]
            actions = (
                torch.stack(taken, 1) if taken else start.deter.new_zeros(N, 0, self.action_dim)
            )
        return RSSMState.stack(states, 1), actions

    def rollout(
        self,
        state: RSSMState,
        policy_or_actions: Policy | Tensor,
        horizon: int | None = None,
        *,
        sample: bool = True,
    ) -> Iterator[tuple[Tensor, RSSMState]]:
        """:meth:`imagine` one step at a time, unstacked: yields ``(a_i, s_{i+1})`` for ``i = 0 ..
        H-1``, e.g. to score each state as it comes (CEM). Arguments are checked at the call."""
        start, actions, policy, horizon = self._rollout_inputs(state, policy_or_actions, horizon)
        return self._steps(start, actions, policy, horizon, sample)

    def _rollout_inputs(
        self, state: RSSMState, policy_or_actions: Policy | Tensor, horizon: int | None
    ) -> tuple[RSSMState, Tensor | None, Policy | None, int]:
        """Checked ``(contiguous start, actions or None, policy or None, horizon)``."""
        if len(state.batch_shape) != 1:
            raise ValueError(
                f"imagine: start state must have one batch dim [N], got batch shape "
                f"{tuple(state.batch_shape)}; flatten it with state.reshape(-1)"
            )
        N = state.batch_shape[0]
        state = state.map(Tensor.contiguous)  # e.g. posterior.at((slice(None), -1)) is strided
        if isinstance(policy_or_actions, Tensor):
            actions, policy = policy_or_actions, None
            horizon = actions.shape[1] if horizon is None and actions.dim() == 3 else horizon
            if actions.shape != (N, horizon, self.action_dim):
                raise ValueError(
                    f"imagine: actions have shape {tuple(actions.shape)}, expected "
                    f"[N={N}, H={horizon}, A={self.action_dim}]"
                )
        elif callable(policy_or_actions):
            if horizon is None:
                raise ValueError("imagine: horizon is required when a policy is given")
            actions, policy = None, policy_or_actions
        else:
            raise TypeError(
                f"imagine: policy_or_actions must be a callable or a Tensor [N, H, A], got "
                f"{type(policy_or_actions).__name__}"
            )
        if horizon < 0:
            raise ValueError(f"imagine: horizon={horizon} must be >= 0")
        return state, actions, policy, horizon

    def _steps(
        self, state: RSSMState, actions: Tensor | None, policy: Policy | None, horizon: int,
        sample: bool,
    ) -> Iterator[tuple[Tensor, RSSMState]]:  # fmt: skip
        N = state.batch_shape[0]
        if actions is not None and horizon:
            action_proj = self._action_in(actions.transpose(0, 1))  # [H, N, units], one matmul
        for i in range(horizon):
            if policy is None:
                action, proj = actions[:, i], action_proj[i]
            else:
                action = policy(state)
                if i == 0 and action.shape != (N, self.action_dim):
                    raise ValueError(
                        f"imagine: policy returned shape {tuple(action.shape)}, expected "
                        f"[N={N}, A={self.action_dim}]"
                    )
                proj = self._action_in(action)
            state = RSSMState(*self._prior_step(state.deter, state.stoch, proj, sample))
            yield action, state

    # ----------------------------------------------------------------------------- losses
    def kl_loss(
        self,
        posterior: RSSMState,
        prior: RSSMState,
        *,
        scheme: KLScheme = "dyn_rep",
        free_nats: float = 1.0,
        balance: float = 0.8,
    ) -> dict[str, Tensor]:
        """KL regulariser of the posterior towards the prior, per step.

        All KLs are summed over latent dims (and categorical groups), then clipped per step:

        - ``"free_nats"`` (PlaNet, Dreamer V1): ``kl = max(KL(post || prior), free_nats)``.
        - ``"balance"`` (DreamerV2 eq. 3): ``kl = balance * max(KL(sg(post) || prior), free) +
          (1 - balance) * max(KL(post || sg(prior)), free)``; ``balance = 0.8`` trains the prior
          4x faster than the posterior.
        - ``"dyn_rep"`` (DreamerV3 eq. 5, free bits): ``dyn = max(free, KL(sg(post) || prior))``
          and ``rep = max(free, KL(post || sg(prior)))``. The 0.5 / 0.1 weights are *not* applied
          here: they are the ``dyn`` / ``rep`` entries of the world model's loss scales.

        Args:
            posterior, prior: states with the same batch shape [B, T].
            scheme: which of the schemes above.
            free_nats: clip threshold in nats (0 disables clipping).
            balance: prior weight of ``"balance"``, in [0, 1].

        Returns:
            The loss terms (``{"kl"}`` or ``{"dyn", "rep"}``), each [B, T], plus ``"kl_value"``:
            the unclipped, detached ``KL(post || prior)`` [B, T] for metrics.
        """
        if scheme not in ("free_nats", "balance", "dyn_rep"):
            raise ValueError(f"kl_loss: scheme={scheme!r}; use 'free_nats', 'balance' or 'dyn_rep'")
        if free_nats < 0 or not 0.0 <= balance <= 1.0:
            raise ValueError(
                f"kl_loss: need free_nats >= 0 and 0 <= balance <= 1, got {free_nats}, {balance}"
            )
        if scheme == "free_nats":
            kl = self.dist(posterior.stats).kl(self.dist(prior.stats))
            return {"kl": kl.clamp(min=free_nats), "kl_value": kl.detach()}
        dyn = self.dist(posterior.stats.detach()).kl(self.dist(prior.stats))
        rep = self.dist(posterior.stats).kl(self.dist(prior.stats.detach()))
        value = dyn.detach()
        dyn, rep = dyn.clamp(min=free_nats), rep.clamp(min=free_nats)
        if scheme == "balance":
            return {"kl": balance * dyn + (1.0 - balance) * rep, "kl_value": value}
        return {"dyn": dyn, "rep": rep, "kl_value": value}

    # ----------------------------------------------------------------------------- checks
    def _check_sequence(self, embed: Tensor, prev_action: Tensor, B: int, T: int) -> None:
        if embed.shape != (B, T, self.embed_dim):
            raise ValueError(
                f"observe: embed has shape {tuple(embed.shape)}, expected "
                f"[B={B}, T={T}, E={self.embed_dim}] (is_first is [B, T])"
            )
        if prev_action.shape != (B, T, self.action_dim):
            raise ValueError(
                f"observe: prev_action has shape {tuple(prev_action.shape)}, expected "
                f"[B={B}, T={T}, A={self.action_dim}]"
            )


def imagine(
    rssm: RSSM,
    start: RSSMState,
    policy_or_actions: Policy | Tensor,
    horizon: int | None = None,
    *,
    sample: bool = True,
) -> tuple[RSSMState, Tensor]:
    """Module-level alias of :meth:`RSSM.imagine` (``rssm.models.imagine``)."""
    return rssm.imagine(start, policy_or_actions, horizon, sample=sample)


def _check_options(*, latent: str, initial: str) -> None:
    if latent not in ("gaussian", "categorical"):
        raise ValueError(f"RSSM: latent={latent!r}; use 'gaussian' or 'categorical'")
    if initial not in ("zeros", "learned"):
        raise ValueError(f"RSSM: initial={initial!r}; use 'zeros' or 'learned'")
