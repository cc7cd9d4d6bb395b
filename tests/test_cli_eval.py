"""``rssm eval``: returns and a video from a tiny run; every unusable run directory is one clear
line on stderr, exit code 2, and leaves the directory's files as they were."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest

from rssm.cli import main

TRAIN = [
    "train", "--configs", "planet", "debug", "--env.time_limit", "10", "--run.steps", "20",
    "--run.eval_every", "0", "--run.video_every", "0", "--run.train_every", "10",
    "--run.train_steps", "1", "--run.tensorboard", "false",
]  # fmt: skip


def train(logdir, *overrides: str):
    assert main([*TRAIN, "--logdir", str(logdir), *overrides]) == 0
    return logdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs that differ in the RSSM's deterministic size (16 vs 24)."""
    root = tmp_path_factory.mktemp("cli-eval")
    return train(root / "run"), train(root / "other", "--world_model.rssm.deter", "24")


def snapshot(directory) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def copy_run(source, target, *, checkpoint: bytes | None = None):
    shutil.copytree(source, target)
    if checkpoint is not None:  # the only checkpoint: no numbered one to fall back to
        for numbered in target.glob("checkpoint-*.pt"):
            numbered.unlink()
        (target / "checkpoint.pt").write_bytes(checkpoint)
    return target


def test_eval_prints_returns_and_writes_a_readable_mp4(runs, tmp_path, capsys):
    imageio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    run, _ = runs
    capsys.readouterr()
    before = snapshot(run)
    video = tmp_path / "eval.mp4"
    assert main(["eval", "--run", str(run), "--episodes", "2", "--video", str(video)]) == 0
    out = capsys.readouterr().out
    assert "returns:" in out and "mean" in out and f"video: {video}" in out
    reader = imageio.get_reader(video)
    frames = list(reader.iter_data())
    reader.close()
    assert len(frames) == 2 * 11 and frames[0].shape == (128, 128, 3)  # 2 episodes of 10 steps
    assert np.std(frames[0]) > 5, "blank frame"
    assert snapshot(run) == before


def test_eval_video_alone_and_dream_write_into_the_run_directory(runs, tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg")
    run = copy_run(runs[0], tmp_path / "run")
    assert main(["eval", "--run", str(run), "--video"]) == 0
    assert (run / "eval.mp4").stat().st_size > 0
    assert f"video: {run / 'eval.mp4'}" in capsys.readouterr().out
    assert main(["dream", "--run", str(run), "--steps", "3", "--context", "2"]) == 0
    assert (run / "dream.mp4").stat().st_size > 0
    assert f"dream: {run / 'dream.mp4'}" in capsys.readouterr().out


def test_eval_help_lists_every_option_with_type_and_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--help"])
    assert exit_info.value.code == 0
    flat = " ".join(capsys.readouterr().out.split())
    for text in (
        "--run PATH (path, required)",
        "--episodes INT (int, default: 1)",
        "--device STR (str, default: the run's)",
        "--video [PATH] (path, default: none)",
        "--video alone writes eval.mp4 into the run directory",
        ".mp4 or .gif",
    ):
        assert text in flat, text


def _damage(kind: str, runs, tmp_path):
    """A run directory with one problem, and a fragment of the expected error."""
    run, other = runs
    data = (run / "checkpoint.pt").read_bytes()
    if kind == "missing directory":
        return tmp_path / "nothing", "run directory", "does not exist"
    if kind == "no config":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty", "holds no config.yaml", "rssm train"
    if kind == "no checkpoint":
        target = copy_run(run, tmp_path / "run")
        for path in target.glob("checkpoint*.pt"):
            path.unlink()
        return target, "no checkpoint in", "first one"
    if kind == "truncated":
        target = copy_run(run, tmp_path / "run", checkpoint=data[: len(data) * 2 // 3])
        return target, "corrupt or truncated", "checkpoint.pt"
    if kind == "garbage":
        target = copy_run(run, tmp_path / "run", checkpoint=random.Random(0).randbytes(len(data)))
        return target, "corrupt or truncated", "checkpoint.pt"
    if kind == "another config":
        target = copy_run(other, tmp_path / "other", checkpoint=data)
        return target, "model.rssm._gru.cell.weight_hh [48, 16] vs [72, 24]", "deter: 16 -> 24"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["missing directory", "no config", "no checkpoint", "truncated", "garbage", "another config"],
)
def test_unusable_run_is_one_line_exit_2_and_changes_nothing(runs, tmp_path, capsys, kind):
    run_dir, *fragments = _damage(kind, runs, tmp_path)
    before = snapshot(run_dir) if run_dir.exists() else None
    capsys.readouterr()
    video = tmp_path / "eval.mp4"
    code = main(["eval", "--run", str(run_dir), "--video", str(video)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("rssm eval: error: ") and str(run_dir) in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not video.exists() and not [p for p in tmp_path.iterdir() if p.suffix == ".mp4"]
    if before is not None:
        assert snapshot(run_dir) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--episodes", "0"], "--episodes=0 must be >= 1"),
        (["--video", "eval.avi"], ".mp4 or .gif"),
    ],
)
def test_bad_arguments_are_one_line(runs, capsys, args, message):
    capsys.readouterr()
    assert main(["eval", "--run", str(runs[0]), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
