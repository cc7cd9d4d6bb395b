"""The one way to load a trained run (``rssm eval``, ``rssm dream``, ``rssm report``, the Python
API): its ``config.yaml``, validated, and the agent with the weights of its newest checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import yaml

from rssm import config as config_lib
from rssm.agents import Agent
from rssm.envs import EnvSpec, env_spec
from rssm.run.checkpoint import CheckpointError, check_compatible
from rssm.run.resume import CONFIG_FILE, checkpoint_step, load_latest_checkpoint
from rssm.run.run_config import Config

__all__ = ["LoadedRun", "load_config", "load_run"]


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


def load_run(run_dir: str | Path, device: str | None = None) -> LoadedRun:
    """The agent of a run directory written by ``rssm train``, with the weights of its newest
    checkpoint (``checkpoint.pt``, or the newest numbered one when it is missing).

    Raises:
        FileNotFoundError: see :func:`load_config`; or
            :class:`~rssm.run.checkpoint.CheckpointNotFoundError`: no checkpoint yet.
        CheckpointError: the checkpoint is corrupt, refused, not an agent checkpoint of rssm
            train, or written for another config (naming the parameters and config keys that
            differ).
        ValueError: an unreadable ``config.yaml``.
    """
    from rssm.run.builders import make_agent, make_envs  # the loop's own builders

    config = load_config(run_dir, device)
    path, state = load_latest_checkpoint(Path(run_dir))
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
