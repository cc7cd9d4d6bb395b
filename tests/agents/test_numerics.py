"""Numerical safety and the opt-in speed flags: non-finite updates are skipped and counted, a run
whose updates keep failing stops and keeps its checkpoint, bf16 autocast and torch.compile run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rssm import config as config_lib
from rssm.agents import DreamerAgent, DreamerConfig, PlanetAgent, PlanetConfig
from rssm.agents.optimizer import Optimizer
from rssm.agents.runtime import compile_blocks
from rssm.behavior import ActorConfig, ActorCriticConfig, CriticConfig
from rssm.data import Driver, RandomPolicy, Replay
from rssm.envs import env_spec, make_env
from rssm.run.checkpoint import load_checkpoint
from rssm.run.train import Config, NonFiniteError, train
from rssm.run.world_model import tiny_config

DREAMER_SMALL = DreamerConfig(
    actor_critic=ActorCriticConfig(
        actor=ActorConfig(units=16, layers=1), critic=CriticConfig(units=16, layers=1, bins=15),
        horizon=3,
    )
)  # fmt: skip
PLANET_SMALL = PlanetConfig(horizon=2, candidates=8, elites=2, iterations=1)


def test_optimizer_steps_on_finite_and_skips_non_finite():
    layer = nn.Linear(3, 1)
    opt = Optimizer(layer.parameters(), name="m", lr=0.1, eps=1e-8, clip=1.0)
    before = [p.detach().clone() for p in layer.parameters()]
    metrics = opt.step(layer(torch.ones(2, 3)).sum())
    assert metrics["m_nonfinite"].item() == 0.0 and metrics["m_grad_norm"].item() > 0
    moved = [p.detach().clone() for p in layer.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(before, moved, strict=True))
    adam_state = {k: {n: t.clone() for n, t in v.items()} for k, v in opt.adam.state.items()}
    metrics = opt.step(layer(torch.full((2, 3), math.nan)).sum())
    assert metrics["m_nonfinite"].item() == 1.0
    for a, b in zip(moved, layer.parameters(), strict=True):
        assert torch.equal(a, b)  # weights untouched
    for key, state in opt.adam.state.items():  # Adam's moments untouched
        for name, value in state.items():
            assert torch.equal(value, adam_state[key][name]), name
    assert all(p.grad is None for p in layer.parameters())


def test_optimizer_only_own_leaves_other_gradients_alone():
    a, b = nn.Linear(2, 2), nn.Linear(2, 1)
    opt = Optimizer(b.parameters(), name="b", lr=0.1, eps=1e-8, clip=10.0)
    opt.step(b(a(torch.ones(1, 2))).sum(), only_own=True)
    assert all(p.grad is None for p in a.parameters())


def _batch(discrete: bool = False):
    env = make_env("builtin:pointmass", image_size=16, time_limit=20)
    spec = env_spec(env)
    replay = Replay(500, seed=0)
    driver = Driver([env], seed=0)
    driver.on_step(replay.add)
    driver(RandomPolicy(spec.action_dim, discrete, 0), steps=40)
    return spec, replay.sample(2, 8)


@pytest.mark.parametrize("agent_kind", ["planet", "dreamer"])
def test_a_nan_reward_skips_the_update_and_reports_it(agent_kind):
    spec, batch = _batch()
    if agent_kind == "planet":
        agent = PlanetAgent(spec.obs_space, spec.action_dim, tiny_config("gaussian"), PLANET_SMALL)
    else:
        agent = DreamerAgent(
            spec.obs_space, spec.action_dim, tiny_config("categorical"), DREAMER_SMALL
        )
    weights = {k: v.clone() for k, v in agent.model.state_dict().items()}
    batch = dict(batch, reward=np.full_like(batch["reward"], np.nan))
    metrics = agent.train_step(batch)
    assert metrics["model_nonfinite"] == 1.0
    for key, value in agent.model.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_run_stops_after_max_nonfinite_and_keeps_its_checkpoint(tmp_path, monkeypatch):
    config = config_lib.load_presets(Config, ["planet", "debug"])
    config = config_lib.apply_overrides(
        config,
        {"logdir": str(tmp_path / "run"), "run.max_nonfinite": 3, "run.steps": 400,
         "run.checkpoint_every": 100},
    )  # fmt: skip
    original = PlanetAgent.train_step
    calls = {"n": 0}

    def failing(self, batch):  # the first updates are fine, then every update is non-finite
        calls["n"] += 1
        if calls["n"] > 8:
            batch = dict(batch, reward=np.full_like(batch["reward"], np.inf))
        return original(self, batch)

    monkeypatch.setattr(PlanetAgent, "train_step", failing)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        with pytest.raises(NonFiniteError, match="3 updates in a row"):
            train(config)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    weights = state["agent"]["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert state["counters"]["updates"] <= 8 + 5  # written before the failures, not at the stop


@pytest.mark.parametrize("agent_kind", ["planet", "dreamer"])
def test_bfloat16_autocast_runs_a_train_step(agent_kind):
    spec, batch = _batch()
    if agent_kind == "planet":
        agent = PlanetAgent(spec.obs_space, spec.action_dim, tiny_config("gaussian"),
                            PLANET_SMALL, precision="bfloat16")  # fmt: skip
    else:
        agent = DreamerAgent(spec.obs_space, spec.action_dim, tiny_config("categorical"),
                             DREAMER_SMALL, precision="bfloat16")  # fmt: skip
    metrics = agent.train_step(batch)
    assert math.isfinite(metrics["model_loss"]) and metrics["model_nonfinite"] == 0.0
    with pytest.raises(ValueError, match="precision"):
        DreamerAgent(spec.obs_space, spec.action_dim, tiny_config("categorical"), DREAMER_SMALL,
                     precision="float16")  # fmt: skip


def test_compile_wraps_blocks_in_place_and_keeps_state_dict_keys():
    spec, _ = _batch()
    plain = DreamerAgent(spec.obs_space, spec.action_dim, tiny_config("categorical"), DREAMER_SMALL)
    compiled = DreamerAgent(
        spec.obs_space, spec.action_dim, tiny_config("categorical"), DREAMER_SMALL, compile=True
    )
    assert list(plain.state_dict()["model"]) == list(compiled.state_dict()["model"])
    assert list(plain.state_dict()["behavior"]) == list(compiled.state_dict()["behavior"])
    blocks = [m for m in compiled.model.modules() if getattr(m, "_compiled_call_impl", None)]
    assert len(blocks) >= 4
    assert compiled.model.rssm._compiled_prior_step is not None  # the fused rollout step
    assert plain.model.rssm._compiled_prior_step is None
    assert compile_blocks(nn.Sequential(nn.Linear(2, 2))) == 0  # only library blocks


@pytest.mark.slow
def test_compiled_agent_trains():  # compiling takes about a minute on 2 CPU cores
    spec, batch = _batch()
    agent = DreamerAgent(
        spec.obs_space, spec.action_dim, tiny_config("categorical"), DREAMER_SMALL, compile=True
    )
    for _ in range(2):
        metrics = agent.train_step(batch)
    assert math.isfinite(metrics["model_loss"]) and math.isfinite(metrics["actor_loss"])
