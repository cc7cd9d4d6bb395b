"""When a training run stops: Ctrl-C at a safe point, the wall-clock budget, and a streak of
non-finite updates (used by :mod:`rssm.run.train`)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from rssm.agents.optimizer import NonFiniteError

__all__ = ["Budget", "SafeStop", "check_finite", "deferred_interrupt"]


def check_finite(metrics: dict[str, float], counters: Any, limit: int) -> None:
    """Counts skipped updates (``*_nonfinite`` metrics of the agent), warns at the start of a
    streak and raises :class:`NonFiniteError` when the streak reaches ``limit``."""
    skipped = sorted(k.removesuffix("_nonfinite") for k, v in metrics.items()
                     if k.endswith("_nonfinite") and v > 0)  # fmt: skip
    if not skipped:
        counters.nonfinite_streak = 0
        return
    counters.nonfinite += 1
    counters.nonfinite_streak += 1
    if counters.nonfinite_streak == 1:
        warnings.warn(
            f"update {counters.updates}{_at(counters)}: non-finite loss or "
            f"gradient in {', '.join(skipped)}; the update was skipped",
            RuntimeWarning,
            stacklevel=2,
        )
    if counters.nonfinite_streak >= limit:
        raise NonFiniteError(
            f"stopped at update {counters.updates}{_at(counters)}: {counters.nonfinite_streak} "
            "updates in a "
            f"row had a non-finite loss or gradient ({', '.join(skipped)}); no checkpoint was "
            "written at this step (the run directory keeps what it had). Lower the learning "
            "rates, or raise run.max_nonfinite"
        )


def _at(counters: Any) -> str:
    """`` (env step N)`` of a run that collects; an offline run's steps are its updates."""
    return "" if counters.offline else f" (env step {counters.env_steps})"


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C (SIGINT) only sets a flag, which the loop checks between steps, so the
    interrupt lands at a safe point and never inside a write, a ``__del__`` or a callback (where
    Python would swallow it); a second Ctrl-C interrupts at once. Outside the main thread signals
    cannot be caught, and the flag stays False."""
    requested = [False]
    if threading.current_thread() is not threading.main_thread():
        yield lambda: requested[0]
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if requested[0]:
            raise KeyboardInterrupt
        requested[0] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: requested[0]
    finally:
        signal.signal(signal.SIGINT, previous)


class SafeStop(KeyboardInterrupt):
    """Ctrl-C taken at the loop's safe point (between steps): the checkpoint is exact."""


class Budget:
    """``run.max_minutes`` of wall clock from the start of this invocation."""

    def __init__(self, minutes: float | None) -> None:
        self.deadline = None if minutes is None else time.monotonic() + 60.0 * minutes

    def spent(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline
