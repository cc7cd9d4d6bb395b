"""Dreamer learns: on ``builtin:echo`` (reward = sum of the last action, 10 steps, 2-dim actions
in [-1, 1]: the best policy always plays +1 for a return of 20, a random one averages 0) every
version's actor-critic reaches an evaluation return of at least 15 within 1500 env steps.

Seconds per run on one CPU thread. It checks the sign and the plumbing of every actor gradient
(dynamics backprop through the learned model, REINFORCE), the λ-returns with a terminal step and
the continue head, and the acting path, end to end through ``rssm.run.train``.
"""

from __future__ import annotations

import pytest
import torch

from rssm import config as config_lib
from rssm.run.logger import read_metrics
from rssm.run.train import Config, train

FAST = {
    "env.name": "builtin:echo",
    "env.time_limit": None,
    "run.steps": 1500,
    "run.train_every": 20,
    "run.train_steps": 5,
    "run.eval_every": 300,
    "run.eval_episodes": 2,
    "run.log_every": 300,
    "run.video_every": 0,
    "run.checkpoint_every": 1500,
    # the debug sizes learn in a few hundred updates with larger steps than the papers' rates
    "dreamer.model_lr": 1e-3,
    "dreamer.actor_lr": 3e-4,
    "dreamer.critic_lr": 3e-4,
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("preset", "extra"),
    [
        ("dreamer_v1", {}),  # tanh-Normal, dynamics backprop, Gaussian critic, no continue head
        ("dreamer_v2", {}),  # categorical latents, target critic, continue head
        ("dreamer_v3", {"dreamer.actor_lr": 1e-3, "dreamer.critic_lr": 1e-3}),
        ("dreamer_v3", {"dreamer.actor_critic.actor_grad_cont": "reinforce", "run.steps": 3000,
                        "dreamer.actor_lr": 1e-3, "dreamer.critic_lr": 1e-3}),
    ],
    ids=["v1", "v2", "v3-dynamics", "v3-reinforce"],
)  # fmt: skip
def test_dreamer_learns_the_echo_task(tmp_path, preset, extra):
    config = config_lib.load_presets(Config, [preset, "debug"])
    config = config_lib.apply_overrides(config, {**FAST, **extra, "logdir": str(tmp_path)})
    rows = read_metrics(train(config))
    evals = [row["eval/return"] for row in rows if row.get("eval/return") is not None]
    train_returns = [row["episode/return"] for row in rows if row.get("episode/return") is not None]
    assert evals[-1] >= 15.0, evals
    assert train_returns[-1] > train_returns[0] + 5.0, train_returns
