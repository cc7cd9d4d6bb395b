"""The agent training loop on the built-in env with the tiny ``debug`` preset (seconds each)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from rssm.config import load_presets, merge
from rssm.run.checkpoint import load_checkpoint
from rssm.run.evaluate import evaluate
from rssm.run.logger import read_metrics
from rssm.run.train import Config, train


def debug_config(tmp_path, **changes) -> Config:
    config = load_presets(Config, ["planet", "debug"])
    return merge(
        config, {"logdir": str(tmp_path / "run"), "run": {"tensorboard": False}, **changes}
    )


def run(config: Config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. missing optional video/tensorboard backends
        return train(config)


def test_planet_debug_run_writes_config_metrics_checkpoint_and_video(tmp_path):
    run_dir = run(debug_config(tmp_path))
    assert (run_dir / "config.yaml").is_file()
    rows = read_metrics(run_dir)
    train_rows = [r for r in rows if "train/model_loss" in r]
    eval_rows = [r for r in rows if "eval/return" in r]
    assert train_rows and eval_rows, rows
    for row in train_rows + eval_rows:
        for key, value in row.items():
            assert value is not None and math.isfinite(value), (key, row)
    assert all("train/grad_steps_per_env_step" in r for r in train_rows)
    # debug: 5 updates every 50 env steps over 200 steps -> 0.1 updates per env step
    assert train_rows[-1]["train/grad_steps_per_env_step"] == pytest.approx(0.1, abs=0.01)
    assert rows[-1]["step"] >= 200
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["counters"]["agent_steps"] * state["counters"]["action_repeat"] >= 200
    assert state["counters"]["updates"] == 20, state["counters"]
    assert "model" in state["agent"] and "optimizer" in state["agent"]
    assert state["config"]["agent"] == "planet"
    assert isinstance(state["rng"]["torch"], torch.Tensor)
    assert len(list((run_dir / "replay").glob("*.npz"))) >= 3  # finished episodes saved
    pytest.importorskip("imageio")
    assert list((run_dir / "videos").glob("open_loop_image_*")), "no open-loop video"

    returns = evaluate(run_dir, episodes=2)
    assert len(returns) == 2 and all(math.isfinite(r) for r in returns), returns


def test_random_agent_runs(tmp_path):
    run_dir = run(debug_config(tmp_path, agent="random"))
    rows = read_metrics(run_dir)
    assert any("eval/return" in r for r in rows)
    assert rows[-1]["train/updates"] == 0  # a baseline that learns nothing makes no updates
    assert all(math.isfinite(r) for r in evaluate(run_dir, episodes=1))


def test_train_ratio_gives_expected_number_of_updates(tmp_path):
    # 8 replayed rows per agent step with 2x8 batches: 0.5 updates per agent step, seeds included
    config = debug_config(tmp_path, run={"train_ratio": 8.0, "video_every": 0, "eval_every": 0})
    state = load_checkpoint(run(config) / "checkpoint.pt")
    agent_steps, updates = state["counters"]["agent_steps"], state["counters"]["updates"]
    assert agent_steps >= 200
    assert abs(updates - agent_steps * 0.5) <= 1, (updates, agent_steps)


def test_seed_updates_replace_what_the_seed_steps_earn(tmp_path):
    """run.seed_updates: that many updates after the seed episodes, then the ratio counts from
    the end of the seed phase (instead of 0.5 x the seed steps at once)."""
    settings = {"train_ratio": 8.0, "seed_updates": 3, "video_every": 0, "eval_every": 0}
    config = debug_config(tmp_path, run=settings)
    seed_steps = config.run.seed_episodes * 51  # the debug env's episodes: 51 agent steps
    assert seed_steps > 0
    state = load_checkpoint(run(config) / "checkpoint.pt")
    agent_steps, updates = state["counters"]["agent_steps"], state["counters"]["updates"]
    assert abs(updates - (3 + (agent_steps - seed_steps) * 0.5)) <= 1, (updates, agent_steps)
    with pytest.raises(ValueError, match="seed_updates must be an int >= 0"):
        debug_config(tmp_path, run={"seed_updates": -1})


def test_resume_continues_the_run_and_checks_the_config(tmp_path):
    config = debug_config(tmp_path, run={"steps": 100, "eval_every": 0, "video_every": 0})
    run_dir = run(config)
    first = load_checkpoint(run_dir / "checkpoint.pt")["counters"]
    with pytest.raises(ValueError, match="already holds a run"):
        train(config)
    with pytest.raises(ValueError, match="planet.candidates"):
        train(merge(config, {"planet": {"candidates": 16}}), resume=True)
    longer = merge(config, {"run": {"steps": 160}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(longer, resume=True)
    second = load_checkpoint(run_dir / "checkpoint.pt")["counters"]
    assert second["agent_steps"] >= 160 and second["updates"] > first["updates"], (first, second)
    assert first["agent_steps"] < 160


def test_unknown_agent_is_an_error_listing_the_agents(tmp_path):
    config = debug_config(tmp_path)
    config.agent = "dreamer_v9"  # bypasses the Literal check of the config loaders
    with pytest.raises(ValueError, match="planet.*random"):
        train(config)
    assert not (tmp_path / "run").exists(), "a failed start must not create the run directory"


def test_planet_with_discrete_actions_raises_the_agents_error(tmp_path):
    config = debug_config(tmp_path, env={"name": "builtin:pointmass-discrete"})
    with pytest.raises(ValueError, match="discrete"):
        train(config)


def test_run_threads_apply_during_the_run_and_the_caller_keeps_its_own(tmp_path, monkeypatch):
    from rssm.run import train as train_lib
    from rssm.run.run_config import RunConfig, resolve_threads

    assert resolve_threads(RunConfig()) == 1  # CPU runs default to one thread
    assert resolve_threads(RunConfig(threads=3)) == 3
    with pytest.raises(ValueError, match="RunConfig.threads must be a positive int"):
        RunConfig(threads=0)
    seen = []
    build = train_lib._build
    monkeypatch.setattr(
        train_lib, "_build", lambda *a: (seen.append(torch.get_num_threads()), build(*a))[1]
    )
    before = torch.get_num_threads()
    run(debug_config(tmp_path, run={"threads": 2, "tensorboard": False}))
    assert seen == [2] and torch.get_num_threads() == before
