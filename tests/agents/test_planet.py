"""PlanetAgent: acting by CEM in latent space, its learning step, checkpoints; RandomAgent."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import io

import numpy as np
import pytest
import torch
from torch import nn

import rssm.agents.planet as planet_module
from rssm.agents import AGENTS, PlanetAgent, PlanetConfig, RandomAgent
from rssm.data import Driver
from rssm.envs import env_spec, make_env
from rssm.run.world_model import tiny_config
from rssm.types import RSSMState

N_ENVS = 2
SMALL = PlanetConfig(horizon=3, candidates=16, elites=4, iterations=2)


def tiny_world_model():
    """An even smaller Gaussian world model than ``tiny_config`` (fast on 2 CPU cores)."""
    base = tiny_config("gaussian")
    return dataclasses.replace(
        base,
        rssm=dataclasses.replace(base.rssm, deter=32, units=32, stoch=8),
        encoder=dataclasses.replace(base.encoder, cnn_depth=4, mlp_units=32),
        decoder=dataclasses.replace(base.decoder, cnn_depth=4, mlp_units=32),
        reward_head=dataclasses.replace(base.reward_head, units=32),
    )


@pytest.fixture(scope="module")
def spec():
    return env_spec(make_env("builtin:pointmass", image_size=16))


def make_agent(spec, config=SMALL, seed=0):
    return PlanetAgent(spec.obs_space, spec.action_dim, tiny_world_model(), config, seed=seed)


def env_obs(num=N_ENVS, seed=0):
    """Stacked first observations of ``num`` pointmass envs: dict of numpy [N, ...]."""
    obs = []
    for i in range(num):
        env = make_env("builtin:pointmass", image_size=16)
        obs.append(env.reset(seed=seed + i)[0])
        env.close()
    return {key: np.stack([o[key] for o in obs]) for key in obs[0]}


def params(agent):
    return {k: v.clone() for k, v in agent.model.state_dict().items()}


def test_config_fields_are_constructor_arguments_with_paper_defaults():
    fields = {f.name for f in dataclasses.fields(PlanetConfig)}
    assert fields == set(inspect.signature(PlanetConfig).parameters)
    c = PlanetConfig()
    assert (c.horizon, c.candidates, c.elites, c.iterations) == (12, 1000, 100, 10)
    assert (c.expl_noise, c.lr, c.eps, c.clip) == (0.3, 1e-3, 1e-4, 1000.0)
    with pytest.raises(ValueError, match="elites"):
        PlanetConfig(candidates=4, elites=8)
    with pytest.raises(ValueError, match="horizon"):
        PlanetConfig(horizon=0)


def test_discrete_actions_raise_naming_the_fix(spec):
    with pytest.raises(ValueError, match="Dreamer"):
        PlanetAgent(spec.obs_space, 3, tiny_world_model(), SMALL, discrete=True)


def test_policy_shapes_bounds_and_carry(spec):
    agent = make_agent(spec)
    obs = env_obs()
    carry, action = agent.policy(agent.initial_carry(N_ENVS), obs, "explore")
    assert action.shape == (N_ENVS, spec.action_dim)
    assert torch.isfinite(action).all() and action.abs().max() <= 1.0
    assert torch.equal(carry.prev_action, action)
    assert carry.state.batch_shape == (N_ENVS,)
    assert carry.plan.shape == (N_ENVS, SMALL.horizon, spec.action_dim)
    obs["is_first"][:] = False
    carry2, action2 = agent.policy(carry, obs, "eval")
    assert torch.equal(carry2.prev_action, action2)
    assert not torch.equal(carry2.state.deter, carry.state.deter)  # the state moved on
    with pytest.raises(ValueError, match="mode"):
        agent.policy(carry, obs, "greedy")


def test_eval_is_deterministic_and_explore_adds_noise(spec):
    agent = make_agent(spec)
    obs = env_obs()

    def act(mode, seed=3):
        agent.generator.manual_seed(seed)
        torch.manual_seed(seed)  # the model's latent samples use the global generator
        return agent.policy(None, obs, mode)[1]

    assert torch.equal(act("eval"), act("eval"))
    assert not torch.equal(act("eval"), act("eval", seed=4))  # CEM really is stochastic
    # Same seeds: explore draws the same plan, then adds N(0, 0.3) noise.
    diff = act("explore") - act("eval")
    assert diff.abs().max() > 1e-3
    quiet = make_agent(spec, dataclasses.replace(SMALL, expl_noise=0.0))
    quiet.generator.manual_seed(3)
    torch.manual_seed(3)
    explore_quiet = quiet.policy(None, obs, "explore")[1]
    quiet.generator.manual_seed(3)
    torch.manual_seed(3)
    assert torch.equal(explore_quiet, quiet.policy(None, obs, "eval")[1])


def test_objective_sees_n_k_h_a(spec, monkeypatch):
    agent = make_agent(spec)
    seen = []
    real_cem = planet_module.cem

    def spy(objective, mean, std, **kwargs):
        def wrapped(actions):
            seen.append(tuple(actions.shape))
            scores = objective(actions)
            assert scores.shape == actions.shape[:2], (scores.shape, actions.shape)
            return scores

        return real_cem(wrapped, mean, std, **kwargs)

    monkeypatch.setattr(planet_module, "cem", spy)
    agent.policy(None, env_obs(), "eval")
    expected = (N_ENVS, SMALL.candidates, SMALL.horizon, spec.action_dim)
    assert seen == [expected] * SMALL.iterations


def test_objective_sums_reward_mode_over_imagined_states_1_to_h(spec):
    agent = make_agent(spec)
    with torch.no_grad():
        start = agent.model.obs_step(
            None, torch.zeros(N_ENVS, 2), agent.model.preprocess(env_obs())
        )
        actions = torch.rand(N_ENVS, 5, SMALL.horizon, spec.action_dim) * 2 - 1
        torch.manual_seed(0)
        scores = agent.planning_objective(start)(actions)
        torch.manual_seed(0)
        starts = start.map(lambda x: x.repeat_interleave(5, 0))
        states, _ = agent.model.rssm.imagine(starts, actions.flatten(0, 1))
        expected = agent.model.reward(states.feat()[:, 1:]).mode().sum(-1).view(N_ENVS, 5)
    assert scores.shape == (N_ENVS, 5)
    torch.testing.assert_close(scores, expected)


class _ActionEchoRSSM(nn.Module):
    """Fake RSSM whose imagined state i+1 is the action a_i (in ``deter``)."""

    def rollout(self, start, actions, horizon=None, *, sample=True):
        for i in range(actions.shape[1]):
            empty = actions[:, i, :0]
            yield actions[:, i], RSSMState(actions[:, i], empty, empty)


class _QuadraticReward(nn.Module):
    """Fake reward head: reward = -||feat - target||^2 (feat is the action here)."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def forward(self, feat):
        mode = -(feat - self.target).square().sum(-1)
        return type("Dist", (), {"mode": lambda self: mode})()


def test_planned_action_approaches_known_optimum(spec, monkeypatch):
    config = PlanetConfig(horizon=3, candidates=64, elites=8, iterations=5)
    agent = make_agent(spec, config)
    target = torch.tensor([0.6, -0.4])
    monkeypatch.setattr(agent.model, "rssm", _ActionEchoRSSM())
    monkeypatch.setattr(agent.model, "reward", _QuadraticReward(target))
    monkeypatch.setattr(agent.model, "obs_step", lambda state, prev, obs: start)
    start = RSSMState(torch.zeros(N_ENVS, 1), torch.zeros(N_ENVS, 0), torch.zeros(N_ENVS, 0))
    carry, action = agent.policy(None, env_obs(), "eval")
    assert (action - target).abs().max() < 0.15, action
    assert (carry.plan - target).abs().max() < 0.3, carry.plan  # every step of the plan


def test_warm_start_shifts_the_previous_plan(spec):
    agent = make_agent(spec, dataclasses.replace(SMALL, warm_start=True))
    plan = torch.arange(N_ENVS * SMALL.horizon * 2, dtype=torch.float32).view(N_ENVS, -1, 2)
    first = torch.tensor([True, False])
    mean = agent._initial_plan(plan, first)
    assert torch.equal(mean[0], torch.zeros_like(mean[0]))  # a new episode starts from zeros
    assert torch.equal(mean[1, :-1], plan[1, 1:]) and torch.equal(mean[1, -1], torch.zeros(2))


def test_acting_changes_no_parameter(spec):
    agent = make_agent(spec)
    before = params(agent)
    optim_before = agent.model_opt.state_dict()["state"]
    carry = None
    obs = env_obs()
    for _ in range(3):
        carry, _ = agent.policy(carry, obs, "explore")
        obs["is_first"][:] = False
    after = agent.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert agent.model_opt.state_dict()["state"] == optim_before == {}
    assert all(p.grad is None for p in agent.model.parameters())


@pytest.fixture(scope="module")
def batch():
    """A [B=2, T=8] batch of real pointmass transitions collected by the Driver."""
    spec = env_spec(make_env("builtin:pointmass", image_size=16))
    envs = [make_env("builtin:pointmass", image_size=16) for _ in range(2)]
    driver = Driver(envs, seed=0)
    rows = [[], []]
    driver.on_step(lambda transition, i: rows[i].append(transition))
    agent = RandomAgent(spec.obs_space, spec.action_dim, seed=0)
    driver(functools.partial(agent.policy, mode="explore"), steps=16)
    driver.close()
    keys = rows[0][0].keys()
    return {k: np.stack([np.stack([t[k] for t in r[:8]]) for r in rows]) for k in keys}


def test_train_step_decreases_loss_with_finite_metrics(spec, batch):
    torch.manual_seed(0)
    agent = make_agent(spec, dataclasses.replace(SMALL, lr=3e-3))
    before = params(agent)
    losses = []
    for _ in range(6):
        metrics = agent.train_step(batch)
        losses.append(metrics["model_loss"])
    assert {"model_loss", "model_grad_norm", "image_loss", "reward_loss", "kl"} <= set(metrics)
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values()), metrics
    assert losses[-1] < losses[0], losses
    after = agent.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_state_dict_round_trip(spec, batch):
    agent = make_agent(spec, seed=0)
    agent.train_step(batch)
    buffer = io.BytesIO()  # through serialisation, as a checkpoint file would be
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer)
    other = make_agent(spec, seed=1)
    assert any(not torch.equal(v, other.model.state_dict()[k]) for k, v in state["model"].items())
    other.load_state_dict(state)
    for key, value in agent.model.state_dict().items():
        assert torch.equal(value, other.model.state_dict()[key]), key
    assert torch.equal(agent.generator.get_state(), other.generator.get_state())
    # Resumed training matches: same optimiser moments give the same next update.
    torch.manual_seed(5)
    agent.train_step(batch)
    torch.manual_seed(5)
    other.train_step(batch)
    for key, value in agent.model.state_dict().items():
        torch.testing.assert_close(value, other.model.state_dict()[key])
    with pytest.raises(ValueError, match="optimizer"):
        other.load_state_dict({"model": state["model"], "generator": state["generator"]})


def test_random_agent_surface(spec):
    assert AGENTS["planet"] is PlanetAgent and AGENTS["random"] is RandomAgent
    agent = RandomAgent(spec.obs_space, 3, seed=0)
    carry, action = agent.policy(agent.initial_carry(4), env_obs(4), "explore")
    assert carry is None and action.shape == (4, 3) and action.abs().max() <= 1.0
    assert agent.train_step({}) == {}
    state = agent.state_dict()
    first = agent.policy(None, env_obs(4), "eval")[1]
    agent.load_state_dict(state)
    assert torch.equal(first, agent.policy(None, env_obs(4), "eval")[1])
    onehot = RandomAgent(None, 5, discrete=True).policy(None, env_obs(4), "eval")[1]
    assert torch.equal(onehot.sum(-1), torch.ones(4)) and set(onehot.unique().tolist()) == {0, 1}


def test_driver_runs_the_planet_policy(spec):
    agent = make_agent(spec)
    envs = [make_env("builtin:pointmass", image_size=16) for _ in range(N_ENVS)]
    driver = Driver(envs, seed=0)
    actions = []
    driver.on_step(lambda transition, i: actions.append(transition["action"]))
    carry = driver(functools.partial(agent.policy, mode="explore"), steps=2 * N_ENVS)
    driver.close()
    assert len(actions) == 2 * N_ENVS and np.abs(np.stack(actions)).max() <= 1.0
    np.testing.assert_array_equal(carry.prev_action.numpy(), np.stack(actions[-N_ENVS:]))
