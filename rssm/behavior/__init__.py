"""Behaviour: how an agent chooses actions from a learned model (planning, actor-critic)."""

from rssm._lazy import attach

_EXPORTS = {
    "Actor": "rssm.behavior.actor_critic",
    "ActorConfig": "rssm.behavior.configs",
    "ActorCritic": "rssm.behavior.actor_critic",
    "ActorCriticConfig": "rssm.behavior.configs",
    "ActorCriticLoss": "rssm.behavior.actor_critic",
    "CriticConfig": "rssm.behavior.configs",
    "Imagination": "rssm.behavior.actor_critic",
    "CEMResult": "rssm.behavior.planner",
    "ReturnNormalizer": "rssm.behavior.returns",
    "cem": "rssm.behavior.planner",
    "discount_weights": "rssm.behavior.returns",
    "ema_update": "rssm.behavior.returns",
    "lambda_return": "rssm.behavior.returns",
    "shift_plan": "rssm.behavior.planner",
}
__getattr__, __dir__ = attach(globals(), _EXPORTS)

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
    "discount_weights",
    "ema_update",
    "lambda_return",
    "shift_plan",
]
