"""Learning-curve plots: grouping seeds by config, interpolated mean/spread, resumes, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rssm.config import load_presets, merge, save
from rssm.run.plot import plot_runs
from rssm.run.train import Config

pytest.importorskip("matplotlib")


def make_run(root, name, rows, *, seed=0, horizon=3):
    """A run directory with a real config.yaml and a hand-written metrics.jsonl."""
    run_dir = root / name
    config = load_presets(Config, ["planet", "debug"])
    config = merge(config, {"seed": seed, "logdir": str(run_dir), "planet": {"horizon": horizon}})
    save(config, run_dir / "config.yaml")
    with open(run_dir / "metrics.jsonl", "w") as file:
        for row in rows:
            file.write(json.dumps(row) + "\n")
    return run_dir


def curve(steps, values, times=None, metric="eval/return"):
    times = steps if times is None else times
    return [{"step": s, "time": t, metric: v} for s, t, v in zip(steps, times, values, strict=True)]


@pytest.fixture
def runs(tmp_path):
    """Three seeds of one experiment (horizon 3) and one run of another (horizon 5)."""
    seed0 = curve([0, 100, 200], [0.0, 10.0, 20.0])
    seed0.insert(1, {"step": 50, "time": 50, "episode/return": 7.0})  # other metric only
    seed0.insert(2, {"step": 60, "time": 60, "eval/return": None})  # non-finite: skipped
    seed1 = curve([0, 50, 200], [2.0, 4.0, 22.0])
    seed2 = curve([0, 100, 200, 300], [0.0, 30.0, 30.0, 40.0])
    other = curve([0, 100], [5.0, 6.0])
    return [
        make_run(tmp_path, "a0", seed0, seed=0),
        make_run(tmp_path, "a1", seed1, seed=1),
        make_run(tmp_path, "b0", other, seed=0, horizon=5),
        make_run(tmp_path, "a2", seed2, seed=2),
    ]


def test_seeds_are_grouped_and_interpolated_onto_a_common_grid(tmp_path, runs):
    result = plot_runs(runs, tmp_path / "out" / "curves.png")
    groups = result["groups"]
    assert set(groups) == {"planet.horizon=3", "planet.horizon=5"}
    seeds = groups["planet.horizon=3"]
    assert seeds["seeds"] == 3 and seeds["runs"] == [str(runs[i]) for i in (0, 1, 3)]
    # Union of the seeds' steps inside the range all of them cover ([0, 200]).
    np.testing.assert_allclose(seeds["steps"], [0, 50, 100, 200])
    # Interpolated seeds: [0, 5, 10, 20], [2, 4, 10, 22], [0, 15, 30, 30].
    np.testing.assert_allclose(seeds["mean"], [2 / 3, 8, 50 / 3, 24])
    np.testing.assert_allclose(seeds["low"], [0, 4, 10, 20])
    np.testing.assert_allclose(seeds["high"], [2, 15, 30, 30])
    single = groups["planet.horizon=5"]
    assert single["seeds"] == 1
    np.testing.assert_allclose(single["mean"], [5, 6])
    np.testing.assert_allclose(single["low"], single["high"])
    assert result["time_unit"] == "minutes"  # the longest run took 300 s


def test_png_is_a_valid_image_written_atomically(tmp_path, runs):
    import matplotlib.image

    out = tmp_path / "out" / "curves.png"
    result = plot_runs(runs, out)
    assert result["out"] == out
    image = matplotlib.image.imread(out)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 2 * image.shape[0]
    assert image.std() > 0  # something was drawn
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # no temporary files left


def test_std_spread_and_explicit_labels(tmp_path, runs):
    labels = ["x", "x", "y", "y"]  # regroup: a0+a1 and b0+a2
    result = plot_runs(runs, tmp_path / "c.png", labels=labels, spread="std")
    x = result["groups"]["x"]
    np.testing.assert_allclose(x["steps"], [0, 50, 100, 200])
    values = np.array([[0, 5, 10, 20], [2, 4, 10, 22]])
    np.testing.assert_allclose(x["mean"], values.mean(0))
    np.testing.assert_allclose(x["high"] - x["mean"], values.std(0))
    y = result["groups"]["y"]
    np.testing.assert_allclose(y["steps"], [0, 100])  # overlap of [0, 100] and [0, 300]
    np.testing.assert_allclose(y["mean"], [(5 + 0) / 2, (6 + 30) / 2])


def test_wall_clock_continues_across_a_resume(tmp_path):
    # The resumed logger restarts time at 0 and re-logs step 200, which replaces the old row.
    rows = curve([0, 100, 200, 200, 300], [0.0, 1.0, 2.0, 5.0, 3.0], times=[0, 10, 20, 4, 8])
    run_dir = make_run(tmp_path, "resumed", rows)
    result = plot_runs([run_dir], tmp_path / "c.png")
    (group,) = result["groups"].values()
    np.testing.assert_allclose(group["steps"], [0, 100, 200, 300])
    np.testing.assert_allclose(group["mean"], [0, 1, 5, 3])
    np.testing.assert_allclose(group["seconds"], [0, 10, 24, 28])
    assert result["time_unit"] == "seconds"


def test_runs_without_the_metric_are_skipped(tmp_path, runs):
    empty = make_run(tmp_path, "early", [{"step": 10, "time": 1, "episode/return": 1.0}], seed=9)
    result = plot_runs([*runs, empty], tmp_path / "c.png")
    assert result["skipped"] == [str(empty)]
    assert result["groups"]["planet.horizon=3"]["seeds"] == 3


def test_errors_name_the_problem(tmp_path, runs):
    with pytest.raises(ValueError, match="empty"):
        plot_runs([], tmp_path / "c.png")
    (tmp_path / "nometrics").mkdir()
    with pytest.raises(ValueError, match="nometrics.*metrics.jsonl"):
        plot_runs([runs[0], tmp_path / "nometrics"], tmp_path / "c.png")
    with pytest.raises(ValueError, match="does not exist"):
        plot_runs([tmp_path / "missing"], tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"'eval/retrun'.*logged: eval/return, episode/return"):
        plot_runs(runs, tmp_path / "c.png", metric="eval/retrun")
    with pytest.raises(ValueError, match="labels has 1 entries for 4"):
        plot_runs(runs, tmp_path / "c.png", labels=["a"])
    assert not (tmp_path / "c.png").exists()


def test_groups_with_the_same_name_stay_apart(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    runs = []
    for parent, value in (("x", 1.0), ("y", 3.0)):
        run_dir = tmp_path / parent / "run"  # no config.yaml: named after the directory
        run_dir.mkdir()
        (run_dir / "metrics.jsonl").write_text(json.dumps(curve([0, 10], [value, value])[1]))
        runs.append(run_dir)
    groups = plot_runs(runs, tmp_path / "c.png")["groups"]
    assert sorted(g["mean"][0] for g in groups.values()) == [1.0, 3.0]
    assert all(g["seeds"] == 1 for g in groups.values())


def test_return_plots_draw_the_random_policy_of_runs_that_logged_it(tmp_path):
    rows = [{"step": 50, "time": 5, "episode/random_return": 4.0}, *curve([100, 200], [9.0, 12.0])]
    a = make_run(tmp_path, "a", rows, seed=0)
    b = make_run(tmp_path, "b", [{**rows[0], "episode/random_return": 6.0}, *rows[1:]], seed=1)
    assert plot_runs([a, b], tmp_path / "r.png")["random"] == 5.0  # mean over the runs
    other = curve([100, 200], [1.0, 2.0], metric="train/value_mean")
    c = make_run(tmp_path, "c", [rows[0], *other], seed=2)
    assert plot_runs([c], tmp_path / "v.png", metric="train/value_mean")["random"] is None
    assert plot_runs([make_run(tmp_path, "d", rows[1:])], tmp_path / "d.png")["random"] is None
