"""Fixtures of the bad-input catalogue: one tiny PlaNet run per test module, copied per test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from bad_input_support import PLANET, episode_files

from rssm import config as config_lib
from rssm.agents import PlanetAgent
from rssm.cli import main
from rssm.data import Driver, RandomPolicy, Replay
from rssm.envs import env_spec, make_env
from rssm.run.train import Config


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny PlaNet run (logdir ``run``, two saved episodes); never modified by a test."""
    root = tmp_path_factory.mktemp("bad-input")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main([*PLANET, "--logdir", "run"]) == 0
    finally:
        os.chdir(cwd)
    run = root / "run"
    assert len(episode_files(run)) >= 2 and (run / "checkpoint.pt").is_file()
    return run


@pytest.fixture
def run_copy(trained, tmp_path, monkeypatch) -> Path:
    """A copy of the trained run at ``tmp_path / "run"``, with ``tmp_path`` as the cwd."""
    target = tmp_path / "run"
    shutil.copytree(trained, target)
    monkeypatch.chdir(tmp_path)
    return target


@pytest.fixture(scope="module")
def planet_parts():
    """A PlaNet agent (debug sizes) on ``builtin:pointmass`` with image and state, and a batch."""
    env = make_env("builtin:pointmass", image_size=16, time_limit=12, obs="both")
    spec = env_spec(env)
    config = config_lib.load_presets(Config, ["planet", "debug"])
    agent = PlanetAgent(spec.obs_space, spec.action_dim, config.world_model, config.planet)
    replay = Replay(100, seed=0)
    driver = Driver([env], seed=0)
    driver.on_step(replay.add)
    driver(RandomPolicy(spec.action_dim, seed=0), episodes=1)
    driver.close()
    return agent, replay.sample(2, 8)
