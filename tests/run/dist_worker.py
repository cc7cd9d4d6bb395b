"""One rank of the data-parallel tests (tests/run/test_distributed.py), started with
torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) set by the test:

    python tests/run/dist_worker.py MODE OUT

Each rank writes what it ends with to ``OUT/rank<r>.pt``. Modes:
    toy     rank r trains a small MLP with the agents' Optimizer on its half of a fixed batch, and
            updates a ReturnNormalizer with its half of fixed returns;
    agent   every rank trains a small Dreamer agent on the same batch with the same generators,
            return normalisation off (its percentiles of a batch repeated N times are not those
            of the batch): the result must equal one process's;
    split   every rank trains the agent on a batch of its own: the ranks' weights must agree;
    die     rank 1 exits at once; rank 0 then averages gradients and reports the error.
"""

from __future__ import annotations

import os
import sys

import torch

from rssm import distributed


def toy_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def toy_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(8, 3, generator=generator)
    targets = torch.randn(8, 1, generator=generator)
    returns = torch.randn(8, 5, generator=generator) * 3.0
    return inputs, targets, returns


def toy_train(part: slice, steps: int = 3) -> dict[str, torch.Tensor]:
    """The toy's weights and normaliser after ``steps`` updates on ``part`` of the batch."""
    from rssm.agents.optimizer import Optimizer
    from rssm.behavior.returns import ReturnNormalizer

    model = toy_model()
    optimizer = Optimizer(model.parameters(), name="toy", lr=0.05, eps=1e-8, clip=100.0)
    normalizer = ReturnNormalizer(decay=0.5)
    inputs, targets, returns = toy_data()
    for _ in range(steps):
        loss = (model(inputs[part]) - targets[part]).pow(2).mean()
        optimizer.step(loss)
        normalizer.update(returns[part])
    return {**model.state_dict(), **normalizer.state_dict()}


def agent_train(seed: int, batch_seed: int, steps: int = 2) -> dict[str, torch.Tensor]:
    """A small Dreamer agent's weights after ``steps`` updates on batches drawn with
    ``batch_seed`` (agent and torch seeded with ``seed``)."""
    from rssm.agents import DreamerAgent, DreamerConfig
    from rssm.behavior import ActorConfig, ActorCriticConfig, CriticConfig
    from rssm.data import Driver, RandomPolicy, Replay
    from rssm.envs import env_spec, make_env
    from rssm.run.world_model import tiny_config

    config = DreamerConfig(
        actor_critic=ActorCriticConfig(
            actor=ActorConfig(units=16, layers=1),
            critic=CriticConfig(units=16, layers=1, bins=15),
            horizon=3,
            return_norm=False,
        ),
    )
    env = make_env("builtin:pointmass", image_size=16, time_limit=20)
    spec = env_spec(env)
    torch.manual_seed(seed)
    agent = DreamerAgent(
        spec.obs_space, spec.action_dim, tiny_config("categorical"), config,
        discrete=False, seed=seed,
    )  # fmt: skip
    replay = Replay(1000, seed=batch_seed)
    driver = Driver([env], seed=batch_seed)
    driver.on_step(replay.add)
    driver(RandomPolicy(spec.action_dim, False, batch_seed), steps=60)
    for _ in range(steps):
        agent.train_step(replay.sample(3, 8))
    weights = agent.state_dict()
    return {
        **{f"model.{k}": v for k, v in weights["model"].items()},
        **{f"behavior.{k}": v for k, v in weights["behavior"].items()},
    }


def main(mode: str, out: str) -> None:
    with distributed.session("cpu", timeout_minutes=1.0) as (world, _):
        if mode == "toy":
            half = 8 // world.size
            result = toy_train(slice(world.rank * half, (world.rank + 1) * half))
        elif mode == "agent":
            result = agent_train(seed=0, batch_seed=0)
        elif mode == "split":
            result = agent_train(seed=0, batch_seed=world.rank)
        elif mode == "die":
            if world.rank == 1:
                os._exit(3)
            param = torch.nn.Parameter(torch.ones(2))
            param.grad = torch.ones(2)
            try:
                distributed.average_gradients([param], torch.tensor(1.0))
                result = {"error": "no error"}
            except distributed.DistributedError as error:
                result = {"error": str(error)}
        else:
            raise SystemExit(f"unknown mode {mode!r}")
        torch.save(result, os.path.join(out, f"rank{world.rank}.pt"))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(*sys.argv[1:3])
