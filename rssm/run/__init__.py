"""Running things: world-model training runs, checkpoints and videos."""

from rssm.run.checkpoint import load_checkpoint, save_checkpoint
from rssm.run.world_model import (
    OpenLoopScore,
    WorldModelRun,
    collect_episodes,
    open_loop_score,
    tiny_config,
    train_world_model,
)

__all__ = [
    "OpenLoopScore",
    "WorldModelRun",
    "collect_episodes",
    "load_checkpoint",
    "open_loop_score",
    "save_checkpoint",
    "tiny_config",
    "train_world_model",
]
