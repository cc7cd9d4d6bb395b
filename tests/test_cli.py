"""The ``rssm`` command line: a tiny end-to-end ``rssm train``, help text and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from rssm.cli import main
from rssm.run.checkpoint import load_checkpoint, save_checkpoint

TINY = [
    "--updates", "3", "--eval-every", "2", "--train-episodes", "2", "--eval-episodes", "1",
    "--batch-size", "2", "--length", "8", "--env-option", "image_size=32", "--quiet",
]  # fmt: skip


def test_train_writes_the_run_directory(tmp_path, capsys):
    logdir = tmp_path / "run"
    assert main(["train", *TINY, "--logdir", str(logdir)]) == 0
    out = capsys.readouterr().out
    assert str(logdir) in out and "copy-last-frame" in out
    config = json.loads((logdir / "config.json").read_text())
    assert config["run"]["env"] == "builtin:pointmass"
    assert config["run"]["env_options"] == {"image_size": 32}
    assert config["world_model"]["rssm"]["latent"] == "categorical"
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert [row["update"] for row in rows] == [2, 3]
    assert all(row["open_loop_copy_last"] > 0 for row in rows)
    checkpoint = load_checkpoint(logdir / "checkpoint.pt")
    assert checkpoint["config"] == config
    assert any(key.startswith("rssm.") for key in checkpoint["model"])
    videos = list(logdir.glob("open_loop.*"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0
    assert not list(logdir.glob(".*"))  # no temporary files left behind


def test_help_lists_types_and_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--env ", "--preset", "--updates", "--lr", "--env-option", "--size"):
        assert option in text, option
    flat = " ".join(text.split())
    assert "--updates INT (int, default: 2500)" in flat
    assert "--size STR (str | none, default: None)" in flat
    assert "builtin:pointmass" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "nosuite:thing"], "builtin"),  # lists the known suites
        (["--env", "builtin:pointmas"], "pointmass"),  # names the closest env
        (["--preset", "dreamer_v9"], "dreamer_v3"),  # lists the known presets
        (["--preset", "dreamer_v3", "--size", "xxl"], "xs"),  # lists the known sizes
        (["--env-option", "image_size=30"], "image"),  # an image size the encoder cannot take
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    code = main(["train", *TINY, *args, "--logdir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_wrong_type_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--updates", "many"])
    assert exit_info.value.code == 2
    assert "--updates takes a int" in capsys.readouterr().err


def test_envs_lists_suites(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "dmc" in out and "pointmass" in out


def test_console_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "rssm", "envs"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "builtin" in result.stdout


def test_checkpoint_write_is_atomic_and_corruption_is_reported(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"weights": torch.ones(3)})
    good = path.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "truncated.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"bad": Unpicklable()})
    assert path.read_bytes() == good  # the failed save left the previous checkpoint intact
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert torch.equal(load_checkpoint(path)["weights"], torch.ones(3))
