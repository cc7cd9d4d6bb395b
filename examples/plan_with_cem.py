"""Plan with the cross-entropy method (CEM) in the latent space of a trained PlaNet checkpoint.

    python examples/plan_with_cem.py --run runs/<a planet run>    # e.g. from `rssm train`
    python examples/plan_with_cem.py --quick                      # trains a tiny run first

Each env step: the agent's world model filters the observation into a posterior state,
``agent.plan`` searches action sequences with CEM by their predicted return from that state (the
agent's ``planning_objective``) and the first action of the best plan is executed. This is what the
agent's own ``policy`` does; here the planner's settings (a copy of the agent's config) are yours.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from rssm.config import load_presets, merge
from rssm.run.runs import load_run
from rssm.run.train import Config, make_envs, train


def tiny_run(logdir: Path) -> Path:
    config = merge(load_presets(Config, ["planet", "debug"]), {"logdir": str(logdir)})
    return train(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=None, help="a PlaNet run directory")
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--elites", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="tiny run and planner: seconds")
    args = parser.parse_args()
    if args.quick:
        args.horizon, args.candidates, args.elites, args.iterations = 3, 16, 4, 2
    run_dir = args.run or tiny_run(Path("runs/example-planet"))

    run = load_run(run_dir)  # the agent with the checkpoint's weights, and its config
    agent, model = run.agent, run.agent.model
    env = make_envs(run.config, 1, seed=123)[0]
    obs, _ = env.reset(seed=123)
    state, prev_action = None, torch.zeros(1, agent.action_dim)
    total, done = 0.0, False
    generator = torch.Generator().manual_seed(0)
    planner = dataclasses.replace(
        agent.config, iterations=args.iterations, candidates=args.candidates,
        elites=args.elites, init_std=1.0,
    )  # fmt: skip
    with torch.no_grad():
        while not done:
            batch = model.preprocess({key: value[None] for key, value in obs.items()})
            state = model.obs_step(state, prev_action, batch)  # posterior after this observation
            plan = agent.plan(state, torch.zeros(1, args.horizon, agent.action_dim), generator,
                              config=planner)  # fmt: skip
            prev_action = plan[:, 0]
            obs, reward, terminated, truncated, _ = env.step(prev_action[0].numpy())
            total += float(reward)
            done = terminated or truncated
    print(f"episode return with CEM (H={args.horizon}, K={args.candidates}): {total:.1f}")


if __name__ == "__main__":
    main()
