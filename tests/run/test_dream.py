"""Dream videos from a trained run: replayed and agent actions in imagination, and bad input."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch

from rssm.agents import Capabilities, RandomAgent
from rssm.config import apply_overrides, load_presets
from rssm.run.dream import LoadedRun, dream, imagination_policy, load_run, world_model
from rssm.run.train import Config, train

imageio = pytest.importorskip("imageio.v2")

EPISODE_LENGTH = 31  # time_limit 30: the reset row and 30 steps


def tiny_run(root):
    """A PlaNet debug run with image and state observations: 2 seed episodes, 2 updates."""
    config = apply_overrides(
        load_presets(Config, ["planet", "debug"]),
        {
            "logdir": str(root / "run"),
            "env.options": {"obs": "both"},
            "env.time_limit": 30,
            "run.steps": 64,
            "run.seed_episodes": 2,
            "run.train_every": 62,
            "run.train_steps": 2,
            "run.eval_every": 0,
            "run.video_every": 0,
            "run.log_every": 0,
            "run.tensorboard": False,
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train(config)


def read_episode_rows(run_dir, index: int, rows: int) -> dict[str, np.ndarray]:
    """The first ``rows`` rows of saved episode ``index`` of a run, as dream reads them."""
    from rssm.run.dream import read_episode_file, saved_episodes

    data = read_episode_file(saved_episodes(run_dir)[index], load_run(run_dir).spec)
    return {key: value[:rows] for key, value in data.items()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("dream"))


def test_replay_dream_shows_truth_imagination_and_error(run_dir, tmp_path):
    before = torch.get_rng_state()
    result = dream(run_dir, steps=6, context=3, out=tmp_path / "d.mp4", seed=1)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's generator is untouched
    assert result["out"] == tmp_path / "d.mp4" and result["frames"] == 9
    assert result["source"] == "replay" and result["episode_length"] == EPISODE_LENGTH
    frames = imageio.mimread(result["out"])
    assert len(frames) == 9
    height, width = frames[0].shape[:2]
    # labeled rows truth / model / error of one 16x16 image key, each upscaled 8x to 128 px
    assert (height, width) == (3 * 128, 48 + 128)
    assert set(result["mse"]) == {"image", "state"}
    for errors in result["mse"].values():
        assert len(errors) == 6 and all(np.isfinite(errors)) and min(errors) >= 0
    assert set(result["copy_last"]) == {"image", "state"}
    # the baseline repeats the last context row: its error is that row against each true step
    data = read_episode_rows(run_dir, result["episode"], 3 + 6)
    last = data["state"][2].astype(np.float64)
    expected = [float(np.mean((data["state"][3 + i] - last) ** 2)) for i in range(6)]
    np.testing.assert_allclose(result["copy_last"]["state"], expected, rtol=1e-5, atol=1e-7)
    assert max(result["mse"]["image"]) <= 1.0  # [0, 1] units
    assert len(result["reward"]["pred"]) == len(result["reward"]["true"]) == 6
    assert np.array(result["actions"]).shape == (6, 2)
    # The same seed gives the same dream.
    again = dream(run_dir, steps=6, context=3, out=tmp_path / "e.mp4", seed=1)
    assert again["mse"] == result["mse"]


def test_replay_dream_uses_the_recorded_actions(run_dir, tmp_path):
    from rssm.data.episodes import list_episodes, read_episode, read_layout

    files, _ = list_episodes(run_dir / "replay")
    path = files[-1].path
    actions = read_episode(path, read_layout(path)[0])["action"]
    result = dream(run_dir, steps=4, context=2, episode=-1, out=tmp_path / "d.gif")
    assert result["episode"] == len(files) - 1 and result["out"].suffix == ".gif"
    np.testing.assert_allclose(result["actions"], actions[1:5], rtol=1e-6)  # rows c-1 .. c+s-2


def test_agent_dream_plans_in_imagination(run_dir, tmp_path):
    result = dream(run_dir, steps=5, context=4, policy="agent", out=tmp_path / "a.mp4", seed=0)
    frames = imageio.mimread(result["out"])
    assert len(frames) == result["frames"] == 9
    assert frames[0].shape[:2] == (128, 48 + 128)  # one labeled row: the imagination only
    assert result["mse"] == {} and result["reward"]["true"] is None
    actions = np.array(result["actions"])
    assert actions.shape == (5, 2) and np.all(np.abs(actions) <= 1.0)
    # Only the context has to fit the episode in agent mode.
    longer = dream(run_dir, steps=40, context=2, policy="agent", out=tmp_path / "b.mp4")
    assert longer["frames"] == 42


def test_imagination_policy_follows_the_declared_capability(run_dir):
    calls = []

    class ActorAgent:
        capabilities = Capabilities(imagination="actor")

        def imagine_action(self, state, generator=None):
            calls.append(generator)
            return torch.zeros(state.batch_shape[0], 2)

    run = load_run(run_dir)
    state = run.agent.model.initial(3)
    generator = torch.Generator()
    assert imagination_policy(ActorAgent(), generator)(state).shape == (3, 2)
    assert calls == [generator]
    planned = imagination_policy(run.agent, generator)(state)
    assert planned.shape == (3, 2) and planned.abs().max() <= 1.0
    with pytest.raises(TypeError, match="neither an actor nor a planner"):
        imagination_policy(RandomAgent(None, 2), None)
    random_run = LoadedRun(run.config, RandomAgent(None, 2), run.spec, 0)
    with pytest.raises(ValueError, match="no world model"):
        world_model(random_run)


def test_without_saved_episodes_one_is_collected(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("replay"))
    result = dream(copy, steps=3, context=2, out=tmp_path / "d.mp4", seed=0)
    assert result["source"] == "collected" and result["episode_length"] == EPISODE_LENGTH
    with pytest.raises(ValueError, match="saved no episodes.*use 0 .. 0"):
        dream(copy, steps=3, episode=1, out=tmp_path / "d.mp4")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be an int >= 1"),
        ({"context": 0}, "context must be an int >= 1"),
        ({"policy": "dream"}, "'replay' or 'agent'"),
        ({"out": "d.avi"}, r"\.mp4 or \.gif"),
        ({"episode": 2}, "saved 2 episodes.*use 0 .. 1"),
        ({"steps": 40}, "episode 0 has 31 steps.*steps <= 26"),
        ({"context": 31, "steps": 1}, "use context <= 30"),
        ({"context": 32, "policy": "agent"}, "fewer than context=32; use context <= 31"),
    ],
)
def test_bad_arguments_are_named(run_dir, tmp_path, kwargs, message):
    kwargs = {"out": tmp_path / "d.mp4", "context": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        dream(run_dir, **kwargs)
    assert not list(tmp_path.iterdir())  # nothing written


def test_missing_run_or_checkpoint(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dream(tmp_path / "nothing", out=tmp_path / "d.mp4")
    (tmp_path / "fresh").mkdir()
    shutil.copy(run_dir / "config.yaml", tmp_path / "fresh")
    with pytest.raises(FileNotFoundError, match="no checkpoint in .*neither checkpoint.pt"):
        dream(tmp_path / "fresh", out=tmp_path / "d.mp4")


def test_a_chosen_checkpoint(run_dir, tmp_path):
    from rssm.run.checkpoint import CheckpointNotFoundError

    (step,) = [int(p.stem.split("-")[1]) for p in run_dir.glob("checkpoint-*.pt")]
    result = dream(run_dir, steps=2, context=2, out=tmp_path / "d.gif", checkpoint=step)
    assert result["step"] == step and result["frames"] == 4
    with pytest.raises(CheckpointNotFoundError, match=f"checkpoints of steps {step}"):
        dream(run_dir, steps=2, context=2, out=tmp_path / "e.gif", checkpoint=step + 1)
