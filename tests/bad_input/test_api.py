"""The bad-input catalogue, the public Python API: envs, configs, presets, behaviour building
blocks, agents, replay and checkpoints raise errors that name the problem and the fix. The rules
of the catalogue are in bad_input_support.py.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from bad_input_support import (
    PLANET,
    assert_error,
    cli,
    set_image_size,
    snapshot,
    truncate,
)

from rssm import config as config_lib
from rssm.behavior import ReturnNormalizer, cem, lambda_return
from rssm.data import Driver, Replay
from rssm.envs import env_spec, make_env
from rssm.models import world_model_config
from rssm.run.checkpoint import (
    CheckpointError,
    IncompatibleCheckpointError,
    check_compatible,
    load_checkpoint,
)
from rssm.run.train import Config, make_agent

# ------------------------------------------------------------------------ public API


def test_make_env_errors():
    with pytest.raises(ValueError, match=r"'foo:bar' must be 'suite:id' with suite one of builtin"):
        make_env("foo:bar")
    with pytest.raises(ValueError, match=r"unknown builtin env 'pointmas'\. Closest: pointmass"):
        make_env("builtin:pointmas")
    with pytest.raises(ValueError, match=r"unknown option\(s\) colour .* it accepts: obs"):
        make_env("builtin:pointmass", colour="red")
    with pytest.raises(ValueError, match=r"image_size=-1 must be a positive int"):
        make_env("builtin:pointmass", image_size=-1)


def test_config_functions_name_the_key_and_the_fix(tmp_path):
    with pytest.raises(
        ValueError, match=r"expected Config, got \[1, 2\] .*a mapping of its fields"
    ):
        config_lib.from_dict(Config, [1, 2])
    with pytest.raises(ValueError, match=r"'replay.batchsize'; did you mean 'replay.batch_size'"):
        config_lib.from_dict(Config, {"replay": {"batchsize": 3}})
    with pytest.raises(ValueError, match=r"config key 'seed': expected int, got 'zero'"):
        config_lib.merge(Config(), {"seed": "zero"})
    with pytest.raises(TypeError, match=r"overrides are a list of tokens \(e\.g\. shlex\.split\)"):
        config_lib.apply_overrides(Config(), "--seed 1")
    with pytest.raises(ValueError, match=r"unknown preset 'planet' \(available in .*: none\)"):
        config_lib.load_presets(Config, ["planet"], directory=tmp_path / "nothing")


def test_invalid_yaml_preset_in_a_directory(tmp_path):
    (tmp_path / "broken.yaml").write_text("run:\n  steps: [1, 2\n")
    (tmp_path / "listed.yaml").write_text("- a\n- b\n")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as error:
        config_lib.load_presets(Config, ["broken"], directory=tmp_path)
    text = str(error.value)
    assert "preset 'broken'" in text and "not valid YAML at line" in text and "fix the file" in text
    assert len(text.splitlines()) == 1, text
    with pytest.raises(ValueError, match=r"preset 'listed' .*expected a mapping .*got list"):
        config_lib.load_presets(Config, ["listed"], directory=tmp_path)
    assert snapshot(tmp_path) == before


def test_unknown_agent_and_world_model_preset():
    spec = env_spec(make_env("builtin:pointmass", image_size=16))
    config = dataclasses.replace(config_lib.load_presets(Config, ["planet", "debug"]), agent="sac")
    with pytest.raises(ValueError, match=r"unknown agent 'sac'; choose one of dreamer, planet"):
        make_agent(config, spec)
    with pytest.raises(ValueError, match=r"unknown preset 'planett'; known: \['dreamer_v1'"):
        world_model_config("planett")


def test_behavior_building_blocks_check_their_inputs():
    zeros = torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"cont has shape \(2, 3\) but reward has shape \(2, 4\)"):
        lambda_return(zeros, torch.zeros(2, 3), zeros, discount=0.99, lam=0.95)
    with pytest.raises(ValueError, match=r"reward must have shape \[N, H\+1\].*got \(4,\)"):
        lambda_return(torch.zeros(4), torch.zeros(4), torch.zeros(4), discount=0.99, lam=0.95)
    with pytest.raises(ValueError, match=r"discount must lie in \[0, 1\], got 1\.5"):
        lambda_return(zeros, zeros, zeros, discount=1.5, lam=0.95)

    def objective(actions):
        return -actions.square().sum((-1, -2))

    mean = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"elites \(8\) must be <= candidates \(4\); lower elites"):
        cem(objective, mean, 1.0, iterations=2, candidates=4, elites=8)
    with pytest.raises(ValueError, match=r"candidates must be a positive int, got 0"):
        cem(objective, mean, 1.0, iterations=2, candidates=0, elites=1)
    with pytest.raises(ValueError, match=r"low \(1\.0\) must be <= high \(-1\.0\)"):
        cem(objective, mean, 1.0, iterations=2, candidates=4, elites=2, low=1.0, high=-1.0)
    with pytest.raises(ValueError, match=r"0 <= low < high <= 100, got low=95, high=5"):
        ReturnNormalizer(low=95, high=5)
    with pytest.raises(ValueError, match=r"0 <= low < high <= 100, got low=5\.0, high=150"):
        ReturnNormalizer(high=150)
    with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\), got 1\.0"):
        ReturnNormalizer(decay=1.0)


def test_actions_of_the_wrong_shape():
    env = make_env("builtin:pointmass", image_size=16)
    driver = Driver([env], seed=0)
    with pytest.raises(ValueError, match=r"action of shape \(3,\) does not fit .*with 2 numbers"):
        driver(lambda carry, obs: (carry, np.zeros((1, 3), np.float32)), steps=2)
    with pytest.raises(ValueError, match=r"shape \(2,\), expected \[N, A\] with N=1 envs"):
        driver(lambda carry, obs: (carry, np.zeros(2, np.float32)), steps=2)
    driver.close()


def test_policy_with_a_carry_or_observation_of_the_wrong_size(planet_parts):
    agent, batch = planet_parts
    obs = {key: value[:, 0] for key, value in batch.items() if key != "action"}  # N = 2
    with pytest.raises(ValueError, match=r"prev_action has shape \(3, 2\).*initial_carry\(2\)"):
        agent.policy(agent.initial_carry(3), obs, "eval")
    carry = agent.initial_carry(2)
    wrong_plan = carry._replace(plan=torch.zeros(2, 7, 2))
    with pytest.raises(
        ValueError, match=r"carry\.plan has shape \(2, 7, 2\), expected .*\[2, 3, 2\]"
    ):
        agent.policy(wrong_plan, obs, "eval")
    small = {**obs, "image": np.zeros((2, 8, 8, 3), np.uint8)}
    with pytest.raises(
        ValueError, match=r"'image' has shape \(2, 8, 8, 3\), expected \[\.\.\., 16"
    ):
        agent.policy(None, small, "eval")
    with pytest.raises(ValueError, match=r"mode='greedy'; use 'explore' or 'eval'"):
        agent.policy(None, obs, "greedy")


@pytest.mark.parametrize("key", ["reward", "state"])
def test_nan_in_a_batch_skips_the_update(planet_parts, key):
    """WorldModel.loss returns a non-finite loss (its term names the culprit); train_step skips
    the optimiser step, leaves weights and Adam state as they were and reports it."""
    agent, batch = planet_parts
    bad = {k: v.copy() for k, v in batch.items()}
    bad[key][0, 3] = np.nan
    output = agent.model.loss(agent.model.preprocess(bad))
    assert not torch.isfinite(output.loss)
    term = output.terms[key]  # [B, T]: the NaN row is non-finite, the other sequence is not
    assert not torch.isfinite(term[0]).all() and torch.isfinite(term[1]).all()
    weights = [p.detach().clone() for p in agent.model.parameters()]
    adam = agent.model_opt.state_dict()["state"]
    metrics = agent.train_step(bad)
    assert metrics["model_nonfinite"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(weights, agent.model.parameters(), strict=True))
    assert agent.model_opt.state_dict()["state"].keys() == adam.keys()


def test_replay_skips_a_truncated_episode_and_keeps_the_others(trained, tmp_path):
    directory = tmp_path / "replay"
    shutil.copytree(trained / "replay", directory)
    damaged, *good = sorted(directory.glob("*.npz"))
    truncate(damaged)
    before = snapshot(directory)
    replay = Replay(1000, directory=directory)
    with pytest.warns(RuntimeWarning, match="skipping corrupt episode.*" + damaged.name):
        loaded = replay.load()
    assert loaded == len(good) and len(replay) == 11 * len(good)
    assert snapshot(directory) == before


def test_replay_directory_of_another_layout(trained, tmp_path):
    directory = tmp_path / "replay"
    shutil.copytree(trained / "replay", directory)
    foreign = sorted(directory.glob("*.npz"))[-1]
    set_image_size(foreign, 32)
    before = snapshot(directory)
    replay = Replay(1000, directory=directory)
    with pytest.raises(ValueError, match=r"does not match this replay: key 'image' has shape"):
        replay.load()
    assert len(replay) == 0, "nothing may be loaded from a directory of mixed layouts"
    assert snapshot(directory) == before


def test_checkpoint_api_errors(trained, tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes((trained / "checkpoint.pt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"corrupt or truncated \(1000 bytes"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*first checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    saved = {"model": {"w": torch.zeros(3, 4)}}
    with pytest.raises(IncompatibleCheckpointError, match=r"model\.w \[3, 4\] vs \[3, 5\]"):
        check_compatible(saved, {"model": {"w": torch.zeros(3, 5)}}, path=path)


def test_a_replay_larger_than_ram_is_one_line_before_the_run_directory_exists(
    capsys, tmp_path, monkeypatch
):
    from rssm.data import replay as replay_module

    monkeypatch.setattr(replay_module, "_physical_memory", lambda: 64 * 2**20)  # 64 MiB
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *PLANET, "--logdir", "run", "--replay.capacity", "1000000")
    assert_error(code, err, "train", "replay.capacity=1000000 needs about", "lower replay.capacity")
    assert "replay.storage=disk" in err
    assert not (tmp_path / "run").exists(), "nothing written: a rerun is not blocked"
