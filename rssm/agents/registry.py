"""The agents by name (``config.agent``): ``AGENTS[name](obs_space, action_dim, world_model,
config, *, discrete, seed, device, precision, compile)``."""

from __future__ import annotations

from rssm.agents.base import Agent
from rssm.agents.core import WorldModelAgent
from rssm.agents.dreamer import DreamerAgent
from rssm.agents.planet import PlanetAgent
from rssm.agents.random import RandomAgent

__all__ = ["AGENTS"]

AGENTS: dict[str, type[Agent]] = {
    "dreamer": DreamerAgent,
    "planet": PlanetAgent,
    "random": RandomAgent,
    "world_model": WorldModelAgent,
}
