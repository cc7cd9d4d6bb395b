"""World-model report: open-loop error per horizon and key, the copy-last baseline, bad input."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from rssm.config import apply_overrides, load_presets
from rssm.data.episodes import list_episodes, read_episode, read_layout
from rssm.run.report import window_starts, world_model_report
from rssm.run.train import Config, train

pytest.importorskip("matplotlib")

EPISODE_LENGTH = 31  # time_limit 30: the reset row and 30 steps


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A PlaNet debug run with image and state observations: 2 seed episodes, 2 updates."""
    root = tmp_path_factory.mktemp("report")
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


def saved(run_dir):
    files, _ = list_episodes(run_dir / "replay")
    return [read_episode(f.path, read_layout(f.path)[0]) for f in files]


def test_window_starts_stay_inside_episodes():
    np.testing.assert_array_equal(window_starts([5, 3, 10], 4, 1), [0, 1, 8, 9, 10, 11, 12, 13, 14])
    np.testing.assert_array_equal(window_starts([5, 3, 10], 4, 2), [0, 8, 10, 12, 14])
    assert window_starts([3, 2], 4, 1).shape == (0,)


def test_report_scores_every_key_against_copy_last(run_dir, tmp_path):
    horizon, context = 6, 3
    report = world_model_report(run_dir, tmp_path / "out", horizon=horizon, context=context)
    assert report["source"] == "replay" and report["episodes"] == 2
    assert report["windows"] == 2 * (EPISODE_LENGTH - horizon - context + 1)
    assert report["horizons"] == list(range(1, horizon + 1))
    assert set(report["keys"]) == {"image", "state", "reward"}
    kinds = {key: entry["kind"] for key, entry in report["keys"].items()}
    assert kinds == {"image": "image", "state": "vector", "reward": "reward"}
    for entry in report["keys"].values():
        for name in ("model", "copy_last"):
            values = np.array(entry[name])
            assert values.shape == (horizon,) and np.all(np.isfinite(values)) and values.min() >= 0
    assert max(report["keys"]["image"]["model"]) <= 1.0  # [0, 1] units per pixel
    # The copy-last baseline at horizon h: the frame h steps later against the last seen one.
    images = [e["image"].astype(np.float64) / 255 for e in saved(run_dir)]
    for h in (1, horizon):
        errors = [
            ((img[s + context - 1 + h] - img[s + context - 1]) ** 2).mean()
            for img in images
            for s in range(EPISODE_LENGTH - horizon - context + 1)
        ]
        np.testing.assert_allclose(report["keys"]["image"]["copy_last"][h - 1], np.mean(errors))
    # Files: the JSON equals the returned data, the PNG is an image.
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    data = {key: value for key, value in report.items() if key not in ("json", "png")}
    assert written == json.loads(json.dumps(data))
    import matplotlib.image

    image = matplotlib.image.imread(report["png"])
    assert image.ndim == 3 and image.shape[1] > image.shape[0] and image.std() > 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "report.png"]


def test_fewer_episodes_stride_and_repeatability(run_dir, tmp_path):
    first = world_model_report(run_dir, tmp_path / "a", horizon=4, context=2, episodes=1)
    assert first["episodes"] == 1 and first["windows"] == EPISODE_LENGTH - 6 + 1
    again = world_model_report(run_dir, tmp_path / "b", horizon=4, context=2, episodes=1)
    assert again["keys"] == first["keys"]  # seeded: the same numbers twice
    strided = world_model_report(run_dir, tmp_path / "c", horizon=4, context=2, stride=5)
    assert strided["windows"] == 2 * 6  # starts 0, 5, .., 25 in each episode


def test_without_saved_episodes_they_are_collected(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("replay"))
    report = world_model_report(copy, tmp_path / "out", horizon=3, context=2)
    assert report["source"] == "collected" and report["episodes"] == 1


def test_held_out_episodes_new_starts_or_another_directory(run_dir, tmp_path):
    from rssm.run.dream import run_episodes
    from rssm.run.runs import load_run

    held_out = world_model_report(
        run_dir, tmp_path / "e", horizon=3, context=2, episodes=2, source="eval"
    )
    assert held_out["source"] == "collected" and held_out["source_dir"] is None
    assert held_out["episodes"] == 2
    replay = world_model_report(run_dir, tmp_path / "r", horizon=3, context=2)
    assert held_out["keys"]["image"]["copy_last"] != replay["keys"]["image"]["copy_last"]
    # the collected starts are none of the training episodes' starts
    new, kind = run_episodes(run_dir, load_run(run_dir), 2, 0, "eval")
    assert kind == "collected"
    firsts = [e["state"][0] for e in saved(run_dir)]
    assert not any(np.array_equal(e["state"][0], first) for e in new for first in firsts)
    # a directory of episodes: the same episodes as the replay give the same numbers
    other = shutil.copytree(run_dir / "replay", tmp_path / "other")
    copied = world_model_report(run_dir, tmp_path / "d", horizon=3, context=2, source=other)
    assert copied["source"] == "directory" and copied["source_dir"] == str(other)
    assert copied["keys"] == replay["keys"] and copied["windows"] == replay["windows"]
    assert json.loads((tmp_path / "d" / "report.json").read_text())["source_dir"] == str(other)


def test_sampled_rollouts_average_their_errors(run_dir, tmp_path):
    import torch

    from rssm.models import scoring
    from rssm.run.dream import world_model
    from rssm.run.runs import load_run

    mode = world_model_report(run_dir, tmp_path / "m", horizon=3, context=2)
    assert mode["samples"] == 0  # Gaussian latents: the mode rollout unless asked
    sampled = world_model_report(run_dir, tmp_path / "s", horizon=3, context=2, samples=2)
    again = world_model_report(run_dir, tmp_path / "a", horizon=3, context=2, samples=2)
    assert sampled["samples"] == 2 and sampled["keys"] == again["keys"]  # seeded
    for key, entry in sampled["keys"].items():
        assert entry["copy_last"] == mode["keys"][key]["copy_last"]
        assert entry["model"] != mode["keys"][key]["model"], key
    # the errors of N sampled rollouts are the mean of N single draws
    model = world_model(load_run(run_dir))
    batch = model.preprocess({key: value[None, :8] for key, value in saved(run_dir)[0].items()})
    torch.manual_seed(3)
    both = scoring.open_loop_errors(model, batch, 2, samples=2)
    torch.manual_seed(3)
    one, two = (scoring.open_loop_errors(model, batch, 2, samples=1) for _ in range(2))
    for key in both:
        torch.testing.assert_close(both[key]["model"], (one[key]["model"] + two[key]["model"]) / 2)


def test_categorical_latents_are_scored_on_sampled_rollouts(tmp_path):
    config = apply_overrides(
        load_presets(Config, ["dreamer_v3", "debug"]),
        {"logdir": str(tmp_path / "run"), "env.time_limit": 20, "run.steps": 40,
         "run.eval_every": 0, "run.video_every": 0, "run.tensorboard": False},
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train(config)
    report = world_model_report(run, tmp_path / "out", horizon=3, context=2)
    assert report["samples"] == 4
    assert world_model_report(run, tmp_path / "m", horizon=3, context=2, samples=0)["samples"] == 0


def test_a_source_that_is_none(run_dir, tmp_path):
    with pytest.raises(ValueError, match="nowhere' is neither 'replay', 'eval' nor a directory"):
        world_model_report(run_dir, tmp_path / "a", source=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no episode files"):
        world_model_report(run_dir, tmp_path / "b", source=tmp_path / "empty")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon": 0}, "horizon must be an int >= 1"),
        ({"context": 0}, "context must be an int >= 1"),
        ({"episodes": 0}, "episodes must be an int >= 1 or None"),
        ({"stride": 0}, "stride must be"),
        ({"samples": -1}, "samples must be an int >= 0 or None"),
        ({"horizon": 30}, "the longest has 31.*horizon <= 26"),
    ],
)
def test_bad_arguments_are_named(run_dir, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        world_model_report(run_dir, tmp_path / "out", **{"context": 5, **kwargs})
    assert not (tmp_path / "out").exists()


def test_missing_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        world_model_report(tmp_path / "nothing", tmp_path / "out")


def test_a_chosen_checkpoint(run_dir, tmp_path):
    from rssm.run.checkpoint import CheckpointNotFoundError

    (step,) = [int(p.stem.split("-")[1]) for p in run_dir.glob("checkpoint-*.pt")]
    report = world_model_report(run_dir, tmp_path / "a", horizon=2, context=2, checkpoint=step)
    assert report["step"] == step
    with pytest.raises(CheckpointNotFoundError, match=f"checkpoints of steps {step}"):
        world_model_report(run_dir, tmp_path / "b", horizon=2, context=2, checkpoint=step + 1)
