"""Behaviour: how an agent chooses actions from a learned model (planning, actor-critic)."""

from rssm.behavior.actor_critic import (
    Actor,
    ActorConfig,
    ActorCritic,
    ActorCriticConfig,
    ActorCriticLoss,
    CriticConfig,
    Imagination,
)
from rssm.behavior.planner import CEMResult, cem, cem_with_info, shift_plan
from rssm.behavior.returns import ReturnNormalizer, discount_weights, ema_update, lambda_return

__all__ = [
    "Actor",
    "ActorConfig",
    "ActorCritic",
    "ActorCriticConfig",
    "ActorCriticLoss",
    "CriticConfig",
    "Imagination",
    "CEMResult",
    "ReturnNormalizer",
    "cem",
    "cem_with_info",
    "discount_weights",
    "ema_update",
    "lambda_return",
    "shift_plan",
]
