"""The contract between :func:`rssm.envs.make_env` and a suite loader, and its shared errors.

A suite is a module (``builtin.py``, ``gym.py``, ``dmc.py``, ``atari.py``) with two functions:

``make(task: str, common: SuiteOptions, **options) -> gymnasium.Env``
    Builds the raw environment of one task. Its observations are a dict of modality keys only
    (``image`` uint8 HWC, ``state`` float32 1-D); its action space is the suite's own
    (``Box`` or ``Discrete``); it enforces ``common.time_limit`` (raw env steps) itself. Options the
    suite accepts are keyword arguments of ``make`` (or of the task factory it dispatches to), so
    :func:`check_options` can name an unknown one.
``list_envs() -> list[str]``
    The task names the suite knows, for error messages and :func:`rssm.envs.list_envs`.

Everything else (no-op starts, action repeat, resize, grayscale, action normalisation, the
``reward``/``is_first``/``is_last``/``is_terminal`` keys) is added by ``make_env`` on top.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np
from gymnasium import spaces


class SuiteOptions(NamedTuple):
    """Options every suite receives from ``make_env`` (already validated).

    Attributes:
        seed: Seed of the first reset, or None for a random one. Suites that draw randomness at
            construction (dm_control) seed it from here; the first ``reset`` is seeded by make_env.
        image_size: (height, width) of the ``image`` key; a suite may render at this size directly,
            otherwise make_env resizes.
        grayscale: Whether the ``image`` key ends with one channel; a suite may produce it natively,
            otherwise make_env converts.
        time_limit: Episode length in raw env steps (before action repeat), or None for the
            suite's default. A time-limit end is a truncation, never a termination.
    """

    seed: int | None
    image_size: tuple[int, int]
    grayscale: bool
    time_limit: int | None


def install_error(package: str, extra: str) -> ImportError:
    """An ImportError that names the missing package and the exact install command."""
    return ImportError(f'{package} is not installed; install it with: pip install "rssm[{extra}]"')


def unknown_name(kind: str, name: str, known: Iterable[str]) -> ValueError:
    """A ValueError for an unknown env name that lists the closest known names (difflib)."""
    known = sorted(set(known))
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f" Closest: {', '.join(close)}." if close else ""
    if len(known) <= 12:
        hint += f" Known: {', '.join(known)}."
    return ValueError(f"unknown {kind} {name!r}.{hint}")


def check_options(fn: Callable, options: dict, where: str) -> None:
    """Raises ValueError naming options that ``fn`` does not accept as keyword arguments.

    Functions with ``**kwargs`` accept everything (the gym suite passes extras to gymnasium.make).
    """
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [
        n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "common"
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for {where}; "
            f"it accepts: {', '.join(accepted) or 'none'} (plus the common options of make_env)"
        )


def check_choice(option: str, value: object, choices: tuple[str, ...]) -> None:
    """Raises ValueError naming ``option`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"option {option}={value!r} is not one of {', '.join(choices)}")


def image_space(height: int, width: int, channels: int = 3) -> spaces.Box:
    """The space of an ``image`` key: uint8, HWC."""
    return spaces.Box(0, 255, (height, width, channels), np.uint8)


def state_space(size: int) -> spaces.Box:
    """The space of a ``state`` key: float32, 1-D."""
    return spaces.Box(-np.inf, np.inf, (size,), np.float32)
