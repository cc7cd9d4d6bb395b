"""Agents: acting (``policy(carry, obs, mode) -> (carry, action)``) and learning
(``train_step(batch) -> metrics``) composed from the library's parts."""

from rssm.agents.base import Agent, Capabilities, Mode
from rssm.agents.dreamer import DreamerAgent, DreamerCarry, DreamerConfig
from rssm.agents.planet import PlanetAgent, PlanetCarry, PlanetConfig, imagined_return
from rssm.agents.random import RandomAgent

AGENTS: dict[str, type[Agent]] = {
    "dreamer": DreamerAgent,
    "planet": PlanetAgent,
    "random": RandomAgent,
}

__all__ = [
    "AGENTS",
    "Agent",
    "Capabilities",
    "Mode",
    "DreamerAgent",
    "DreamerCarry",
    "DreamerConfig",
    "PlanetAgent",
    "PlanetCarry",
    "PlanetConfig",
    "RandomAgent",
    "imagined_return",
]
