"""Train Dreamer (V3) on your own gymnasium environment through the Python API.

    python examples/custom_env_dreamer.py                 # 5000 env steps
    python examples/custom_env_dreamer.py --quick         # a smoke run of seconds

The env below is a 1-D reaching task: a point on a line must move to a target; the reward is the
negative distance. Any gymnasium env works the same way: register it, name it ``gym:<id>`` (from
another process, e.g. ``rssm eval``, as ``gym:<module>:<id>`` so that the module registers it).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rssm.config import load_presets, merge
from rssm.run.evaluate import evaluate
from rssm.run.logger import read_metrics
from rssm.run.train import Config, train


class Reach(gym.Env):
    """Position and target in [-1, 1]; the action moves the point by up to 0.2 per step."""

    def __init__(self, length: int = 50):
        self.length = length
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.target = self.np_random.uniform(-1, 1, 2)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.pos = float(np.clip(self.pos + 0.2 * float(action[0]), -1.0, 1.0))
        self.t += 1
        reward = -abs(self.pos - self.target)
        return self._obs(), reward, False, self.t >= self.length, {}

    def _obs(self):
        return np.array([self.pos, self.target], np.float32)


gym.register("ReachExample-v0", entry_point=Reach)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="runs/example-reach")
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    args = parser.parse_args()

    # An algorithm preset, then a size preset; anything else as a nested dict of changes.
    config = load_presets(Config, ["dreamer_v3", "debug"])
    steps = 200 if args.quick else 5000
    config = merge(
        config,
        {
            "logdir": args.logdir,
            "env": {"name": "gym:ReachExample-v0", "time_limit": None},
            "run": {
                "steps": steps, "eval_every": steps, "eval_episodes": 5, "log_every": steps // 4,
                "train_every": 10, "train_steps": 1 if args.quick else 5, "video_every": 0,
            },
        },
    )  # fmt: skip
    run_dir = train(config)  # checkpoints, metrics.jsonl and TensorBoard events in run_dir

    rows = read_metrics(run_dir)
    random = next(r["episode/random_return"] for r in rows if "episode/random_return" in r)
    returns = evaluate(run_dir, episodes=5)  # fresh episodes with the eval policy
    print(f"run directory: {run_dir}")
    print(f"random policy: {random:.1f}; trained agent: {np.mean(returns):.1f} over 5 episodes")


if __name__ == "__main__":
    main()
