"""Running things: world-model training runs, schedules, logging, checkpoints and videos."""

from rssm._lazy import attach

_EXPORTS = {
    "Every": "rssm.run.when",
    "Logger": "rssm.run.logger",
    "Once": "rssm.run.when",
    "OpenLoopScore": "rssm.run.world_model",
    "Ratio": "rssm.run.when",
    "Until": "rssm.run.when",
    "WorldModelRun": "rssm.run.world_model",
    "collect_episodes": "rssm.run.world_model",
    "load_checkpoint": "rssm.run.checkpoint",
    "open_loop_score": "rssm.run.world_model",
    "read_metrics": "rssm.run.logger",
    "save_checkpoint": "rssm.run.checkpoint",
    "tiny_config": "rssm.run.world_model",
    "train_world_model": "rssm.run.world_model",
    "updates_per_step": "rssm.run.when",
}
__getattr__, __dir__ = attach(globals(), _EXPORTS)

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
