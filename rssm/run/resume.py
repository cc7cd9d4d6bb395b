"""Checkpoints of a training run: their files, their contents, and what a resume throws away.

Exact resume: a run killed at any moment (SIGKILL included) and resumed continues exactly as if
it had not been stopped (same metrics, same weights; CPU, fixed seeds). A checkpoint
(:func:`run_state`) holds the agent (weights, optimisers, generators), counters, schedules, the
metric sums since the last log row, the drivers' state, the collection policy's carry (the
agent's latent states), torch's RNG and the replay's layout and sampling state. The replay's
data is read back from its episode files; the steps of unfinished episodes travel in the
checkpoint. Environment state cannot be saved in general (MuJoCo, ALE), so the driver records
the actions of each unfinished episode and a resume replays them from the episode's seeded
reset, checking that the env reaches the saved observation (an env that does not repeat itself
restarts its episode, with a warning naming it). :func:`discard_after` drops the metrics rows,
episode files and checkpoints written after the checkpoint. A checkpoint is not exact
(``exact: False``, warned about on resume: the envs restart their episodes) when it was written
after a second Ctrl-C or a failing env step, or for a driver without seeded resets.

A run directory holds the last ``keep`` checkpoints as ``checkpoint-<env_step>.pt`` and
``checkpoint.pt``, the newest of them (a hard link to it, or a copy where links are not
supported), replaced atomically. Every file is written to a hidden ``*.tmp`` name first and
renamed, so a crash (SIGKILL included) leaves complete checkpoints and at most a stale temporary
file, which nothing here ever reads.

:func:`load_latest_checkpoint` reads ``checkpoint.pt``, or a newer numbered checkpoint (a crash
between writing it and linking ``checkpoint.pt``), or, when ``checkpoint.pt`` is missing or
corrupt, the newest numbered checkpoint that loads. :func:`discard_after` removes what a run wrote
after the checkpoint it resumes from: later metrics rows, later checkpoints, episode files the
checkpoint does not know and stale temporary files.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from rssm import config as config_lib
from rssm.data import Driver, Replay
from rssm.data.episodes import EpisodeLayoutError, list_episodes
from rssm.run.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from rssm.run.logger import truncate_metrics
from rssm.run.run_config import Config

__all__ = [
    "CHECKPOINT_FILE",
    "RunParts",
    "checkpoint_step",
    "discard_after",
    "load_latest_checkpoint",
    "numbered_checkpoints",
    "restore_run_state",
    "run_state",
    "write_checkpoint",
]

CHECKPOINT_FILE = "checkpoint.pt"
_NUMBERED = re.compile(r"^checkpoint-(\d+)\.pt$")


def numbered_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(env_step, path)`` of the ``checkpoint-<env_step>.pt`` files, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = ((_NUMBERED.match(p.name), p) for p in run_dir.iterdir())
    return sorted((int(m[1]), p) for m, p in found if m is not None and p.is_file())


def checkpoint_step(state: dict[str, Any]) -> int:
    """The step of a training checkpoint (agent steps x action repeat x ranks; updates for an
    offline run); -1 without one."""
    counters = state.get("counters")
    if not isinstance(counters, dict):
        return -1
    if counters.get("offline"):
        return int(counters.get("updates", 0))
    steps = int(counters.get("agent_steps", 0)) * int(counters.get("action_repeat", 1))
    return steps * int(counters.get("world", 1))


def write_checkpoint(
    run_dir: str | os.PathLike, step: int, payload: dict[str, Any], *, keep: int
) -> Path:
    """Writes ``checkpoint-<step>.pt``, points ``checkpoint.pt`` at it and deletes all but the
    newest ``keep`` numbered checkpoints; every step is atomic.

    Returns:
        The numbered checkpoint's path.

    Raises:
        CheckpointWriteError: the checkpoint could not be written; nothing was deleted.
    """
    run_dir = Path(run_dir)
    path = save_checkpoint(run_dir / f"checkpoint-{int(step)}.pt", payload)
    _replace_with_link(path, run_dir / CHECKPOINT_FILE)
    for _, old in numbered_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _replace_with_link(source: Path, target: Path) -> None:
    """Atomically makes ``target`` a hard link to ``source`` (a copy if links fail)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(source, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as file:
                os.fsync(file.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_latest_checkpoint(
    run_dir: str | os.PathLike, *, older: bool = False
) -> tuple[Path, dict[str, Any]]:
    """The newest complete checkpoint of a run directory and its contents.

    ``checkpoint.pt`` unless a numbered checkpoint of a later step loads (a crash between
    writing it and linking ``checkpoint.pt``); when ``checkpoint.pt`` is missing or unreadable,
    the numbered checkpoint of the newest step. Checkpoints are written atomically, so an
    unreadable newest one was damaged (or replaced) after the run wrote it: that is an error
    naming the file and the newest older checkpoint that loads, which is used only with
    ``older=True`` (what the run did after it is then done again). A checkpoint that carries
    pickled code is always an error. Temporary files are never read.

    Raises:
        CheckpointNotFoundError: the directory holds no checkpoint.
        CheckpointError: the newest checkpoint cannot be read (its error, plus the older one
            that loads, if any, and the flag that uses it), or no checkpoint loads.
    """
    run_dir = Path(run_dir)
    latest = run_dir / CHECKPOINT_FILE
    candidates = numbered_checkpoints(run_dir)
    error: CheckpointError | None = None
    try:
        state = load_checkpoint(latest)
    except CheckpointNotFoundError:
        state = None
    except UnsafeCheckpointError:
        raise  # a planted file: never replaced by another without the user looking at it
    except CheckpointError as bad:
        state, error = None, bad
    if state is not None:
        newer = [(step, p) for step, p in candidates if step > checkpoint_step(state)]
        for _, path in reversed(newer):  # a crash before checkpoint.pt was linked to it
            try:
                return path, load_checkpoint(path)
            except CheckpointError:
                break  # checkpoint.pt is the newest complete one
        return latest, state
    # checkpoint.pt is missing or unreadable: the newest numbered checkpoint is the step it
    # pointed at (write_checkpoint links it after writing); an even older one needs ``older``.
    skipped: CheckpointError | None = None
    for step, path in reversed(candidates):
        try:
            state = load_checkpoint(path)
        except UnsafeCheckpointError:
            raise
        except CheckpointError as bad:
            skipped = skipped or bad
            continue
        if skipped is None:
            if error is not None:
                warnings.warn(f"{error}; using {path}, the newest numbered one", RuntimeWarning, 2)
            return path, state
        if older:
            warnings.warn(f"{skipped}; resuming from the older {path}", RuntimeWarning, 2)
            return path, state
        raise type(skipped)(
            f"{skipped}. The newest older checkpoint that loads is {path.name} (env step {step}); "
            "`rssm train --resume --older` resumes from it (what the run did after it is then done "
            "again)"
        )
    if skipped is not None or error is not None:
        raise error or skipped  # type: ignore[misc]
    raise CheckpointNotFoundError(
        f"no checkpoint in {run_dir} (neither {CHECKPOINT_FILE} nor checkpoint-<step>.pt): the "
        "run may not have written its first one yet"
    )


def discard_after(
    run_dir: str | os.PathLike | None,
    step: int,
    episode_ids: Iterable[str],
    replay_dir: Path | None,
) -> None:
    """Removes what a run wrote after its checkpoint at ``step``: metrics rows of later steps,
    later numbered checkpoints, episode files in ``replay_dir`` not in ``episode_ids`` and stale
    temporary files (``.checkpoint*.tmp``, ``.metrics*.tmp``, ``replay_dir/.*.tmp``), so that
    the resumed run neither duplicates them nor loads them. ``replay_dir`` None: the episodes
    are not the run's own (an offline run reads them only) and none is touched. ``run_dir``
    None: only the episode files (a data-parallel run's rank other than 0)."""
    known = set(episode_ids)
    for file in list_episodes(replay_dir)[0] if replay_dir is not None else []:
        if file.episode_id not in known:
            file.path.unlink(missing_ok=True)
    stale: list[Path] = []
    if run_dir is not None:
        run_dir = Path(run_dir)
        truncate_metrics(run_dir, step)
        for later, path in numbered_checkpoints(run_dir):
            if later > step:
                path.unlink(missing_ok=True)
        stale += [*run_dir.glob(".checkpoint*.tmp"), *run_dir.glob(".metrics*.tmp")]
    if replay_dir is not None:
        stale += replay_dir.glob(".*.tmp")
    for path in stale:
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------- a training run's state


class _Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Any) -> None: ...


class RunParts(Protocol):
    """What :func:`run_state` saves of a training loop (``rssm.run.train``'s parts)."""

    agent: _Stateful
    replay: Replay
    driver: Driver
    eval_driver: Driver
    counters: Any  # a dataclass of ints with ``env_steps``
    schedules: _Stateful
    stats: _Stateful
    config: Any  # with ``run.device``
    spec: Any  # the env's EnvSpec (``obs_space``: a gymnasium Dict space)
    carry: Any  # the collection policy's carry


def run_state(parts: RunParts, exact: bool) -> dict[str, Any]:
    """A training run's checkpoint contents (the caller adds the config).

    Keys: ``agent`` (weights, optimisers, generators), ``counters``, ``schedules``, ``stats``
    (metric sums since the last log row), ``driver``/``eval_driver`` (reset counts and the
    unfinished episodes' actions), ``carry`` (the collection policy's carry), ``rng`` (torch's
    CPU generator, and the CUDA one of a CUDA run), ``exact``, ``replay`` (the layout and
    sampling state, with the data of steps in no episode file; ``exact`` checkpoints only) and
    ``replay_episode_ids``.

    Args:
        exact: the driver can rebuild its unfinished episodes and the replay has a directory
            (see ``rssm.run.train._exact``), so a resume repeats the run exactly.
    """
    replay = parts.replay.state_dict(data=False) if exact else None
    rng = {"torch": torch.get_rng_state()}
    device = torch.device(parts.config.run.device)
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return _tensors(
        {
            "agent": parts.agent.state_dict(),
            "counters": dataclasses.asdict(parts.counters),
            "schedules": parts.schedules.state_dict(),
            "stats": parts.stats.state_dict(),
            "driver": parts.driver.state_dict(),
            "eval_driver": parts.eval_driver.state_dict(),
            "carry": carry_to_plain(parts.carry) if exact else None,
            "rng": rng,
            "exact": exact,
            "replay": replay,
            "replay_episode_ids": parts.replay.episode_ids,
        }
    )


def restore_run_state(path: Path, state: dict[str, Any], parts: RunParts) -> None:
    """Loads a :func:`run_state` into freshly built parts. For an exact checkpoint the replay is
    rebuilt slot by slot (from its episode files and the unsaved steps in the checkpoint), the
    envs replay their unfinished episodes and the policy's carry is restored; otherwise (or when
    a file is missing) the episodes are loaded into a stream of their own and a warning says
    that the environments restart their episodes (unless the run is finished: resuming it then
    adds nothing)."""
    state = _arrays(state)
    parts.agent.load_state_dict(state["agent"])
    for name, value in state["counters"].items():
        setattr(parts.counters, name, int(value))
    parts.schedules.load_state_dict(state["schedules"])
    torch.set_rng_state(state["rng"]["torch"])
    device = torch.device(parts.config.run.device)
    if "cuda" in state["rng"] and device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    if "stats" in state:  # checkpoints of older versions lack it
        parts.stats.load_state_dict(state["stats"])
    exact = bool(state.get("exact")) and state.get("replay") is not None
    if exact:
        try:
            parts.replay.load_state_dict(state["replay"])
        except EpisodeLayoutError:
            raise  # a foreign file in the run's replay: loading the episodes would fail too
        except (ValueError, OSError) as error:
            exact = False
            warnings.warn(f"{path}: {error}; loading its episodes instead", RuntimeWarning, 3)
    for name in ("driver", "eval_driver"):
        if name in state:
            driver_state = state[name] if exact else {**state[name], "episodes": None}
            getattr(parts, name).load_state_dict(driver_state)
    if exact and state.get("carry") is not None:
        parts.carry = carry_from_plain(state["carry"], device)
    finished = parts.counters.env_steps >= parts.config.run.steps  # resuming it is a no-op
    if not exact and not finished:
        warnings.warn(
            f"{path} was written while episodes were running and cannot rebuild them (a second "
            "Ctrl-C, a failing env, unseeded resets, or an older version): the environments "
            "restart their episodes, so the resumed run does not repeat an uninterrupted one "
            "exactly",
            RuntimeWarning,
            3,
        )
        spaces = parts.spec.obs_space.spaces
        parts.replay.load(
            ids=state["replay_episode_ids"], shapes={k: v.shape for k, v in spaces.items()}
        )


# ------------------------------------------------------------------ plain data for checkpoints


def _tensors(value: Any) -> Any:
    """``value`` with every numpy array turned into a tensor (``weights_only`` loads take
    tensors and plain data, not numpy arrays); :func:`_arrays` undoes it where it matters."""
    if isinstance(value, np.ndarray):
        return {_NUMPY: torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, dict):
        return {key: _tensors(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tensors(item) for item in value]
    return value


def _arrays(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_NUMPY}:
            return value[_NUMPY].numpy()
        return {key: _arrays(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_arrays(item) for item in value]
    return value


_NUMPY = "__numpy__"  # marks a tensor that was a numpy array
_TYPE = "__carry_type__"


def _carry_types() -> dict[str, type]:
    """The NamedTuples a policy carry may be built of, by name."""
    from rssm.agents import DreamerCarry, PlanetCarry
    from rssm.types import RSSMState

    return {cls.__name__: cls for cls in (DreamerCarry, PlanetCarry, RSSMState)}


def carry_to_plain(carry: Any) -> Any:
    """A policy carry (NamedTuples of tensors, None) as nested dicts a safe load accepts."""
    if carry is None or isinstance(carry, torch.Tensor):
        return None if carry is None else carry.detach().cpu().clone()
    if isinstance(carry, tuple) and hasattr(carry, "_fields"):
        name = type(carry).__name__
        if name not in _carry_types():
            raise TypeError(f"cannot checkpoint a policy carry of type {name}")
        fields = {field: carry_to_plain(getattr(carry, field)) for field in carry._fields}
        return {_TYPE: name, **fields}
    raise TypeError(f"cannot checkpoint a policy carry holding a {type(carry).__name__}")


def carry_from_plain(plain: Any, device: torch.device) -> Any:
    """Undoes :func:`carry_to_plain`, with the tensors on ``device``."""
    if plain is None or isinstance(plain, torch.Tensor):
        return None if plain is None else plain.to(device)
    cls = _carry_types()[plain[_TYPE]]
    return cls(**{key: carry_from_plain(v, device) for key, v in plain.items() if key != _TYPE})


# ------------------------------------------------------------------ the run directory

CONFIG_FILE = "config.yaml"
# Keys that may differ between a checkpoint's config and a resumed run (extend or move a run).
RESUMABLE_KEYS = (
    "logdir",
    "run.steps",
    "run.device",
    "run.keep_checkpoints",
    "run.max_minutes",
    "run.threads",
    "replay.storage",  # the held steps are rebuilt from the episode files either way
    "replay.buffer",
)


def check_same_config(saved: Config, config: Config, where: Path) -> None:
    changed = {k: v for k, v in config_lib.diff(saved, config).items() if k not in RESUMABLE_KEYS}
    if changed:
        lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
        raise ValueError(
            f"cannot resume {where}: the requested config differs from the run's in {lines}; "
            f"use the run's config (only {', '.join(RESUMABLE_KEYS)} may change) or another logdir"
        )


def saved_config(path: Path, state: dict[str, Any]) -> Config:
    """The training config a checkpoint carries; a clear error for other checkpoints."""
    hint = "(e.g. one of rssm world-model); resume only runs of rssm train"
    if "agent" not in state or "counters" not in state or "config" not in state:
        raise ValueError(f"checkpoint {path} was not written by rssm train {hint}")
    try:
        return config_lib.from_dict(Config, state["config"])
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"checkpoint {path} was not written by rssm train {hint}: {error}"
        ) from None


def start_run_dir(
    config: Config, run_dir: Path, resume: bool, older: bool = False
) -> tuple[Path, dict[str, Any]] | None:
    """Checks the run directory; returns the checkpoint to resume from (path and contents), or
    None for a fresh run."""
    has_config = (run_dir / CONFIG_FILE).exists()
    if resume and not run_dir.is_dir():
        raise ValueError(
            f"cannot resume {str(run_dir)!r}: the run directory does not exist; check --logdir, "
            "or start a new run without --resume"
        )
    if resume:
        try:
            path, state = load_latest_checkpoint(run_dir, older=older)
        except CheckpointNotFoundError:
            if has_config:
                raise ValueError(
                    f"cannot resume {str(run_dir)!r}: it holds a config.yaml but no checkpoint "
                    "(the run stopped before its first one); delete it or choose another logdir"
                ) from None
        else:
            check_same_config(saved_config(path, state), config, path)
            return path, state  # config.yaml is rewritten once the state is restored
    if has_config or (run_dir / CHECKPOINT_FILE).exists() or numbered_checkpoints(run_dir):
        raise ValueError(
            f"logdir {str(run_dir)!r} already holds a run; pass resume=True (--resume) to continue "
            "it, or choose another logdir"
        )
    config_lib.save(config, run_dir / CONFIG_FILE)
    return None
