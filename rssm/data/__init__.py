"""Data collection and replay: the environment driver and sequence replay."""

from rssm.data.driver import Driver, EnvError, RandomPolicy, record_episodes
from rssm.data.replay import Replay, format_bytes

__all__ = ["Driver", "EnvError", "RandomPolicy", "Replay", "format_bytes", "record_episodes"]
