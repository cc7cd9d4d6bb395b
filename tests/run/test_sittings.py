"""``sittings.jsonl``: one start and one stop line per invocation of a training run, kept across
resumes; ``rssm sittings`` prints them."""

from __future__ import annotations

import json
import os
import platform
import re
import types
import warnings

import pytest

from rssm.cli import main
from rssm.config import load_presets, merge
from rssm.run.sittings import SITTINGS_FILE, describe, read_sittings, record
from rssm.run.train import Config, train


def debug_config(tmp_path, **run) -> Config:
    config = load_presets(Config, ["planet", "debug"])
    settings = {"steps": 200, "eval_every": 100, "video_every": 0, "tensorboard": False, **run}
    return merge(config, {"logdir": str(tmp_path / "run"), "run": settings})


def test_a_run_stopped_by_its_budget_and_resumed_records_both_sittings(tmp_path, capsys):
    config = debug_config(tmp_path, max_minutes=1e-9)  # spent at once: stops at env step 51
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(config)
        train(merge(config, {"run": {"max_minutes": None}}), resume=True)
    run_dir = tmp_path / "run"
    lines = [json.loads(line) for line in (run_dir / SITTINGS_FILE).read_text().splitlines()]
    assert [line["event"] for line in lines] == ["start", "stop", "start", "stop"]
    assert lines[0]["steps"] == 200 and lines[0]["max_minutes"] == 1e-9
    assert lines[2]["max_minutes"] is None
    assert isinstance(lines[0]["threads"], int) and lines[0]["torch"]
    # the code that ran: this checkout's commit (None where the package is not in a checkout)
    commit = lines[0]["commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", commit), commit

    first, second = read_sittings(run_dir)
    assert (first.from_env_steps, first.to_env_steps, first.reason) == (0, 51, "budget")
    assert (second.from_env_steps, second.to_env_steps, second.reason) == (51, 200, "done")
    assert second.from_updates == first.to_updates > 0
    assert not first.killed and first.minutes >= 0

    assert main(["sittings", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2, out
    assert "0 to 51 env steps" in out[0] and "budget" in out[0]
    assert "51 to 200 env steps" in out[1] and "done" in out[1]


def test_a_finished_run_resumed_again_adds_no_sitting(tmp_path):
    config = debug_config(tmp_path, steps=60, eval_every=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(config)
        train(config, resume=True)  # already at run.steps: nothing runs
    assert len(read_sittings(tmp_path / "run")) == 1


class Counters(types.SimpleNamespace):
    env_steps: int
    updates: int


@pytest.mark.parametrize(
    ("raised", "reason"),
    [(None, "budget"), (KeyboardInterrupt, "interrupted"), (ValueError, "error")],
)
def test_how_a_sitting_ended_is_its_stop_reason(tmp_path, raised, reason):
    counters = Counters(env_steps=10, updates=2)
    try:
        with record(tmp_path, counters, steps=100):
            counters.env_steps, counters.updates = 40, 9
            if raised is not None:
                raise raised("the env broke")
    except (KeyboardInterrupt, ValueError) as error:
        assert raised is not None and isinstance(error, raised)  # passed on, not swallowed
    (sitting,) = read_sittings(tmp_path)
    assert (sitting.from_env_steps, sitting.to_env_steps, sitting.to_updates) == (10, 40, 9)
    assert sitting.reason == reason
    stop = json.loads((tmp_path / SITTINGS_FILE).read_text().splitlines()[-1])
    assert ("error" in stop) == (reason == "error")
    if reason == "error":
        assert stop["error"] == "ValueError: the env broke"


def test_reaching_the_steps_is_done(tmp_path):
    counters = Counters(env_steps=0, updates=0)
    with record(tmp_path, counters, steps=100):
        counters.env_steps = 100
    assert read_sittings(tmp_path)[0].reason == "done"


def test_a_killed_sitting_and_a_torn_line_are_read_and_described(tmp_path):
    lines = [
        {"event": "start", "time": "2026-12-02T04:13:00Z", "env_steps": 0, "updates": 0,
         "pid": 7, "commit": "abc", "host": "h", "threads": 1},
        {"event": "stop", "time": "2026-12-02T06:28:00Z", "env_steps": 29000, "updates": 7000,
         "reason": "budget", "minutes": 135.0, "pid": 7},
        {"event": "start", "time": "2026-12-03T01:00:00Z", "env_steps": 29000, "updates": 7000,
         "pid": 8, "commit": "def", "host": "h", "threads": 1},
        # pid 8 was killed: no stop line; pid 9 went on from the newest checkpoint
        {"event": "start", "time": "2026-12-03T03:00:00Z", "env_steps": 34000, "updates": 8250,
         "pid": 9, "commit": "def", "host": "h", "threads": 1},
        {"event": "stop", "time": "2026-12-03T04:00:00Z", "env_steps": 40000, "updates": 9750,
         "reason": "done", "minutes": 60.0, "pid": 9},
    ]  # fmt: skip
    text = "\n".join(json.dumps(line) for line in lines) + '\n{"event": "sto'  # torn last write
    (tmp_path / SITTINGS_FILE).write_text(text)
    sittings = read_sittings(tmp_path)
    assert [s.killed for s in sittings] == [False, True, False]
    assert sittings[2].from_env_steps == 34000 and sittings[2].reason == "done"
    described = describe(sittings)
    assert "0 to 29,000 env steps in 135.0 min, budget" in described[0]
    assert "from 29,000 env steps, killed" in described[1]
    assert "34,000 to 40,000 env steps in 60.0 min, done" in described[2]


def test_a_sitting_without_a_stop_line_is_running_while_its_process_lives(tmp_path):
    line = {"event": "start", "time": "2026-12-02T04:13:00Z", "env_steps": 0, "updates": 0,
            "pid": os.getpid(), "host": platform.node(), "commit": None, "threads": 1}  # fmt: skip
    (tmp_path / SITTINGS_FILE).write_text(json.dumps(line) + "\n")
    (sitting,) = read_sittings(tmp_path)
    assert sitting.running and not sitting.killed
    assert describe([sitting])[0].endswith(f"from 0 env steps, running (pid {os.getpid()})")
    # the same pid on another host is not this process: its sitting was killed
    line["host"] = platform.node() + "-elsewhere"
    (tmp_path / SITTINGS_FILE).write_text(json.dumps(line) + "\n")
    (sitting,) = read_sittings(tmp_path)
    assert sitting.killed and not sitting.running
    described = describe([sitting])[0]
    assert "killed (no stop line; --resume goes on from the newest checkpoint)" in described


def test_steps_before_the_first_recorded_sitting_are_named(tmp_path):
    line = {"event": "start", "time": "2026-12-02T04:13:00Z", "env_steps": 5000, "updates": 1,
            "pid": 1, "commit": None, "host": "h", "threads": 1}  # fmt: skip
    (tmp_path / SITTINGS_FILE).write_text(json.dumps(line) + "\n")
    described = describe(read_sittings(tmp_path))
    assert described[0].startswith("0. before the first recorded sitting: to 5,000 env steps")


def test_an_unwritable_run_directory_does_not_fail_the_run(tmp_path):
    counters = Counters(env_steps=0, updates=0)
    with record(tmp_path / "missing", counters, steps=1):  # no such folder: the record is lost
        counters.env_steps = 1
    assert read_sittings(tmp_path / "missing") == []


def test_rssm_sittings_on_a_run_without_the_file_and_on_a_missing_run(tmp_path, capsys):
    config = debug_config(tmp_path, steps=60, eval_every=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_dir = train(config)
    (run_dir / SITTINGS_FILE).unlink()  # as in a run from before sittings were recorded
    assert main(["sittings", "--run", str(run_dir)]) == 0
    assert "no sittings.jsonl" in capsys.readouterr().out
    assert main(["sittings", "--run", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
