"""Schedules for the training loop: when to train, evaluate, log and checkpoint.

All schedules take the global environment step (an ``int`` that only grows, possibly by more than
one per call: several environments, action repeat) and keep only plain ints and bools as state, so
``state_dict()`` survives ``torch.save``/``torch.load(weights_only=True)`` and a resumed run fires
exactly where an uninterrupted one would.
"""

from __future__ import annotations

import math
import operator
from fractions import Fraction
from typing import Any

__all__ = ["Every", "Once", "Ratio", "Until", "updates_per_step"]

# A float ratio such as 1/3 is read as the nearest fraction with a denominator up to this bound,
# so integer arithmetic keeps updates/steps exact for ever (no float drift over 10^8 steps).
_MAX_DENOMINATOR = 1_000_000


def _as_step(step: Any, owner: str) -> int:
    if isinstance(step, bool):
        raise TypeError(f"{owner}: step must be an int, got bool {step!r}")
    try:
        return operator.index(step)
    except TypeError:
        raise TypeError(
            f"{owner}: step must be an int (the environment step), got {type(step).__name__} "
            f"{step!r}; pass int(step)"
        ) from None


def _check_forward(owner: str, last: int | None, step: int) -> None:
    if last is not None and step < last:
        raise ValueError(
            f"{owner}: step went backwards from {last} to {step}; the step counter must only grow "
            "(after a resume, load_state_dict and the step from the same checkpoint)"
        )


class Every:
    """True when the step has crossed a new multiple of ``every`` since the last call.

    Multiples count from step 0: with ``every=1000`` it fires at the first call with a step in
    ``[1000, 2000)``, then in ``[2000, 3000)``, and so on. A jump across several multiples fires
    once (an evaluation is not repeated to catch up).

    Args:
        every: period in steps; ``0`` or ``None`` never fires.
        initial: also fire on the very first call (e.g. evaluate the untrained agent at step 0).
    """

    def __init__(self, every: int | None, *, initial: bool = False) -> None:
        if every is None:
            every = 0
        if isinstance(every, bool) or not isinstance(every, int):
            raise TypeError(f"Every: every must be an int or None, got {every!r}")
        if every < 0:
            raise ValueError(f"Every: every must be >= 0 (0 = never), got {every}")
        self.every = every
        self.initial = initial
        self._last: int | None = None  # step of the previous call

    def __call__(self, step: int) -> bool:
        step = _as_step(step, "Every")
        _check_forward("Every", self._last, step)
        last, self._last = self._last, step
        if not self.every:
            return False
        if last is None:
            return self.initial or step >= self.every
        # No multiple was crossed between the last true call and ``last`` (it would have fired),
        # so comparing against the previous call is the same as comparing against the last true.
        return step // self.every > last // self.every

    def state_dict(self) -> dict[str, Any]:
        """Plain-int state: the step of the last call (``None`` before the first)."""
        return {"last": self._last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._last = None if state["last"] is None else int(state["last"])

    def __repr__(self) -> str:
        return f"Every({self.every}, initial={self.initial})"


class Ratio:
    """How many updates the environment steps since the last call have earned.

    Over any run, ``sum(calls) == initial + floor((step - origin) * ratio)`` exactly, where
    ``origin`` is the step of the first call: the fractional remainder is carried in integer
    arithmetic, so ``updates / steps`` converges to ``ratio`` without drift. ``ratio=0.5`` trains
    once every two env steps; ``ratio=2`` trains twice per env step.

    Args:
        ratio: updates per environment step, ``>= 0``; see :func:`updates_per_step` for
            DreamerV3's ``train_ratio``. A float is read as the nearest fraction with denominator
            up to 10^6 (``1/3`` is exactly one third).
        initial: updates returned by the first call, which only sets the origin.
    """

    def __init__(self, ratio: float, *, initial: int = 0) -> None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float, Fraction)):
            raise TypeError(f"Ratio: ratio must be a number, got {ratio!r}")
        if not math.isfinite(ratio) or ratio < 0:
            raise ValueError(
                f"Ratio: ratio must be finite and >= 0 (updates per env step), got {ratio}"
            )
        if initial < 0:
            raise ValueError(f"Ratio: initial must be >= 0, got {initial}")
        fraction = Fraction(ratio).limit_denominator(_MAX_DENOMINATOR)
        self.ratio = float(ratio)
        self.initial = int(initial)
        self._num, self._den = fraction.numerator, fraction.denominator
        self._last: int | None = None  # step of the previous call
        self._carry = 0  # earned but not yet returned, in units of 1 / self._den; < self._den

    def __call__(self, step: int) -> int:
        step = _as_step(step, "Ratio")
        _check_forward("Ratio", self._last, step)
        if self._last is None:
            self._last = step
            return self.initial
        updates, self._carry = divmod(self._carry + (step - self._last) * self._num, self._den)
        self._last = step
        return updates

    def state_dict(self) -> dict[str, Any]:
        """Plain-int state: last step and the carried fraction ``carry / denominator``."""
        return {"last": self._last, "carry": self._carry, "denominator": self._den}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores the state; a different ``ratio`` on resume keeps the carried fraction."""
        self._last = None if state["last"] is None else int(state["last"])
        carry, den = int(state["carry"]), int(state["denominator"])
        self._carry = carry * self._den // den  # rescale when the ratio (and denominator) changed

    def __repr__(self) -> str:
        return f"Ratio({self.ratio}, initial={self.initial})"


class Once:
    """True on the first call only (e.g. log the config or a model summary once)."""

    def __init__(self) -> None:
        self._done = False

    def __call__(self, step: int | None = None) -> bool:
        done, self._done = self._done, True
        return not done

    def state_dict(self) -> dict[str, Any]:
        return {"done": self._done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._done = bool(state["done"])


class Until:
    """True while ``step < limit``; ``limit=None`` is always true. Stateless.

    Args:
        limit: first step at which it turns false (e.g. ``steps`` of the run).
    """

    def __init__(self, limit: int | None) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise TypeError(f"Until: limit must be an int or None, got {limit!r}")
        self.limit = limit

    def __call__(self, step: int) -> bool:
        step = _as_step(step, "Until")
        return self.limit is None or step < self.limit

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Stateless: nothing to restore."""

    def __repr__(self) -> str:
        return f"Until({self.limit})"


def updates_per_step(train_ratio: float, batch_size: int, length: int) -> float:
    """Gradient updates per environment step for DreamerV3's ``train_ratio``.

    ``train_ratio`` counts replayed time steps per environment step; one update replays
    ``batch_size * length`` of them, so e.g. ``512 / (16 * 64) = 0.5`` updates per env step.
    """
    if not math.isfinite(train_ratio) or train_ratio < 0:
        raise ValueError(
            f"updates_per_step: train_ratio must be finite and >= 0, got {train_ratio}"
        )
    if batch_size <= 0 or length <= 0:
        raise ValueError(
            f"updates_per_step: batch_size and length must be > 0, got {batch_size} and {length}"
        )
    return train_ratio / (batch_size * length)
