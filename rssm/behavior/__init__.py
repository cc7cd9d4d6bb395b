"""Behaviour: how an agent chooses actions from a learned model (planning, actor-critic)."""

from rssm.behavior.planner import CEMResult, cem, cem_with_info, shift_plan

__all__ = ["CEMResult", "cem", "cem_with_info", "shift_plan"]
