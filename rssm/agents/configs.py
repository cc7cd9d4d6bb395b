"""Settings of the agents (:class:`DreamerConfig`, :class:`PlanetConfig`,
:class:`WorldModelAgentConfig`), apart from the torch
modules that use them so that configs never import torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from rssm.behavior.configs import ActorCriticConfig

__all__ = ["DreamerConfig", "PlanetConfig", "WorldModelAgentConfig"]


@dataclass
class DreamerConfig:
    """Optimisers, exploration and the actor-critic of :class:`DreamerAgent` (defaults: V3).

    Attributes:
        actor_critic: see :class:`~rssm.behavior.ActorCriticConfig`.
        model_lr, model_eps, model_clip: Adam of the world model (clip: global grad norm).
        actor_lr, actor_eps, actor_clip: Adam of the actor.
        critic_lr, critic_eps, critic_clip: Adam of the critic.
        expl_noise: exploring only: std of Gaussian noise added to continuous actions (V1: 0.3),
            or the probability of a uniformly random one-hot action for discrete ones.
    """

    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    model_lr: float = 1e-4
    model_eps: float = 1e-8
    model_clip: float = 1000.0
    actor_lr: float = 3e-5
    actor_eps: float = 1e-5
    actor_clip: float = 100.0
    critic_lr: float = 3e-5
    critic_eps: float = 1e-5
    critic_clip: float = 100.0
    expl_noise: float = 0.0

    def __post_init__(self) -> None:
        positive = ("model_lr", "model_clip", "actor_lr", "actor_clip", "critic_lr", "critic_clip")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"DreamerConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("model_eps", "actor_eps", "critic_eps", "expl_noise"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"DreamerConfig.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass
class PlanetConfig:
    """Planner and optimiser settings of :class:`PlanetAgent` (defaults: PlaNet, REFERENCE.md).

    Free nats, 5-bit images and the model sizes live in the world-model preset (``planet``).

    Attributes:
        horizon: H, planning horizon in (action-repeated) env steps.
        candidates: K, action sequences sampled per CEM iteration and environment.
        elites: top sequences the CEM distribution is refit on.
        iterations: CEM refits per environment step.
        init_std: std of the initial CEM distribution (mean 0, or the shifted plan).
        warm_start: start each plan from the previous plan shifted by one step (paper: off).
        expl_noise: std of the Gaussian noise added to the action in ``explore`` mode.
        lr, eps: Adam learning rate and epsilon of the world model.
        clip: global gradient-norm clip of the world model.
    """

    horizon: int = 12
    candidates: int = 1000
    elites: int = 100
    iterations: int = 10
    init_std: float = 1.0
    warm_start: bool = False
    expl_noise: float = 0.3
    lr: float = 1e-3
    eps: float = 1e-4
    clip: float = 1000.0

    def __post_init__(self) -> None:
        for name in ("horizon", "candidates", "elites", "iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PlanetConfig.{name} must be a positive int, got {value!r}")
        if self.elites > self.candidates:
            raise ValueError(
                f"PlanetConfig.elites ({self.elites}) must be <= candidates ({self.candidates})"
            )
        for name in ("init_std", "expl_noise", "lr", "eps", "clip"):
            value = getattr(self, name)
            if not value >= 0 or (name in ("lr", "clip") and value == 0):
                raise ValueError(f"PlanetConfig.{name} must be positive, got {value!r}")


@dataclass
class WorldModelAgentConfig:
    """The optimiser of the world-model-only agent (``agent: world_model``; defaults: the
    ``rssm world-model`` job's).

    Attributes:
        lr, eps: Adam learning rate and epsilon.
        clip: global gradient-norm clip.
    """

    lr: float = 2e-3
    eps: float = 1e-6
    clip: float = 100.0

    def __post_init__(self) -> None:
        for name in ("lr", "clip"):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"WorldModelAgentConfig.{name} must be > 0, got {getattr(self, name)!r}"
                )
        if not self.eps >= 0:
            raise ValueError(f"WorldModelAgentConfig.eps must be >= 0, got {self.eps!r}")
