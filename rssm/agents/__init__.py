"""Agents: acting (``policy(carry, obs, mode) -> (carry, action)``) and learning
(``train_step(batch) -> metrics``) composed from the library's parts."""

from rssm._lazy import attach

_EXPORTS = {
    "AGENTS": "rssm.agents.registry",
    "Agent": "rssm.agents.base",
    "Capabilities": "rssm.agents.base",
    "Mode": "rssm.agents.base",
    "DreamerAgent": "rssm.agents.dreamer",
    "DreamerCarry": "rssm.agents.dreamer",
    "DreamerConfig": "rssm.agents.configs",
    "PlanetAgent": "rssm.agents.planet",
    "PlanetCarry": "rssm.agents.planet",
    "PlanetConfig": "rssm.agents.configs",
    "RandomAgent": "rssm.agents.random",
    "WorldModelAgent": "rssm.agents.core",
    "WorldModelAgentConfig": "rssm.agents.configs",
    "imagined_return": "rssm.agents.planet",
}
__getattr__, __dir__ = attach(globals(), _EXPORTS)

__all__ = list(_EXPORTS)
