"""rssm: world-model reinforcement learning in PyTorch.

The stable public API, re-exported from the subpackages. Each name is imported on first use, so
``import rssm`` (and the command line's ``--help``) imports neither torch nor an environment suite
until something needs it.
"""

from rssm._lazy import attach

__version__ = "0.1.0"

_EXPORTS = {
    "RSSM": "rssm.models",
    "Driver": "rssm.data",
    "EnvSpec": "rssm.envs",
    "RSSMState": "rssm.types",
    "RandomPolicy": "rssm.data",
    "Replay": "rssm.data",
    "WorldModel": "rssm.models",
    "WorldModelConfig": "rssm.models.configs",
    "cem": "rssm.behavior",
    "env_spec": "rssm.envs",
    "imagine": "rssm.models",
    "make_env": "rssm.envs",
    "shift_plan": "rssm.behavior",
    "world_model_config": "rssm.models",
}
__getattr__, __dir__ = attach(globals(), _EXPORTS)

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
