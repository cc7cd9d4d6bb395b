"""rssm: world-model reinforcement learning in PyTorch.

The stable public API, re-exported from the subpackages. Importing ``rssm`` imports torch, numpy
and gymnasium, and none of the optional environment suites.
"""

from rssm.behavior import cem, shift_plan
from rssm.data import Driver, RandomPolicy, Replay
from rssm.envs import EnvSpec, env_spec, make_env
from rssm.models import RSSM, WorldModel, WorldModelConfig, imagine, world_model_config
from rssm.types import RSSMState

__version__ = "0.1.0"

__all__ = [
    "RSSM",
    "Driver",
    "EnvSpec",
    "RSSMState",
    "RandomPolicy",
    "Replay",
    "WorldModel",
    "WorldModelConfig",
    "cem",
    "env_spec",
    "imagine",
    "make_env",
    "shift_plan",
    "world_model_config",
]
