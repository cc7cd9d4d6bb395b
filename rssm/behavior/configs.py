"""Settings of the actor-critic (:class:`ActorCriticConfig`), apart from the torch modules that
use them so that configs never import torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rssm.kinds import Activation, ActorGrad, ContinuousDist, Init

__all__ = ["ActorConfig", "ActorCriticConfig", "CriticConfig"]


@dataclass
class ActorConfig:
    """The actor network and its action distribution.

    Attributes:
        units, layers, act, norm: the MLP trunk.
        dist_cont: continuous actions: ``bounded_normal`` (V3: mean ``tanh``, std in
            [min_std, max_std] via a sigmoid) or ``tanh_normal`` (V1: ``tanh`` of a Normal with
            mean ``5 tanh(x / 5)`` and std ``softplus(x + init_std') + min_std``).
        min_std, max_std: bounds of the std (``max_std`` only for ``bounded_normal``).
        init_std: initial std of ``tanh_normal`` before squashing (V1: 5).
        unimix: uniform mixture of the one-hot actor (discrete actions).
        outscale: scales the output layer's initial weights (V3: 1.0).
    """

    units: int = 512
    layers: int = 2
    act: Activation = "silu"
    norm: bool = True
    dist_cont: ContinuousDist = "bounded_normal"
    min_std: float = 0.1
    max_std: float = 1.0
    init_std: float = 5.0
    unimix: float = 0.01
    outscale: float = 1.0


@dataclass
class CriticConfig:
    """The critic head: ``twohot`` (symlog two-hot, V3) or ``normal`` (unit-variance Gaussian
    regression, V1/V2) or ``mse``; ``outscale=0`` zero-initialises the output layer (V3)."""

    dist: Literal["twohot", "normal", "mse", "symlog_mse"] = "twohot"
    units: int = 512
    layers: int = 2
    act: Activation = "silu"
    norm: bool = True
    bins: int = 255
    outscale: float = 0.0


@dataclass
class ActorCriticConfig:
    """Everything that defines the actor-critic (defaults: DreamerV3, REFERENCE.md).

    Attributes:
        actor, critic: the networks.
        horizon: H, imagined steps from each start state.
        imag_last: imagine only from the last this many posteriors of each replayed sequence
            (0: from all B*T of them, the papers' setting); fewer starts make the actor-critic
            update cheaper in proportion.
        discount: γ (V3: 1 - 1/333); lam: λ of the returns.
        actor_grad_cont, actor_grad_disc: actor gradient for continuous / discrete actions.
        actor_grad_mix: weight of the dynamics term for ``mix`` (1 - weight on REINFORCE).
        dynamics_baseline: the dynamics term maximises the advantage ``R_t - V(s_t)``, with the
            gradient through ``V(s_t)`` (V3's released code), instead of ``R_t`` alone (V1, V2).
        imag_cont: the continuation of imagined states: the continue head's ``mode`` (0 or 1,
            V3's released code; no gradient flows through it) or its ``mean`` probability (V2).
        init: ``fan_avg`` re-initialises the actor and critic as V3's released code does
            (:func:`~rssm.nn.layers.init_fan_avg_`); ``torch`` keeps torch's default (all
            presets for now: docs/paper_deviations.md says why).
        entropy: scale of the actor's entropy bonus (V3: 3e-4 with normalised returns).
        return_norm: divide advantages by the percentile range of the returns (V3).
        return_norm_decay, return_norm_low, return_norm_high, return_norm_min: its EMA decay,
            percentiles and the floor of the scale (V3: 0.99, 5, 95, 1).
        slow_critic_rate: EMA fraction of the slow critic per refresh (V3: 0.02; V2: 1.0).
        slow_critic_every: refresh the slow critic every this many updates (V2: 100).
        slow_target: bootstrap the λ-returns with the slow critic (V2) instead of the critic.
        slow_regularizer: scale of the critic loss toward the slow critic's prediction (V3: 1).
    """

    actor: ActorConfig = field(default_factory=ActorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    horizon: int = 15
    imag_last: int = 0
    discount: float = 0.997
    lam: float = 0.95
    actor_grad_cont: ActorGrad = "dynamics"
    actor_grad_disc: ActorGrad = "reinforce"
    actor_grad_mix: float = 0.1
    dynamics_baseline: bool = True
    imag_cont: Literal["mean", "mode"] = "mode"
    init: Init = "torch"
    entropy: float = 3e-4
    return_norm: bool = True
    return_norm_decay: float = 0.99
    return_norm_low: float = 5.0
    return_norm_high: float = 95.0
    return_norm_min: float = 1.0
    slow_critic_rate: float = 0.02
    slow_critic_every: int = 1
    slow_target: bool = False
    slow_regularizer: float = 1.0

    def __post_init__(self) -> None:
        for name in ("horizon", "slow_critic_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ActorCriticConfig.{name} must be a positive int, got {value!r}")
        for name in ("discount", "lam", "actor_grad_mix", "slow_critic_rate", "return_norm_decay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"ActorCriticConfig.{name} must lie in [0, 1], got {value!r}")
        if isinstance(self.imag_last, bool) or not isinstance(self.imag_last, int):
            raise ValueError(f"ActorCriticConfig.imag_last must be an int, got {self.imag_last!r}")
        if self.imag_last < 0:
            raise ValueError(
                f"ActorCriticConfig.imag_last must be >= 0 (0: all starts), got {self.imag_last}"
            )
        if self.imag_cont not in ("mean", "mode"):
            raise ValueError(
                f"ActorCriticConfig.imag_cont={self.imag_cont!r}; use 'mode' (V3) or 'mean' (V2)"
            )
        if self.entropy < 0 or self.slow_regularizer < 0:
            raise ValueError("ActorCriticConfig.entropy and .slow_regularizer must be >= 0")
