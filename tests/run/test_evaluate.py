"""``rssm.run.evaluate.evaluate``: returns, repeatability, videos and errors, on a tiny run."""

from __future__ import annotations

import math
import shutil
import sys
import warnings

import numpy as np
import pytest
import torch

from rssm.config import load_presets, merge
from rssm.run import train as train_lib
from rssm.run.checkpoint import CheckpointError, CheckpointNotFoundError
from rssm.run.evaluate import evaluate
from rssm.run.runs import load_run

TIME_LIMIT = 12  # steps per episode: an evaluated episode has TIME_LIMIT + 1 frames


def tiny_config(logdir, **changes) -> train_lib.Config:
    config = load_presets(train_lib.Config, ["planet", "debug"])
    run = {"steps": 24, "eval_every": 0, "video_every": 0, "train_every": 12, "train_steps": 2}
    config = merge(
        config,
        {
            "logdir": str(logdir),
            "env": {"time_limit": TIME_LIMIT},
            "run": {**run, "tensorboard": False},
        },
    )
    return merge(config, changes)


def train_quietly(config: train_lib.Config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_lib.train(config)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_quietly(tiny_config(tmp_path_factory.mktemp("evaluate") / "run"))


def snapshot(directory) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_returns_repeat_under_a_seed_and_leave_torch_rng_alone(run_dir):
    before = torch.get_rng_state()
    returns = evaluate(run_dir, episodes=2)
    assert torch.equal(torch.get_rng_state(), before), "evaluate changed torch's global RNG"
    assert len(returns) == 2 and all(math.isfinite(r) and r >= 0 for r in returns), returns
    assert evaluate(run_dir, episodes=2) == returns  # same seed: same episodes
    assert evaluate(run_dir, episodes=1, seed=123, mode="explore")[0] >= 0


def test_evaluate_run_shows_every_transition_to_on_step(run_dir):
    from rssm.run.evaluate import evaluate_run

    transitions = []
    returns = evaluate_run(
        load_run(run_dir, "cpu"), 2, on_step=lambda t, worker: transitions.append((t, worker))
    )
    assert returns == evaluate(run_dir, episodes=2)  # watching changes nothing
    firsts = [k for k, (t, _) in enumerate(transitions) if t["is_first"]]
    assert firsts == [0, TIME_LIMIT + 1] and len(transitions) == 2 * (TIME_LIMIT + 1)
    assert all(worker == 0 for _, worker in transitions)
    for episode, total in zip(
        (transitions[: TIME_LIMIT + 1], transitions[TIME_LIMIT + 1 :]), returns, strict=True
    ):
        assert episode[-1][0]["is_last"]
        assert sum(float(t["reward"]) for t, _ in episode) == pytest.approx(total)


def test_mp4_video_holds_every_frame_upscaled(run_dir, tmp_path):
    imageio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    before = snapshot(run_dir)
    path = tmp_path / "videos" / "eval.mp4"  # the folder is created
    returns = evaluate(run_dir, episodes=2, video=path)
    assert len(returns) == 2
    reader = imageio.get_reader(path)
    frames = np.stack(list(reader.iter_data()))
    reader.close()
    assert frames.shape == (2 * (TIME_LIMIT + 1), 128, 128, 3), frames.shape  # 16 px x 8
    assert frames.std() > 5, "the frames are blank"
    assert [p.name for p in path.parent.iterdir()] == ["eval.mp4"], "temporary file left"
    assert snapshot(run_dir) == before, "evaluation modified the run directory"


def test_gif_video_and_overwrite(run_dir, tmp_path):
    imageio = pytest.importorskip("imageio.v2")
    path = tmp_path / "eval.gif"
    path.write_bytes(b"old")
    evaluate(run_dir, episodes=1, video=path)
    frames = imageio.mimread(path)
    assert len(frames) == TIME_LIMIT + 1 and frames[0].shape[:2] == (128, 128)


def test_bad_video_path_fails_before_any_work(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"\.mp4 or \.gif"):
        evaluate(run_dir, video=tmp_path / "eval.avi")
    with pytest.raises(ValueError, match="no suffix"):
        evaluate(run_dir, video=tmp_path / "eval")
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        evaluate(run_dir, video=tmp_path / "folder.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["folder.mp4"]


def test_missing_imageio_names_the_extra(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # None: import raises ImportError
    with pytest.raises(ImportError, match=r'pip install "rssm\[video\]".*\.gif'):
        evaluate(run_dir, video=tmp_path / "eval.mp4")
    monkeypatch.setitem(sys.modules, "imageio", None)
    monkeypatch.setitem(sys.modules, "imageio.v2", None)
    with pytest.raises(ImportError, match=r'needs imageio: pip install "rssm\[video\]"'):
        evaluate(run_dir, video=tmp_path / "eval.gif")
    assert not list(tmp_path.iterdir())


def test_video_of_an_env_without_images(tmp_path, monkeypatch):
    pytest.importorskip("imageio")
    config = tiny_config(tmp_path / "run", agent="random", env={"options": {"obs": "state"}})
    run_dir = train_quietly(config)
    with pytest.raises(ValueError, match="no 'image' observation.*render_mode=None"):
        evaluate(run_dir, video=tmp_path / "state.gif")
    assert not (tmp_path / "state.gif").exists()
    # An env that renders rgb_array frames is recorded through env.render().
    make_envs = train_lib.make_envs

    def rendering_envs(*args):
        envs = make_envs(*args)
        for env in envs:
            env.unwrapped.render_mode = "rgb_array"
        return envs

    monkeypatch.setattr(train_lib, "make_envs", rendering_envs)
    evaluate(run_dir, video=tmp_path / "state.gif")
    assert len(pytest.importorskip("imageio.v2").mimread(tmp_path / "state.gif")) == TIME_LIMIT + 1


def test_run_directory_errors(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        evaluate(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.yaml").write_bytes((run_dir / "config.yaml").read_bytes())
    with pytest.raises(CheckpointNotFoundError, match="first one"):
        evaluate(copy)
    (copy / "checkpoint.pt").write_bytes((run_dir / "checkpoint.pt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        evaluate(copy)
    (copy / "config.yaml").write_text("agent: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        evaluate(copy)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="episodes"):
            evaluate(run_dir, episodes=bad)
    with pytest.raises(ValueError, match="mode"):
        evaluate(run_dir, mode="greedy")


def test_checkpoint_of_another_config_names_keys_and_shapes(run_dir, tmp_path):
    other = train_quietly(tiny_config(tmp_path / "other", world_model={"rssm": {"deter": 24}}))
    (other / "checkpoint.pt").write_bytes((run_dir / "checkpoint.pt").read_bytes())
    with pytest.raises(CheckpointError) as error:
        evaluate(other)
    message = str(error.value)
    assert "another config" in message and "\n" not in message
    assert "model.rssm._gru.cell.weight_hh [48, 16] vs [72, 24]" in message, message
    assert "world_model.rssm.deter: 16 -> 24" in message, message


def test_a_corrupt_latest_checkpoint_falls_back_to_the_newest_numbered_one(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)  # copies break the hard link of checkpoint.pt
    assert list(copy.glob("checkpoint-*.pt"))
    (copy / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning, match="corrupt or truncated.*using .*checkpoint-"):
        returns = evaluate(copy)
    assert len(returns) == 1 and all(math.isfinite(r) for r in returns)


def test_a_chosen_checkpoint_by_step_name_or_path(tmp_path):
    run_dir = train_quietly(tiny_config(tmp_path / "two", run={"checkpoint_every": 12}))
    steps = sorted(int(p.stem.split("-")[1]) for p in run_dir.glob("checkpoint-*.pt"))
    assert len(steps) == 2 and steps[-1] == 24, steps
    first = steps[0]
    assert load_run(run_dir).step == 24  # the newest by default
    name = f"checkpoint-{first}.pt"
    for chosen in (first, str(first), name, run_dir / name):
        run = load_run(run_dir, checkpoint=chosen)
        assert (run.step, run.checkpoint.name) == (first, name), chosen
    older = load_run(run_dir, checkpoint=first).agent.state_dict()
    newer = load_run(run_dir).agent.state_dict()
    assert any(not torch.equal(older[k], newer[k]) for k in older if torch.is_tensor(older[k]))
    assert len(evaluate(run_dir, checkpoint=first)) == 1
    listed = f"checkpoints of steps {first}, 24"
    with pytest.raises(CheckpointNotFoundError, match=listed) as error:
        load_run(run_dir, checkpoint=7)
    assert "checkpoint-7.pt" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(CheckpointNotFoundError, match=listed):
        evaluate(run_dir, checkpoint="nothing.pt")


def test_overrides_change_the_evaluation_only(run_dir):
    before = snapshot(run_dir)
    trained = load_run(run_dir).agent.config
    assert (trained.horizon, trained.candidates) == (3, 8)  # the debug preset's
    run = load_run(run_dir, overrides={"planet.horizon": 6, "planet.candidates": 5})
    assert (run.agent.config.horizon, run.agent.config.candidates) == (6, 5)
    assert run.config.planet.horizon == 6
    assert load_run(run_dir, overrides=["--planet.horizon", "4"]).agent.config.horizon == 4
    assert len(evaluate(run_dir, overrides={"planet.horizon": 6})) == 1
    assert snapshot(run_dir) == before  # config.yaml is not rewritten
    assert load_run(run_dir).agent.config.horizon == 3
    with pytest.raises(ValueError, match="planet.horizon"):
        load_run(run_dir, overrides={"planet.horizn": 3})  # misspelled: names the right key
    with pytest.raises(CheckpointError, match=r"world_model.rssm.deter: 16 -> 24"):
        load_run(run_dir, overrides={"world_model.rssm.deter": 24})  # other weights' shapes
