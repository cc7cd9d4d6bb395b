"""The bad-input catalogue, the commands that read a run (``eval``, ``dream``, ``report``,
``plot``), ``envs``, ``world-model`` and the real ``python -m rssm`` process: one clear line,
exit code 2, no file lost. The rules of the catalogue are in bad_input_support.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bad_input_support import (
    assert_error,
    cli,
    episode_files,
    file_in_the_way,
    set_image_size,
    snapshot,
    truncate,
)

from rssm import config as config_lib
from rssm.run.checkpoint import (
    load_checkpoint,
    save_checkpoint,
)
from rssm.run.train import Config

# ------------------------------------------------------------ eval, dream, report, plot


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "--run"],
        ["dream", "--run"],
        ["report", "--run"],
        ["plot"],
    ],
    ids=["eval", "dream", "report", "plot"],
)
def test_missing_run_directory(capsys, tmp_path, command):
    missing = tmp_path / "no-such-run"
    code, _, err = cli(capsys, *command, missing)
    assert_error(code, err, command[0], str(missing), "does not exist")
    assert list(tmp_path.iterdir()) == []


ARGUMENT_CASES = [
    ("eval episodes 0", ["eval", "--episodes", "0"], ["--episodes=0 must be >= 1"]),
    ("eval video suffix", ["eval", "--video", "eval.avi"], ["'eval.avi'", ".mp4 or .gif"]),
    ("dream steps 0", ["dream", "--steps", "0"], ["steps must be an int >= 1, got 0"]),
    ("dream context 0", ["dream", "--context", "0"], ["context must be an int >= 1, got 0"]),
    ("dream out suffix", ["dream", "--out", "dream.avi"], ["'dream.avi'", ".mp4 or .gif"]),
    ("dream too many steps", ["dream", "--steps", "30"], ["too short", "use steps <= 6"]),
    ("dream episode index", ["dream", "--episode", "7"], ["episode=7 is out of range", "0 .. 1"]),
    ("report horizon 0", ["report", "--horizon", "0"], ["horizon must be an int >= 1, got 0"]),
    (
        "report unknown source",
        ["report", "--source", "evaluation"],
        ["'evaluation' is neither 'replay', 'eval' nor a directory", "another run's replay/"],
    ),
]


@pytest.mark.parametrize(
    ("args", "fragments"), [c[1:] for c in ARGUMENT_CASES], ids=[c[0] for c in ARGUMENT_CASES]
)
def test_bad_arguments_of_run_commands(capsys, trained, tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    before = snapshot(trained)
    code, _, err = cli(capsys, args[0], "--run", trained, *args[1:])
    assert_error(code, err, args[0], *fragments)
    assert snapshot(trained) == before and list(tmp_path.iterdir()) == []


def test_plot_unknown_metric_lists_the_logged_ones(capsys, trained, tmp_path):
    out = tmp_path / "curves.png"
    code, _, err = cli(capsys, "plot", trained, "--metric", "episode/retrun", "--out", out)
    assert_error(code, err, "plot", "no run logged metric 'episode/retrun'", "episode/return")
    assert not out.exists()


def test_plot_without_suffix(capsys, trained, tmp_path):
    code, _, err = cli(
        capsys, "plot", trained, "--metric", "episode/return", "--out", tmp_path / "c"
    )
    assert_error(code, err, "plot", "has no suffix", "c.png")


@pytest.mark.parametrize("command", ["eval", "plot"])
def test_run_with_invalid_config_yaml(capsys, run_copy, tmp_path, command):
    (run_copy / "config.yaml").write_text("run: [\n")
    before = snapshot(run_copy)
    if command == "eval":
        code, _, err = cli(capsys, "eval", "--run", run_copy)
    else:
        args = ["plot", run_copy, "--metric", "episode/return", "--out", tmp_path / "c.png"]
        code, _, err = cli(capsys, *args)
    assert_error(code, err, command, "config.yaml is not valid YAML")
    assert snapshot(run_copy) == before


def _damage_checkpoint(kind: str, run: Path) -> list[str]:
    """Damages ``run``'s checkpoint (or its config) one way; returns fragments of the error.
    The numbered checkpoints go, so that there is no good one to fall back to."""
    path = run / "checkpoint.pt"
    for numbered in run.glob("checkpoint-*.pt"):
        numbered.unlink()
    if kind == "truncated":
        truncate(path)
        return ["checkpoint.pt is corrupt or truncated", "restore it from a copy"]
    if kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
        return ["checkpoint.pt is corrupt or truncated", "restore it from a copy"]
    if kind == "world-model checkpoint":
        state = load_checkpoint(path)
        save_checkpoint(path, {"model": state["agent"]["model"], "config": {"run": {}}})
        return ["holds no agent", "not written by rssm train"]
    if kind == "another config":
        config = config_lib.load(Config, run / "config.yaml")
        config_lib.save(config_lib.merge(config, {"world_model": {"rssm": {"deter": 24}}}),
                        run / "config.yaml")  # fmt: skip
        return ["written for another config", "[48, 16] vs [72, 24]", "deter: 16 -> 24"]
    if kind == "planet checkpoint, dreamer run":
        config = config_lib.load_presets(Config, ["dreamer_v3", "debug"])
        config_lib.save(config_lib.merge(config, {"logdir": "run"}), run / "config.yaml")
        return ["written for another config", "agent: 'planet' -> 'dreamer'"]
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "truncated",
        "garbage",
        "world-model checkpoint",
        "another config",
        "planet checkpoint, dreamer run",
    ],
)
def test_eval_of_a_damaged_run(capsys, run_copy, tmp_path, kind):
    fragments = _damage_checkpoint(kind, run_copy)
    before = snapshot(run_copy)
    video = tmp_path / "eval.gif"
    code, _, err = cli(capsys, "eval", "--run", run_copy, "--video", video)
    assert_error(code, err, "eval", *fragments)
    assert snapshot(run_copy) == before and not video.exists()


@pytest.mark.parametrize("command", ["dream", "report"])
@pytest.mark.parametrize("kind", ["truncated", "world-model checkpoint"])
def test_dream_and_report_of_a_damaged_checkpoint(capsys, run_copy, tmp_path, command, kind):
    fragments = _damage_checkpoint(kind, run_copy)
    before = snapshot(run_copy)
    out = tmp_path / ("dream.gif" if command == "dream" else "report")
    code, _, err = cli(capsys, command, "--run", run_copy, "--out", out)
    assert_error(code, err, command, *fragments)
    assert snapshot(run_copy) == before and not out.exists()


def test_dream_of_a_truncated_episode(capsys, run_copy, tmp_path):
    damaged = episode_files(run_copy)[0]
    truncate(damaged)
    before = snapshot(run_copy)
    code, _, err = cli(capsys, "dream", "--run", run_copy, "--out", tmp_path / "d.gif")
    assert_error(code, err, "dream", damaged.name, "damaged", "move it out of the replay")
    assert snapshot(run_copy) == before


def test_dream_of_an_episode_of_another_layout(capsys, run_copy, tmp_path):
    foreign = episode_files(run_copy)[0]
    set_image_size(foreign, 32)
    before = snapshot(run_copy)
    code, _, err = cli(capsys, "dream", "--run", run_copy, "--out", tmp_path / "d.gif")
    assert_error(code, err, "dream", foreign.name, "'image' has shape (32, 32, 3)", "(16, 16, 3)")
    assert snapshot(run_copy) == before


def test_report_skips_a_truncated_episode(capsys, run_copy, tmp_path):
    damaged = episode_files(run_copy)[0]
    truncate(damaged)
    before = snapshot(run_copy)
    out = tmp_path / "report"
    args = ["report", "--run", run_copy, "--out", out, "--horizon", "3", "--context", "2"]
    with pytest.warns(RuntimeWarning, match="skipping corrupt episode.*" + damaged.name):
        code, stdout, err = cli(capsys, *args)
    assert code == 0, err
    assert (out / "report.json").is_file() and "report:" in stdout
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("command", ["dream", "report", "plot", "eval"])
def test_output_path_under_a_file(capsys, trained, tmp_path, command):
    blocker = file_in_the_way(tmp_path)
    before = snapshot(trained)
    if command == "plot":
        args = ["plot", trained, "--metric", "episode/return", "--out", blocker / "c.png"]
    elif command == "eval":
        args = ["eval", "--run", trained, "--video", blocker / "e.gif"]
    else:
        name = "d.gif" if command == "dream" else "report"
        args = [command, "--run", trained, "--out", blocker / name]
        args += ["--steps", "3"] if command == "dream" else ["--horizon", "3"]
    code, _, err = cli(capsys, *args)
    assert_error(code, err, command, str(blocker), "choose another path")
    assert snapshot(trained) == before


def test_envs_unknown_suite(capsys):
    code, _, err = cli(capsys, "envs", "foo")
    assert_error(code, err, "envs", "unknown suite 'foo'", "builtin, gym, dmc, atari")


def test_world_model_unknown_env_writes_nothing(capsys, tmp_path):
    logdir = tmp_path / "wm"
    code, _, err = cli(capsys, "world-model", "--env", "builtin:pointmas", "--logdir", logdir)
    assert_error(code, err, "world-model", "'pointmas'", "Closest: pointmass")
    assert not logdir.exists()


# ---------------------------------------------------------------- the real process


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--configs", "planet", "debugg"], ["did you mean 'debug'"]),
        (["eval", "--run", "no-such-run"], ["no-such-run", "does not exist"]),
        (["train", "--configs", "planet", "debug", "--logdir", "blocker/run"], ["in the way"]),
    ],
    ids=["unknown preset", "missing run", "unwritable logdir"],
)
def test_real_process_exits_2_with_one_line(tmp_path, args, fragments):
    (tmp_path / "blocker").write_text("a file")
    result = subprocess.run(
        [sys.executable, "-m", "rssm", *args], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    err = result.stderr
    assert_error(result.returncode, err, args[0], *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
