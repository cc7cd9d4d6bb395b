"""Exact resume: a run killed after a checkpoint and resumed equals an uninterrupted one; the
last K checkpoints are kept; corrupt and temporary files are never resumed from."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

from rssm.config import load_presets, merge
from rssm.data.episodes import list_episodes
from rssm.run import train as train_lib
from rssm.run.checkpoint import CheckpointError, load_checkpoint
from rssm.run.logger import read_metrics, truncate_metrics
from rssm.run.resume import load_latest_checkpoint, numbered_checkpoints
from rssm.run.train import Config, train

# debug: episodes of 50 env steps = 51 agent steps (the reset row included), action repeat 1,
# so episodes end at env steps 51, 102, 153, 204, 255, 306. The checkpoint at 150 is written
# inside the third episode: a resume replays its actions.
STEPS, EVERY, HALF = 300, 150, 150
UNSTABLE = ("time", "perf/fps")  # wall-clock values


class Killed(BaseException):
    """Stands in for SIGKILL: no handler in the loop catches it, nothing is cleaned up."""


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add overhead on 2 cores
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, one_thread):
    """``uninterrupted(algo, num_envs)``: the directory of an uninterrupted run (made once)."""
    runs = {}

    def get(algo: str, num_envs: int = 1, env: str = ""):
        if (algo, num_envs, env) not in runs:
            config = make_config(tmp_path_factory.mktemp(algo), "whole", algo, num_envs, env)
            runs[algo, num_envs, env] = quiet_train(config)
        return runs[algo, num_envs, env]

    return get


ENVS = {  # other envs than the debug preset's built-in point mass
    # episodes of different lengths in the two envs, so they never end together
    "cartpole": {"name": "gym:CartPole-v1", "time_limit": None, "options": {}},
    # MuJoCo physics, rebuilt by replaying the actions of an unfinished episode
    # (episodes of 100 raw steps = 51 agent steps at action repeat 2, like the debug env's)
    "dmc": {"name": "dmc:reacher-easy", "time_limit": 100, "action_repeat": 2,
            "options": {"obs": "proprio"}},
}  # fmt: skip


def make_config(
    tmp_path, name: str, algo: str = "planet", num_envs: int = 1, env: str = "", **run
) -> Config:
    config = load_presets(Config, [algo, "debug"])
    settings = {"steps": STEPS, "checkpoint_every": EVERY, "log_every": 25, "eval_every": 100}
    settings.update({"video_every": 100, "tensorboard": False, **run})
    env_changes = {"num_envs": num_envs, **ENVS.get(env, {})}
    changes = {"logdir": str(tmp_path / name), "env": env_changes, "run": settings}
    if env == "dmc":  # proprio only: no image keys
        changes["world_model"] = {"encoder": {"cnn_keys": "$^"}, "decoder": {"cnn_keys": "$^"}}
    return merge(config, changes)


def quiet_train(config: Config, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train(config, **kwargs)


def kill_at(monkeypatch, agent_steps: int) -> None:
    """Makes the run die (mid driver step) when it collects its ``agent_steps``-th step."""
    original = train_lib._Counters.on_step

    def on_step(self, transition, worker):
        original(self, transition, worker)
        if self.agent_steps == agent_steps:
            raise Killed

    monkeypatch.setattr(train_lib._Counters, "on_step", on_step)


def rows(run_dir):
    return [{k: v for k, v in row.items() if k not in UNSTABLE} for row in read_metrics(run_dir)]


def episode_hashes(run_dir) -> list[str]:
    files, _ = list_episodes(run_dir / "replay")
    digests = []
    for file in files:
        with np.load(file.path) as data:
            digests.append(hashlib.sha1(b"".join(data[k].tobytes() for k in sorted(data))))
    return sorted(d.hexdigest() for d in digests)


def assert_equal_states(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), (where, a.keys(), b.keys())
        for key in a:
            assert_equal_states(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal_states(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize(
    ("algo", "num_envs", "env", "kill"),
    [
        # killed after the checkpoint at 150 (mid-episode), an episode file (204) and rows up
        # to 225
        ("planet", 1, "", 230),
        ("dreamer_v3", 1, "", 230),
        # two envs in lockstep, killed between the two envs' transitions of a step
        ("dreamer_v3", 2, "", 240),
        # two CartPoles whose episodes end at different steps: never both between episodes
        ("dreamer_v3", 2, "cartpole", 240),
        # DeepMind Control: MuJoCo physics rebuilt by replaying the second episode's 23 actions
        ("dreamer_v3", 1, "dmc", 115),
    ],
)
def test_killed_and_resumed_run_equals_an_uninterrupted_one(
    tmp_path, monkeypatch, uninterrupted, algo, num_envs, env, kill
):
    whole = uninterrupted(algo, num_envs, env)
    config = make_config(tmp_path, "killed", algo, num_envs, env)
    half = HALF // config.env.action_repeat
    kill_at(monkeypatch, kill)
    with pytest.raises(Killed):
        quiet_train(config)
    monkeypatch.undo()
    killed = tmp_path / "killed"
    state = load_checkpoint(killed / "checkpoint.pt")
    assert state["exact"] and state["counters"]["agent_steps"] == half, state["counters"]
    unfinished = [e for e in state["driver"]["episodes"] if e is not None]
    assert unfinished and all(len(e["actions"]["__numpy__"]) > 0 for e in unfinished)
    assert state["carry"] is not None and state["replay"]["unsaved"]["slots"]
    assert max(r["step"] for r in read_metrics(killed)) > HALF, "rows after the checkpoint"
    assert len(list_episodes(killed / "replay")[0]) >= (0 if env == "dmc" else 3)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an exact resume warns about nothing
        train(config, resume=True)

    assert_same_runs(whole, killed)


def assert_same_runs(whole, resumed):
    assert rows(resumed) == rows(whole)
    assert [r["step"] for r in rows(resumed)] == sorted({r["step"] for r in rows(resumed)})
    end_whole, end_resumed = (load_checkpoint(d / "checkpoint.pt") for d in (whole, resumed))
    assert end_whole["counters"] == end_resumed["counters"]
    assert_equal_states(end_whole["agent"], end_resumed["agent"], "agent")
    assert end_whole["stats"] == end_resumed["stats"]
    assert episode_hashes(resumed) == episode_hashes(whole), "replay files differ or repeat"
    assert len(end_resumed["replay_episode_ids"]) == len(list_episodes(resumed / "replay")[0])


def past_checkpoint(run_dir) -> bool:
    """The half-way checkpoint exists and a metrics row after it was written."""
    if not (run_dir / f"checkpoint-{HALF}.pt").exists():
        return False
    return any(row["step"] > HALF for row in read_metrics(run_dir))


def test_sigkilled_process_resumes_exactly(tmp_path, uninterrupted):
    whole = uninterrupted("planet")
    run_dir = tmp_path / "killed"
    args = [sys.executable, "-m", "rssm", "train", "--configs", "planet", "debug"]
    args += ["--logdir", str(run_dir), "--run.steps", str(STEPS)]
    args += ["--run.checkpoint_every", str(EVERY), "--run.log_every", "25"]
    args += ["--run.eval_every", "100", "--run.video_every", "100", "--run.tensorboard", "false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while process.poll() is None and not past_checkpoint(run_dir):
        assert time.monotonic() < deadline, "no checkpoint after two minutes"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # mid-step, mid-write: wherever it is
    _, stderr = process.communicate()
    assert process.returncode in (-signal.SIGKILL, 0), stderr.decode()[-2000:]
    if process.returncode == 0:  # a very fast machine: the kill came too late to matter
        warnings.warn("the process finished before it was killed", stacklevel=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        train(make_config(tmp_path, "killed"), resume=True)
    assert_same_runs(whole, run_dir)


def test_last_checkpoints_are_kept_and_a_corrupt_one_is_skipped(tmp_path):
    config = make_config(tmp_path, "run", checkpoint_every=50, keep_checkpoints=2, eval_every=0)
    run_dir = quiet_train(config)
    # written at 50, 100, ..., 250 (inside episodes) and at the end
    assert [step for step, _ in numbered_checkpoints(run_dir)] == [250, 300]
    assert (run_dir / "checkpoint.pt").samefile(run_dir / "checkpoint-300.pt")
    assert load_checkpoint(run_dir / "checkpoint.pt")["exact"], "mid-episode, and exact"
    (run_dir / "checkpoint.pt").unlink()  # damaged: checkpoint-300.pt is the same step
    (run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning, match="checkpoint.pt is corrupt.*checkpoint-300.pt"):
        path, state = load_latest_checkpoint(run_dir)
    assert path.name == "checkpoint-300.pt"
    (run_dir / "checkpoint-300.pt").unlink()  # both damaged: 255 only with older=True
    (run_dir / "checkpoint-300.pt").write_bytes(b"not a checkpoint")
    older_hint = "checkpoint-300.pt is corrupt.*checkpoint-250.pt.*--older"
    with pytest.raises(CheckpointError, match=older_hint):
        load_latest_checkpoint(run_dir)
    with pytest.raises(CheckpointError, match="--older"):
        train(merge(config, {"run": {"steps": 320}}), resume=True)
    with pytest.warns(RuntimeWarning) as record:
        path, state = load_latest_checkpoint(run_dir, older=True)
    assert any("checkpoint-300.pt is corrupt" in str(w.message) for w in record), record
    assert path.name == "checkpoint-250.pt" and state["exact"]

    longer = merge(config, {"run": {"steps": 320}})
    with pytest.warns(RuntimeWarning) as record:
        train(longer, resume=True, older=True)
    messages = [str(w.message) for w in record]
    assert any("older" in m and "checkpoint-250.pt" in m for m in messages), messages
    assert not any("restart their episodes" in m for m in messages), "250 is an exact point"
    steps = [row["step"] for row in read_metrics(run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == 320, "rows after 255 were not dropped"
    assert [step for step, _ in numbered_checkpoints(run_dir)] == [300, 320]
    assert load_checkpoint(run_dir / "checkpoint.pt")["counters"]["agent_steps"] == 320


def test_temporary_files_are_never_resumed_from(tmp_path):
    config = make_config(tmp_path, "run", steps=120, checkpoint_every=50, eval_every=0)
    run_dir = quiet_train(config)
    latest = (run_dir / "checkpoint.pt").read_bytes()
    stale = [
        run_dir / ".checkpoint-999.pt.abcd.tmp",  # a complete but never renamed checkpoint
        run_dir / "checkpoint-999.pt.tmp",
        run_dir / ".checkpoint.pt.efgh.tmp",
    ]
    for path in stale:
        path.write_bytes(latest)
    (run_dir / "replay" / ".20260101T000000000000-0123.tmp").write_bytes(b"half an episode")
    path, state = load_latest_checkpoint(run_dir)
    assert path.name == "checkpoint.pt" and state["counters"]["agent_steps"] == 120
    # killed between writing checkpoint-120.pt and pointing checkpoint.pt at it
    (run_dir / "checkpoint.pt").unlink()  # a hard link to checkpoint-120.pt: do not write in it
    shutil.copyfile(run_dir / "checkpoint-100.pt", run_dir / "checkpoint.pt")
    path, state = load_latest_checkpoint(run_dir)
    assert path.name == "checkpoint-120.pt" and state["counters"]["agent_steps"] == 120
    quiet_train(merge(config, {"run": {"steps": 140}}), resume=True)
    assert load_checkpoint(run_dir / "checkpoint.pt")["counters"]["agent_steps"] == 140
    assert not list(run_dir.glob(".*.tmp")), "the resume removes its own stale temporary files"
    assert not list((run_dir / "replay").glob(".*.tmp"))
    assert stale[1].read_bytes() == latest, "a file it does not write is left alone"


def test_no_checkpoint_at_all_is_an_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_latest_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_latest_checkpoint(tmp_path / "missing")


def test_truncate_metrics_keeps_rows_up_to_the_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "a": s / 3}) for s in (0, 50, 100, 150)]
    path.write_text("\n".join(lines) + '\n{"step": 200, "a"')  # a partial last line
    assert truncate_metrics(tmp_path, 100) == 2
    assert path.read_text() == "\n".join(lines[:3]) + "\n"
    assert truncate_metrics(path, 100) == 0 and [r["step"] for r in read_metrics(path)] == [
        0,
        50,
        100,
    ]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_ctrl_c_mid_episode_checkpoints_exactly_and_the_resume_repeats_the_run(
    tmp_path, monkeypatch, uninterrupted
):
    whole = uninterrupted("dreamer_v3")
    config = make_config(tmp_path, "run", "dreamer_v3")
    original = train_lib._Counters.on_step

    def press_ctrl_c(self, transition, worker):
        original(self, transition, worker)
        if self.agent_steps == 130:  # inside the third episode (103..153)
            signal.raise_signal(signal.SIGINT)  # the loop stops at its next safe point

    monkeypatch.setattr(train_lib._Counters, "on_step", press_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        quiet_train(config)
    monkeypatch.undo()
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["exact"] and state["counters"]["agent_steps"] == 130, state["counters"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an exact resume warns about nothing
        train(config, resume=True)
    assert_same_runs(whole, tmp_path / "run")


def test_ctrl_c_inside_a_burst_of_updates_stops_after_the_update_and_resumes_exactly(
    tmp_path, monkeypatch, uninterrupted
):
    # debug: bursts of 5 updates every 50 env steps; Ctrl-C during the 12th update, mid-burst
    whole = uninterrupted("dreamer_v3")
    config = make_config(tmp_path, "run", "dreamer_v3")
    build, done = train_lib._build, []

    def build_with_ctrl_c(*args, **kwargs):
        parts = build(*args, **kwargs)
        train_step = parts.agent.train_step

        def pressed(batch):
            metrics = train_step(batch)
            done.append(1)
            if len(done) == 12:
                signal.raise_signal(signal.SIGINT)  # the burst stops after this update
            return metrics

        parts.agent.train_step = pressed
        return parts

    monkeypatch.setattr(train_lib, "_build", build_with_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        quiet_train(config)
    monkeypatch.undo()
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    counters = state["counters"]
    assert state["exact"] and counters["updates"] == 12 and counters["pending"] == 3, counters
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an exact resume warns about nothing
        train(config, resume=True)
    assert_same_runs(whole, tmp_path / "run")


def test_an_env_that_does_not_repeat_its_episode_restarts_it_with_a_warning(tmp_path, monkeypatch):
    config = make_config(
        tmp_path, "run", steps=200, checkpoint_every=100, eval_every=0, video_every=0
    )
    kill_at(monkeypatch, 130)  # after the checkpoint at 100, inside the second episode (52..102)
    with pytest.raises(Killed):
        quiet_train(config)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["exact"]
    from rssm.envs import builtin

    reset = builtin.PointMass.reset

    def drifting_reset(self, *, seed=None, options=None):  # ignores part of its seed
        return reset(self, seed=None if seed is None else seed + 1, options=options)

    monkeypatch.setattr(builtin.PointMass, "reset", drifting_reset)
    with pytest.warns(RuntimeWarning, match=r"env 'builtin:pointmass' \(worker 0\) did not "
                      r"repeat its unfinished episode.*not deterministic"):  # fmt: skip
        train(config, resume=True)
    steps = [row["step"] for row in read_metrics(tmp_path / "run")]
    assert steps == sorted(set(steps)) and steps[-1] == 200


def test_ctrl_c_mid_step_writes_an_inexact_checkpoint_that_resumes_with_a_warning(
    tmp_path, monkeypatch
):
    config = make_config(tmp_path, "run", steps=200, eval_every=0, video_every=0)
    original = train_lib._Counters.on_step

    def interrupt(self, transition, worker):
        original(self, transition, worker)
        if self.agent_steps == 120:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_lib._Counters, "on_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        quiet_train(config)
    monkeypatch.undo()
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert (
        not state["exact"] and state["replay"] is None and state["counters"]["agent_steps"] == 120
    )
    with pytest.warns(RuntimeWarning, match="restart their episodes"):
        train(config, resume=True)
    run_dir = tmp_path / "run"
    steps = [row["step"] for row in read_metrics(run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == 200
    ids = load_checkpoint(run_dir / "checkpoint.pt")["replay_episode_ids"]
    assert sorted(ids) == sorted(f.episode_id for f in list_episodes(run_dir / "replay")[0])


def test_resuming_a_finished_run_is_a_quiet_no_op(tmp_path):
    # 200 env steps end mid-episode (episodes end at 204): the final checkpoint is exact anyway
    config = make_config(tmp_path, "run", steps=200, eval_every=0, video_every=0)
    run_dir = quiet_train(config)
    assert load_checkpoint(run_dir / "checkpoint.pt")["exact"]
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about restarting episodes: nothing runs
        train(config, resume=True)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_wall_clock_budget_stops_at_an_episode_end_with_an_eval_and_resumes(tmp_path):
    # A budget of a nanosecond is spent at once: the run stops at the end of the seed episode
    # (env step 51), evaluates there, checkpoints exactly, and --resume goes on to run.steps.
    config = make_config(tmp_path, "run", steps=200, eval_every=100, max_minutes=1e-9)
    with pytest.warns(UserWarning, match=r"stopped at env step 51 of 200.*max_minutes"):
        train(config)
    run_dir = tmp_path / "run"
    rows = read_metrics(run_dir)
    assert rows[-1]["step"] == 51 and rows[-1]["eval/return"] is not None
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["exact"] and state["counters"]["agent_steps"] == 51
    # Another budget on resume is allowed (a resumable key); no budget runs to the end.
    quiet_train(merge(config, {"run": {"max_minutes": None}}), resume=True)
    steps = [row["step"] for row in read_metrics(run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == 200
    assert load_checkpoint(run_dir / "checkpoint.pt")["counters"]["agent_steps"] == 200


@pytest.mark.parametrize("minutes", [0, -1.0])
def test_wall_clock_budget_must_be_positive(minutes):
    with pytest.raises(ValueError, match="max_minutes must be a positive number"):
        merge(load_presets(Config, ["planet", "debug"]), {"run": {"max_minutes": minutes}})


def test_a_resume_hides_the_tensorboard_events_written_after_its_checkpoint(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = make_config(
        tmp_path, "tb", steps=200, log_every=10, eval_every=0, video_every=0, tensorboard=True
    )
    kill_at(monkeypatch, 180)  # the checkpoint due at 150 waits for the episode end at 153
    with pytest.raises(Killed):
        quiet_train(config)
    monkeypatch.undo()
    run_dir = tmp_path / "tb"
    assert load_checkpoint(run_dir / "checkpoint.pt")["counters"]["agent_steps"] == HALF
    time.sleep(1.1)  # a second events file (its name holds the time in seconds)
    quiet_train(config, resume=True)
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tag = "episode/return" if "episode/return" in events.Tags()["scalars"] else None
    tag = tag or events.Tags()["scalars"][0]
    steps = [event.step for event in events.Scalars(tag)]
    assert steps == sorted(set(steps)), f"{tag} has a step twice: {steps}"
    jsonl = [row["step"] for row in read_metrics(run_dir) if tag in row]
    assert steps == jsonl, (steps, jsonl)
