"""Running things: world-model training runs, schedules, logging, checkpoints and videos."""

from rssm.run.checkpoint import load_checkpoint, save_checkpoint
from rssm.run.logger import Logger, read_metrics
from rssm.run.when import Every, Once, Ratio, Until, updates_per_step
from rssm.run.world_model import (
    OpenLoopScore,
    WorldModelRun,
    collect_episodes,
    open_loop_score,
    tiny_config,
    train_world_model,
)

__all__ = [
    "Every",
    "Logger",
    "Once",
    "OpenLoopScore",
    "Ratio",
    "Until",
    "WorldModelRun",
    "collect_episodes",
    "load_checkpoint",
    "open_loop_score",
    "read_metrics",
    "save_checkpoint",
    "tiny_config",
    "train_world_model",
    "updates_per_step",
]
