"""Time alignment of DESIGN.md §3, end to end: env -> driver -> replay -> world model.

``builtin:echo`` makes the convention observable: ``o_t = [t, *a_{t-1}]``, ``r_t = sum(a_{t-1})``.
So in every stored row, the reward and the echoed action must belong to the action of the row
before, and the ``prev_action`` the RSSM consumes at row t must be ``action[t-1]`` (zero at
``is_first``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rssm.data import Driver, RandomPolicy, Replay
from rssm.envs import env_spec, make_env
from rssm.models import WorldModel
from rssm.run.world_model import tiny_config

LENGTH = 6  # episode: reset row + 6 steps = 7 rows


@pytest.fixture(scope="module")
def batch() -> dict[str, np.ndarray]:
    env = make_env("builtin:echo", length=LENGTH, action_dim=2)
    spec = env_spec(env)
    replay = Replay(1000, seed=0)
    driver = Driver([env], seed=0)
    driver.on_step(replay.add)
    driver(RandomPolicy(spec.action_dim, spec.discrete, seed=0), episodes=12)
    return replay.sample(8, 20)  # 20 > 7 rows: every sample crosses an episode boundary


def test_rows_follow_the_convention(batch):
    state, action, reward = batch["state"], batch["action"], batch["reward"]
    is_first = batch["is_first"]
    assert is_first.any(axis=1).all(), "each sequence should cross an episode start"
    t = state[..., 0]
    np.testing.assert_array_equal(is_first, t == 0)
    # Where a row is not an episode start, it echoes the previous row's action and is rewarded
    # for it: reward is received on arriving at o_t, the action in a row is chosen after o_t.
    cont = ~is_first[:, 1:]
    np.testing.assert_allclose(state[:, 1:, 1:][cont], action[:, :-1][cont], atol=1e-6)
    np.testing.assert_allclose(reward[:, 1:][cont], action[:, :-1].sum(-1)[cont], atol=1e-5)
    np.testing.assert_array_equal(reward[is_first], 0.0)
    # The episode ends exactly at t == LENGTH with is_last and is_terminal on that row.
    np.testing.assert_array_equal(batch["is_last"], t == LENGTH)
    np.testing.assert_array_equal(batch["is_terminal"], t == LENGTH)


def test_world_model_prev_action_is_shifted_and_zeroed(batch):
    env = make_env("builtin:echo", length=LENGTH, action_dim=2)
    spec = env_spec(env)
    config = tiny_config("gaussian")
    config = dataclasses.replace(
        config,
        encoder=dataclasses.replace(config.encoder, cnn_keys="^$"),
        decoder=dataclasses.replace(config.decoder, cnn_keys="^$"),
    )
    model = WorldModel(spec.obs_space, spec.action_dim, config)
    seen = {}
    observe = model.rssm.observe

    def spy(state, embed, prev_action, is_first):
        seen["prev_action"], seen["is_first"] = prev_action.clone(), is_first.clone()
        return observe(state, embed, prev_action, is_first)

    model.rssm.observe = spy
    tensors = model.preprocess(batch)
    model.loss(tensors)
    prev = seen["prev_action"]
    action = tensors["action"]
    first = tensors["is_first"].bool()
    cont = ~first[:, 1:]
    # Shifted one step right: the RSSM at row t consumes the action chosen at row t - 1 ...
    torch.testing.assert_close(prev[:, 1:][cont], action[:, :-1][cont])
    # ... which the env echoed into o_t (so prev_action_t is what produced o_t and r_t).
    state = tensors["state"]
    torch.testing.assert_close(prev[:, 1:][cont], state[:, 1:, 1:][cont])
    # Row 0 of a batch has no known predecessor: zero. (At is_first rows the RSSM itself resets
    # prev_action, h and z; tests/models covers that.)
    assert torch.all(prev[:, 0] == 0)
    assert not torch.equal(prev[:, 1:][cont], torch.zeros_like(prev[:, 1:][cont]))
    assert seen["is_first"].dtype == torch.bool
