"""Data collection and replay: the environment driver and sequence replay."""

from rssm._lazy import attach

_EXPORTS = {
    "Driver": "rssm.data.driver",
    "EnvError": "rssm.data.driver",
    "RandomPolicy": "rssm.data.collect",
    "Replay": "rssm.data.replay",
    "format_bytes": "rssm.data.replay",
    "record_episodes": "rssm.data.collect",
}
__getattr__, __dir__ = attach(globals(), _EXPORTS)

__all__ = [
    "Driver",
    "EnvError",
    "RandomPolicy",
    "Replay",
    "format_bytes",
    "record_episodes",
]
