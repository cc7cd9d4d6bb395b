"""The one way to load a trained run (``rssm eval``, ``rssm dream``, ``rssm report``, the Python
API): its ``config.yaml``, validated, and the agent with the weights of its newest checkpoint."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from rssm import config as config_lib
from rssm.agents import Agent
from rssm.envs import EnvSpec, env_spec
from rssm.run.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    check_compatible,
    load_checkpoint,
)
from rssm.run.resume import (
    CONFIG_FILE,
    checkpoint_step,
    load_latest_checkpoint,
    numbered_checkpoints,
)
from rssm.run.run_config import Config

__all__ = ["LoadedRun", "find_checkpoint", "load_config", "load_run"]


class LoadedRun(NamedTuple):
    """A trained run restored from its checkpoint (:func:`load_run`).

    Attributes:
        config: the run's config (``config.yaml``, with ``run.device`` overridden if asked).
        agent: the agent with the checkpoint's weights.
        spec: the environment's spec.
        step: the run's step at the checkpoint (env steps; updates for an offline run).
        checkpoint: the checkpoint file that was loaded.
    """

    config: Config
    agent: Agent
    spec: EnvSpec
    step: int
    checkpoint: Path | None = None


def load_config(run_dir: str | Path, device: str | None = None) -> Config:
    """A run directory's ``config.yaml``, checked; ``device`` replaces ``run.device``.

    Raises:
        FileNotFoundError: no such directory, or it holds no ``config.yaml``.
        ValueError: ``config.yaml`` is not valid YAML or not a valid config (naming the key).
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} is a file, not a directory")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{run_dir} holds no {CONFIG_FILE}: it is not a run directory written by rssm train "
            "(pass the directory that rssm train printed)"
        )
    try:
        config = config_lib.load(Config, path)
    except yaml.YAMLError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not valid YAML ({reason}); was it edited by hand?") from None
    if device is not None:
        config = config_lib.merge(config, {"run": {"device": device}})
    return config


def load_run(
    run_dir: str | Path,
    device: str | None = None,
    *,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    checkpoint: str | os.PathLike | int | None = None,
) -> LoadedRun:
    """The agent of a run directory written by ``rssm train``, with the weights of its newest
    checkpoint (``checkpoint.pt``, or the newest numbered one when it is missing), or of the
    checkpoint named by ``checkpoint``.

    Args:
        run_dir: the run directory.
        device: torch device; None keeps the run's ``run.device``.
        overrides: dotted config overrides applied to the run's ``config.yaml`` before the
            agent is built (as ``rssm train`` takes them: ``["--planet.horizon", "12"]`` or
            ``{"planet.horizon": 12}``), e.g. a longer planner horizon at evaluation. An
            override that changes the shapes of the weights (a model size, the
            observations) is the checkpoint error below, naming the keys.
        checkpoint: which checkpoint to load: a step (``45000`` for ``checkpoint-45000.pt``), a
            file name in the run directory, or a path; None loads the newest.

    Raises:
        FileNotFoundError: see :func:`load_config`; or
            :class:`~rssm.run.checkpoint.CheckpointNotFoundError`: no checkpoint yet, or no
            checkpoint of the asked step or path (naming the ones there are).
        CheckpointError: the checkpoint is corrupt, refused, not an agent checkpoint of rssm
            train, or written for another config (naming the parameters and config keys that
            differ).
        ValueError: an unreadable ``config.yaml``; an unknown or ill-typed override.
    """
    from rssm.run.builders import make_agent, make_envs  # the loop's own builders

    config = load_config(run_dir, device)
    if overrides:
        config = config_lib.apply_overrides(config, overrides)
    if checkpoint is None:
        path, state = load_latest_checkpoint(Path(run_dir))
    else:
        path = find_checkpoint(run_dir, checkpoint)
        state = load_checkpoint(path)
    saved = state.get("agent")
    if not isinstance(saved, Mapping):
        raise CheckpointError(
            f"{path} holds no agent state (keys: {', '.join(sorted(map(str, state)))}): it was "
            "not written by rssm train (a checkpoint of rssm world-model holds a model only); "
            "pass a run directory of rssm train"
        )
    env = make_envs(config, 1, config.seed)[0]
    try:
        spec = env_spec(env)
    finally:
        env.close()
    agent = make_agent(config, spec)
    saved_config = state.get("config")
    check_compatible(
        saved,
        agent.state_dict(),
        path=path,
        saved_config=saved_config if isinstance(saved_config, Mapping) else None,
        config=config_lib.to_dict(config),
    )
    try:
        agent.load_state_dict(saved)
    except (RuntimeError, KeyError, ValueError, TypeError) as error:
        reason = str(error).splitlines()[0][:200] if str(error) else ""
        raise CheckpointError(
            f"checkpoint {path} does not fit the agent built from the run's config "
            f"({type(error).__name__}: {reason})"
        ) from None
    return LoadedRun(config, agent, spec, max(checkpoint_step(state), 0), path)


def find_checkpoint(run_dir: str | Path, checkpoint: str | os.PathLike | int) -> Path:
    """The checkpoint file that ``checkpoint`` names in ``run_dir``: a step (an ``int``, or text
    of digits: ``checkpoint-<step>.pt``), a file name in the run directory, or a path.

    Raises:
        CheckpointNotFoundError: no such checkpoint; the message lists the steps there are.
    """
    run_dir = Path(run_dir)
    text = str(checkpoint)
    if isinstance(checkpoint, int) or text.isdigit():
        path = run_dir / f"checkpoint-{int(text)}.pt"
    else:
        path = Path(checkpoint)
        if not path.exists() and (run_dir / path).exists():
            path = run_dir / path  # a file name relative to the run directory
    if path.is_file():
        return path
    steps = [str(step) for step, _ in numbered_checkpoints(run_dir)]
    there = f"checkpoints of steps {', '.join(steps)}" if steps else "no numbered checkpoint"
    raise CheckpointNotFoundError(
        f"no checkpoint {text!r} in {run_dir} (looked for {path}); the run keeps {there}"
        " (run.keep_checkpoints); pass one of those steps, or leave the checkpoint out for the"
        " newest"
    )
