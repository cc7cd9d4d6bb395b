"""DreamerAgent: acting, the train step of both action kinds, checkpoints, and CLI smoke runs of
the Dreamer presets (built-in envs, a discrete-action env, DMC proprio)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rssm.agents import AGENTS, DreamerAgent, DreamerConfig
from rssm.behavior import ActorConfig, ActorCriticConfig, CriticConfig
from rssm.cli import main
from rssm.config import load
from rssm.data import Driver, RandomPolicy, Replay
from rssm.envs import env_spec, make_env
from rssm.run.checkpoint import load_checkpoint
from rssm.run.train import Config
from rssm.run.world_model import tiny_config

SMALL = DreamerConfig(
    actor_critic=ActorCriticConfig(
        actor=ActorConfig(units=16, layers=1),
        critic=CriticConfig(units=16, layers=1, bins=15),
        horizon=3,
    ),
    model_lr=1e-3,
    actor_lr=1e-3,
    critic_lr=1e-3,
)


def make(discrete: bool, **kwargs):
    name = "builtin:pointmass-discrete" if discrete else "builtin:pointmass"
    env = make_env(name, image_size=16, time_limit=20)
    spec = env_spec(env)
    agent = DreamerAgent(
        spec.obs_space, spec.action_dim, tiny_config("categorical"), kwargs.pop("config", SMALL),
        discrete=spec.discrete, **kwargs,
    )  # fmt: skip
    return env, spec, agent


def batch_of(env, spec, steps: int = 60):
    replay = Replay(1000, seed=0)
    driver = Driver([env], seed=0)
    driver.on_step(replay.add)
    driver(RandomPolicy(spec.action_dim, spec.discrete, 0), steps=steps)
    return replay.sample(3, 8)


def test_registered_as_an_agent():
    assert AGENTS["dreamer"] is DreamerAgent


@pytest.mark.parametrize("discrete", [False, True])
def test_train_step_updates_model_actor_and_critic(discrete):
    env, spec, agent = make(discrete)
    batch = batch_of(env, spec)
    before = {
        name: [p.detach().clone() for p in module.parameters()]
        for name, module in (
            ("model", agent.model),
            ("actor", agent.behavior.actor),
            ("critic", agent.behavior.critic),
        )
    }
    metrics = agent.train_step(batch)
    for key in ("model_loss", "actor_loss", "critic_loss", "actor_entropy", "return_mean"):
        assert math.isfinite(metrics[key]), (key, metrics[key])
    # how close a continuous actor sits to its bounds; a one-hot actor has no such mode
    assert ("actor_mode_abs" in metrics) == (not discrete)
    assert discrete or 0.0 <= metrics["actor_mode_abs"] <= 1.0
    changed = {
        name: any(not torch.equal(a, b) for a, b in zip(old, module.parameters(), strict=True))
        for (name, old), module in zip(
            before.items(), (agent.model, agent.behavior.actor, agent.behavior.critic), strict=True
        )
    }
    assert changed == {"model": True, "actor": True, "critic": True}
    assert agent.behavior.actor_grad == ("reinforce" if discrete else "dynamics")


@pytest.mark.parametrize("last", [0, 2])
def test_imag_last_imagines_from_the_last_steps_of_each_sequence(monkeypatch, last):
    config = DreamerConfig(**{**vars(SMALL), "actor_critic": ActorCriticConfig(
        **{**vars(SMALL.actor_critic), "imag_last": last})})  # fmt: skip
    env, spec, agent = make(False, config=config)
    batch = batch_of(env, spec)  # [3, 8]
    batch["is_terminal"][:, -1] = True  # the last step of each sequence is terminal
    seen = {}
    original = agent.behavior.loss

    def loss(model, start, start_cont):
        seen["deter"], seen["cont"] = start.deter.detach().clone(), start_cont.clone()
        return original(model, start, start_cont)

    monkeypatch.setattr(agent.behavior, "loss", loss)
    torch.manual_seed(0)
    with torch.no_grad():  # the posteriors train_step will see (same seed, same weights)
        posterior = agent.model.loss(agent.model.preprocess(batch)).posterior
    torch.manual_seed(0)
    agent.train_step(batch)
    steps = last or 8
    # the starts are the posteriors of the last ``steps`` steps of each sequence, in order,
    # with their continuation flags
    expected = posterior.deter[:, -steps:].reshape(3 * steps, -1)
    torch.testing.assert_close(seen["deter"], expected)
    cont = seen["cont"].reshape(3, steps)
    assert (cont[:, -1] == 0).all() and (cont[:, :-1] == 1).all()


def test_imag_last_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="imag_last must be >= 0"):
        ActorCriticConfig(imag_last=-1)


def test_acting_policy_shares_parameter_storage_with_the_trained_actor():
    env, spec, agent = make(discrete=False)
    trained = agent.actor_opt.param_groups[0]["params"]
    acting = list(agent.behavior.actor.parameters())
    assert len(trained) == len(acting) and all(a is b for a, b in zip(trained, acting, strict=True))
    # Writing through the optimiser's references changes what the policy does.
    weight, bias = trained[-2], trained[-1]  # the output layer: [2A, units], [2A]
    with torch.no_grad():
        weight.zero_()
        bias.zero_()
        bias[: spec.action_dim] = math.atanh(0.5)
    obs, _ = env.reset(seed=0)
    obs = {k: np.asarray(v)[None] for k, v in obs.items()}
    _, action = agent.policy(None, obs, mode="eval")
    torch.testing.assert_close(action, torch.full((1, spec.action_dim), 0.5))


@pytest.mark.parametrize("discrete", [False, True])
def test_eval_takes_the_actor_mode_and_explore_samples(discrete):
    env, spec, agent = make(discrete)
    obs, _ = env.reset(seed=0)
    obs = {k: np.repeat(np.asarray(v)[None], 64, 0) for k, v in obs.items()}
    actions = {}
    for mode in ("eval", "eval", "explore"):  # the posterior's latent sample is seeded alike
        torch.manual_seed(0)
        actions.setdefault(mode, []).append(agent.policy(None, obs, mode=mode)[1])
    assert torch.equal(actions["eval"][0], actions["eval"][1])
    assert not torch.equal(actions["eval"][0], actions["explore"][0])
    explore = actions["explore"][0]
    if discrete:
        assert torch.equal(explore.sum(-1), torch.ones(64))
    else:
        assert explore.abs().max() <= 1.0


def test_discrete_exploration_noise_picks_random_actions():
    config = DreamerConfig(actor_critic=SMALL.actor_critic, expl_noise=1.0)
    env, spec, agent = make(discrete=True, config=config)
    obs, _ = env.reset(seed=0)
    obs = {k: np.repeat(np.asarray(v)[None], 400, 0) for k, v in obs.items()}
    _, action = agent.policy(None, obs, mode="explore")
    counts = action.sum(0)
    assert torch.equal(action.sum(-1), torch.ones(400))
    assert (counts > 400 / spec.action_dim / 2).all(), counts  # roughly uniform


def test_state_dict_round_trip_restores_behaviour(tmp_path):
    env, spec, agent = make(discrete=False)
    agent.train_step(batch_of(env, spec))
    state = agent.state_dict()
    torch.save(state, tmp_path / "agent.pt")
    _, _, fresh = make(discrete=False, seed=123)
    fresh.load_state_dict(torch.load(tmp_path / "agent.pt", weights_only=True))
    for a, b in zip(agent.behavior.state_dict().values(), fresh.behavior.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    assert int(fresh.behavior.updates) == 1
    with pytest.raises(ValueError, match="missing keys"):
        fresh.load_state_dict({"model": state["model"]})


def _run(tmp_path, name: str, *args: str) -> dict:
    logdir = tmp_path / name
    assert main(["train", *args, "--logdir", str(logdir)]) == 0
    assert (logdir / "checkpoint.pt").is_file() and (logdir / "config.yaml").is_file()
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    assert last["step"] >= 200 and math.isfinite(last["eval/return"])
    return {"logdir": logdir, "rows": rows, "config": load(Config, logdir / "config.yaml")}


@pytest.mark.parametrize("env", ["builtin:pointmass", "builtin:pointmass-discrete"])
def test_cli_dreamer_v3_debug_smoke_run(tmp_path, env):
    run = _run(tmp_path, "v3", "--configs", "dreamer_v3", "debug", "--env", env)
    trained = [row for row in run["rows"] if "train/actor_loss" in row]
    assert trained and all(math.isfinite(row["train/critic_loss"]) for row in trained)
    assert list((run["logdir"] / "videos").iterdir())  # the open-loop video
    state = load_checkpoint(run["logdir"] / "checkpoint.pt")
    assert {"model", "behavior", "actor_opt", "critic_opt"} <= set(state["agent"])
    assert main(["eval", "--run", str(run["logdir"]), "--episodes", "1"]) == 0


def test_any_behaviour_on_any_latent(tmp_path):
    cem = _run(tmp_path, "cem", "--configs", "dreamer_v3", "debug", "--agent", "planet")
    assert cem["config"].agent == "planet"
    assert cem["config"].world_model.rssm.latent == "categorical"
    ac = _run(tmp_path, "ac", "--configs", "dreamer_v1", "planet", "debug", "--agent", "dreamer")
    assert ac["config"].agent == "dreamer"
    assert ac["config"].world_model.rssm.latent == "gaussian"
    assert ac["config"].dreamer.actor_critic.actor.dist_cont == "tanh_normal"
    assert any("train/actor_loss" in row for row in ac["rows"])


@pytest.mark.dmc
@pytest.mark.parametrize("preset", ["dreamer_v1", "dreamer_v3"])
def test_cli_dreamer_on_dmc_cartpole_swingup_proprio(tmp_path, preset):
    pytest.importorskip("dm_control")
    run = _run(
        tmp_path, preset, "--configs", preset, "dmc_proprio", "debug",
        "--env", "dmc:cartpole-swingup", "--env.time_limit", "100", "--run.steps", "200",
    )  # fmt: skip
    assert run["config"].env.options == {"obs": "proprio"}
    assert any("train/actor_loss" in row for row in run["rows"])


def test_every_agent_has_the_agent_interface_and_declares_its_capabilities():
    import gymnasium as gym
    import numpy as np

    from rssm.agents import AGENTS, Agent
    from rssm.config import load_presets, merge
    from rssm.run.train import Config

    obs_space = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (3,), np.float32)})
    expected = {
        "dreamer": (True, True, "actor"),
        "planet": (True, True, "planner"),
        "random": (False, False, "none"),
        "world_model": (True, True, "none"),
    }
    for name, cls in AGENTS.items():
        preset = {"dreamer": "dreamer_v3", "planet": "planet"}.get(name, "planet")
        no_images = {"cnn_keys": "$^"}
        changes = {"world_model": {"encoder": no_images, "decoder": no_images}}
        config = merge(load_presets(Config, [preset, "debug"]), changes)
        config = merge(config, {"agent": name})
        agent = cls(obs_space, 2, config.world_model, config.agent_config(), seed=0)
        assert isinstance(agent, Agent), name
        caps = agent.capabilities
        assert (caps.learns, caps.world_model, caps.imagination) == expected[name], name
        assert caps.world_model == hasattr(agent, "model")
        if caps.imagination == "actor":
            assert callable(agent.imagine_action)
        if caps.imagination == "planner":
            assert callable(agent.planning_objective)
