"""Offline training (run.offline): an agent trained from stored episode files, without stepping an
environment; steps count updates; the episodes are only read; it resumes exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from rssm.config import load_presets, merge
from rssm.data.episodes import list_episodes
from rssm.run.checkpoint import load_checkpoint
from rssm.run.logger import read_metrics
from rssm.run.train import Config, train


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    """The replay/ folder of a short PlaNet run on the built-in env (3 episodes)."""
    root = tmp_path_factory.mktemp("source")
    config = merge(load_presets(Config, ["planet", "debug"]), {"logdir": str(root / "run")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(config)
    return root / "run" / "replay"


def offline(tmp_path, name, source, algo="dreamer_v3", **run):
    settings = {"offline": True, "steps": 30, "log_every": 10, "checkpoint_every": 10,
                "eval_every": 0, "video_every": 0, "tensorboard": False, **run}  # fmt: skip
    changes = {"logdir": str(tmp_path / name), "replay": {"directory": str(source)},
               "run": settings}  # fmt: skip
    return merge(load_presets(Config, [algo, "debug"]), changes)


def quiet(config, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train(config, **kwargs)


def test_offline_training_counts_updates_and_only_reads_the_episodes(tmp_path, episodes):
    before = {p.name: p.read_bytes() for p in episodes.iterdir()}
    run_dir = quiet(offline(tmp_path, "off", episodes, eval_every=30))
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows if "train/updates" in r] == [10, 20, 30]
    assert rows[-1]["train/updates"] == 30 and rows[-1]["eval/return"] is not None
    assert "train/replay_ratio" not in rows[-1] and "episode/return" not in rows[-1]
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["counters"]["updates"] == 30 and state["counters"]["agent_steps"] == 0
    assert state["exact"]
    assert {p.name: p.read_bytes() for p in episodes.iterdir()} == before
    assert not (run_dir / "replay").exists(), "an offline run writes no episodes"


def test_an_offline_run_resumes_exactly(tmp_path, episodes):
    files = sorted(p.name for p in episodes.iterdir())
    whole = quiet(offline(tmp_path, "whole", episodes))
    quiet(offline(tmp_path, "part", episodes, steps=20))
    part = quiet(offline(tmp_path, "part", episodes), resume=True)
    a, b = (load_checkpoint(d / "checkpoint.pt") for d in (whole, part))
    assert a["counters"] == b["counters"]
    for key, value in a["agent"]["model"].items():
        assert torch.equal(value, b["agent"]["model"][key]), key
    keys = [k for k in read_metrics(whole)[-1] if k.startswith("train/") and "grad" not in k]
    for x, y in zip(read_metrics(whole), read_metrics(part), strict=True):
        assert x["step"] == y["step"]
        for key in keys:
            if key in x:
                np.testing.assert_allclose(x[key], y[key], rtol=1e-6, err_msg=key)
    assert sorted(p.name for p in episodes.iterdir()) == files, "the resume deleted none"
    assert len(list_episodes(episodes)[0]) == 3


def test_offline_bad_input(tmp_path, episodes):
    with pytest.raises(ValueError, match="run.offline needs replay.directory"):
        train(merge(offline(tmp_path, "a", episodes), {"replay": {"directory": None}}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no episode files to train from"):
        train(offline(tmp_path, "b", tmp_path / "empty"))
    with pytest.raises(ValueError, match="is not a folder"):
        train(offline(tmp_path, "c", tmp_path / "missing"))
    online = merge(offline(tmp_path, "d", episodes), {"run": {"offline": False}})
    with pytest.raises(ValueError, match="replay.directory is the folder an offline run"):
        train(online)
    other = merge(offline(tmp_path, "e", episodes), {"env": {"image_size": 32}})
    with pytest.raises(ValueError, match="key 'image' has shape"):
        train(other)


def test_the_world_model_agent_scores_held_out_episodes_at_every_log_row(tmp_path, episodes):
    config = merge(offline(tmp_path, "wm", episodes, held_out=str(episodes)),
                   {"agent": "world_model", "run": {"held_out_horizon": 5}})  # fmt: skip
    quiet(config)
    rows = read_metrics(tmp_path / "wm")
    assert [row["step"] for row in rows] == [10, 20, 30]
    for row in rows:
        assert row["held_out/open_loop_copy_last"] > 0 and row["held_out/open_loop_model"] > 0
        assert "train/model_loss" in row and "train/actor_loss" not in row
    state = load_checkpoint(tmp_path / "wm" / "checkpoint.pt")
    assert set(state["agent"]) == {"model", "optimizer", "generator"}


def test_a_held_out_folder_without_episodes_is_refused_before_the_run_starts(tmp_path, episodes):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"run.held_out .*empty.* holds no episode files"):
        train(offline(tmp_path, "a", episodes, held_out=str(empty)))
    with pytest.raises(ValueError, match=r"no episode has the 1005 steps"):
        train(offline(tmp_path, "b", episodes, held_out=str(episodes), held_out_horizon=1000))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_report_and_dream_of_an_offline_run_read_the_episodes_it_trained_from(tmp_path, episodes):
    from rssm.run.dream import dream
    from rssm.run.report import world_model_report

    run_dir = quiet(offline(tmp_path, "off", episodes, algo="planet", steps=10))
    report = world_model_report(run_dir, tmp_path / "report", horizon=2, context=2)
    assert report["source"] == "replay" and report["episodes"] == 3
    assert report["windows"] == sum(f.length - 4 + 1 for f in list_episodes(episodes)[0])
    with pytest.raises(ValueError, match=f"the run saved 3 episodes in {episodes}"):
        dream(run_dir, steps=2, out=tmp_path / "d.gif", context=2, episode=3)
