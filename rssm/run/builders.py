"""The parts of a training run that other tools build too: its environments and its agent."""

from __future__ import annotations

import functools

import gymnasium

from rssm.agents import AGENTS, Agent
from rssm.envs import EnvSpec, make_env
from rssm.run.run_config import Config

__all__ = ["make_agent", "make_envs"]


def make_envs(
    config: Config, count: int, seed: int, *, parallel: bool = False
) -> list[gymnasium.Env]:
    """``count`` environments of ``config.env``, env ``i`` seeded with ``seed + i``; each in a
    worker process (:class:`~rssm.envs.parallel.ProcessEnv`) when ``parallel`` and
    ``env.parallel`` is ``process``."""
    env = config.env
    makers = [
        functools.partial(
            make_env,
            env.name,
            seed=seed + i,
            action_repeat=env.action_repeat,
            image_size=env.image_size,
            time_limit=env.time_limit,
            **env.options,
        )
        for i in range(count)
    ]
    if parallel and env.parallel == "process":
        from rssm.envs.parallel import ProcessEnv

        return [ProcessEnv(make, env.name, env.worker_timeout) for make in makers]
    return [make() for make in makers]


def make_agent(config: Config, spec: EnvSpec) -> Agent:
    """The agent ``AGENTS[config.agent]`` for an env of ``spec``.

    Raises:
        ValueError: an unknown agent name (listing the known ones), or the agent's own error
            (e.g. PlaNet with a discrete-action env).
    """
    if config.agent not in AGENTS:
        raise ValueError(
            f"config key 'agent': unknown agent {config.agent!r}; choose one of "
            f"{', '.join(sorted(AGENTS))}"
        )
    return AGENTS[config.agent](
        spec.obs_space,
        spec.action_dim,
        config.world_model,
        config.agent_config(),
        discrete=spec.discrete,
        seed=config.seed,
        device=config.run.device,
        precision=config.run.precision,
        compile=config.run.compile,
    )
