"""Data collection and replay: the environment driver and sequence replay."""

from rssm.data.driver import Driver, RandomPolicy, record_episodes
from rssm.data.replay import Replay, format_bytes

__all__ = ["Driver", "RandomPolicy", "Replay", "format_bytes", "record_episodes"]
