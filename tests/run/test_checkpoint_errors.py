"""Checkpoint errors and crash safety: one clear error per problem, and a checkpoint that survives
a failed write, Ctrl-C and SIGKILL."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import torch
from torch import nn

from rssm.cli import main
from rssm.run import checkpoint as checkpoint_lib
from rssm.run.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointWriteError,
    IncompatibleCheckpointError,
    UnsafeCheckpointError,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
)


def payload() -> dict:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return {"agent": {"model": model.state_dict()}, "counters": {"steps": 7}, "config": {"a": 1}}


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, payload())
    return path


def hidden_files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text, text
    return text


# ------------------------------------------------------------------------------------ loading


def test_round_trip_keeps_the_payload_and_adds_the_format(saved):
    state = load_checkpoint(saved)
    assert state["format_version"] == checkpoint_lib.FORMAT_VERSION
    assert state["counters"] == {"steps": 7}
    assert state["agent"]["model"]["0.weight"].shape == (8, 4)


def test_missing_file_says_which_path_and_why(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as error:
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert isinstance(error.value, FileNotFoundError) and isinstance(error.value, ValueError)
    text = one_line(error)
    assert str(tmp_path / "checkpoint.pt") in text and "first checkpoint" in text
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("keep", [0, 1, 10, 100, 0.5, -1])
def test_truncated_file_is_named_and_no_torch_error_leaks(saved, keep):
    data = saved.read_bytes()
    keep = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    saved.write_bytes(data[:keep])
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(saved)
    assert type(error.value) is CheckpointError
    assert error.value.__suppress_context__ and error.value.__cause__ is None
    text = one_line(error)
    assert str(saved) in text and "corrupt or truncated" in text and f"{keep} bytes" in text


def test_garbage_bytes(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(
        random.Random(0).randbytes(3000)
    )  # fixed: a first byte "c" reads as a pickle GLOBAL
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"model": torch.ones(2)}, r"not an rssm checkpoint.*keys \['model'\]"),
        ([1, 2, 3], "not an rssm checkpoint: it holds a list"),
        ({"format_version": 99}, "format version 99, newer than this rssm reads"),
        ({"format_version": "one"}, "unknown format_version 'one'"),
    ],
)
def test_not_an_rssm_checkpoint_or_a_newer_format(tmp_path, content, message):
    path = tmp_path / "file.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as error:
        load_checkpoint(path)
    assert str(path) in one_line(error)


class _Marker:
    """Unpickling it would create a file: a weights-only load must refuse to run it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_pickled_code_is_refused_not_run(tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "ran"
    torch.save({"format_version": 1, "x": _Marker(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load .*pickled callable") as error:
        load_checkpoint(path)
    one_line(error)
    assert not marker.exists(), "loading a checkpoint ran pickled code"


# ------------------------------------------------------------------------------------- saving


def _partial_write_then(error: BaseException):
    def fake_save(obj, file):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise error

    return fake_save


def _torch_style_disk_full(obj, file):
    file.write(b"partial")
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None


@pytest.mark.parametrize(
    ("target", "replacement", "reason"),
    [
        (
            (torch, "save"),
            _partial_write_then(OSError(errno.ENOSPC, "No space left on device")),
            "No space left",
        ),
        ((torch, "save"), _torch_style_disk_full, "No space left"),
        (
            (tempfile, "mkstemp"),
            lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "Permission denied")),
            "Permission denied",
        ),
        (
            (os, "replace"),
            lambda *a: (_ for _ in ()).throw(OSError(errno.EXDEV, "Invalid cross-device link")),
            "cross-device",
        ),
    ],
)
def test_failed_write_keeps_the_previous_checkpoint(
    saved, monkeypatch, target, replacement, reason
):
    before = saved.read_bytes()
    monkeypatch.setattr(*target, replacement)
    with pytest.raises(CheckpointWriteError) as error:
        save_checkpoint(saved, {"weights": torch.zeros(3)})
    monkeypatch.undo()
    assert isinstance(error.value, OSError) and isinstance(error.value, CheckpointError)
    text = one_line(error)
    assert str(saved) in text and reason in text and "unchanged" in text
    assert saved.read_bytes() == before
    assert hidden_files(saved.parent) == [], "the temporary file was left behind"
    assert load_checkpoint(saved)["counters"] == {"steps": 7}


def test_interrupted_write_reraises_and_cleans_up(saved, monkeypatch):
    before = saved.read_bytes()
    monkeypatch.setattr(torch, "save", _partial_write_then(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(saved, {"weights": torch.zeros(3)})
    assert saved.read_bytes() == before and hidden_files(saved.parent) == []


# ------------------------------------------------------------------------------ compatibility


def _agent_state(hidden: int, steps: int = 0) -> dict:
    model = nn.Sequential(nn.Linear(4, hidden), nn.Linear(hidden, 2))
    optimizer = torch.optim.Adam(model.parameters())
    for _ in range(steps):
        model(torch.ones(1, 4)).sum().backward()
        optimizer.step()
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict()}


def test_compatible_states_pass_even_against_a_fresh_optimizer():
    check_compatible(_agent_state(8, steps=1), _agent_state(8))  # no error: same shapes


def test_incompatible_state_names_keys_shapes_and_config():
    with pytest.raises(IncompatibleCheckpointError) as error:
        check_compatible(
            _agent_state(200, steps=1),
            _agent_state(16),
            path="run/checkpoint.pt",
            saved_config={"world_model": {"rssm": {"deter": 200}}, "seed": 0, "old": 1},
            config={"world_model": {"rssm": {"deter": 16}}, "seed": 0},
        )
    text = one_line(error)
    assert "checkpoint run/checkpoint.pt was written for another config" in text
    assert "model.0.weight [200, 4] vs [16, 4]" in text and "model.0.bias [200] vs [16]" in text
    assert "world_model.rssm.deter: 200 -> 16" in text and "seed" not in text
    assert "1 keys set on one side only" in text


def test_missing_and_unexpected_keys_are_listed_briefly():
    saved = {"model": {f"w{i}": torch.zeros(1) for i in range(9)}, "extra": torch.zeros(1)}
    expected = {"model": {"w0": torch.zeros(1), "v": torch.zeros(1)}, "generator": torch.zeros(5)}
    with pytest.raises(IncompatibleCheckpointError) as error:
        check_compatible(saved, expected)
    text = one_line(error)
    assert "missing from the checkpoint: model.v, generator" in text
    assert "not in the current model: model.w1, model.w2, model.w3, model.w4 and 5 more" in text
    with pytest.raises(IncompatibleCheckpointError, match="x Tensor vs int"):
        check_compatible({"x": torch.zeros(1)}, {"x": 3})


# ------------------------------------------------------------------------------ crash safety

TRAIN = [
    "train", "--configs", "planet", "debug", "--env.time_limit", "20", "--run.steps", "100000",
    "--run.eval_every", "0", "--run.video_every", "0", "--run.train_every", "20",
    "--run.train_steps", "1", "--run.tensorboard", "false",
]  # fmt: skip


def _start_training(logdir, checkpoint_every: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "rssm", *TRAIN, "--logdir", str(logdir)]
    command += ["--run.checkpoint_every", str(checkpoint_every)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"training exited early: {process.stderr.read().decode()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no {path.name} after {timeout} s")
        time.sleep(0.05)


def _evaluates(logdir, capsys) -> None:
    assert main(["eval", "--run", str(logdir)]) == 0, capsys.readouterr().err
    assert "mean" in capsys.readouterr().out


def test_ctrl_c_writes_a_checkpoint_that_loads_and_evaluates(tmp_path, capsys):
    logdir = tmp_path / "run"
    process = _start_training(logdir, checkpoint_every=20)
    _wait_for(logdir / "checkpoint.pt", process)
    first = load_checkpoint(logdir / "checkpoint.pt")["counters"]["agent_steps"]
    time.sleep(0.5)  # let it collect a few more steps than the first checkpoint holds
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # never leave a training process behind
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr.decode()
    assert "interrupted" in stderr.decode() and "Traceback" not in stderr.decode()
    state = load_checkpoint(logdir / "checkpoint.pt")
    assert state["counters"]["agent_steps"] > first, "Ctrl-C did not write a fresh checkpoint"
    assert hidden_files(logdir) == []
    _evaluates(logdir, capsys)


def test_sigkill_at_a_random_moment_leaves_the_last_complete_checkpoint(tmp_path, capsys):
    logdir = tmp_path / "run"
    delay = random.uniform(0.0, 1.5)  # checkpoints every 2 env steps: kills often land mid-write
    process = _start_training(logdir, checkpoint_every=2)
    _wait_for(logdir / "checkpoint.pt", process)
    time.sleep(delay)
    process.kill()
    process.communicate(timeout=30)
    state = load_checkpoint(logdir / "checkpoint.pt")  # complete: loads, has every part
    assert state["counters"]["agent_steps"] >= 20, (delay, state["counters"])
    assert {"agent", "counters", "schedules", "rng", "config"} <= set(state), (delay, set(state))
    # A partial temporary file (from the kill, or planted here) is never picked up.
    (logdir / ".checkpoint.pt.partial.tmp").write_bytes(b"PK\x03\x04 truncated")
    _evaluates(logdir, capsys)
