"""The ``rssm`` command line: tiny end-to-end runs of every subcommand, help text and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml

from rssm.cli import main
from rssm.run.checkpoint import load_checkpoint, save_checkpoint

TINY = [
    "--updates", "3", "--eval-every", "2", "--train-episodes", "2", "--eval-episodes", "1",
    "--batch-size", "2", "--length", "8", "--env-option", "image_size=32", "--quiet",
]  # fmt: skip


def test_world_model_writes_the_run_directory(tmp_path, capsys):
    logdir = tmp_path / "run"
    assert main(["world-model", *TINY, "--logdir", str(logdir)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert out.startswith(f"run directory: {logdir}\n") and "copy-last-frame" in out
    # each long phase says what it does and how long it will take
    assert (
        "collecting " in captured.err
        and "random-policy episodes of builtin:pointmass" in captured.err
    )
    assert "the first episode took " in captured.err and "for the rest" in captured.err
    assert "; training " in captured.err
    config = yaml.safe_load((logdir / "config.yaml").read_text())
    assert config["agent"] == "world_model" and config["run"]["offline"] is True
    assert config["env"]["name"] == "builtin:pointmass" and config["env"]["image_size"] == 32
    assert config["world_model"]["rssm"]["latent"] == "categorical"
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [2, 3]  # the job's steps are its updates
    assert all(row["held_out/open_loop_copy_last"] > 0 for row in rows)
    assert all("train/model_loss" in row for row in rows)
    checkpoint = load_checkpoint(logdir / "checkpoint.pt")  # rssm train's: it resumes
    assert checkpoint["config"]["agent"] == "world_model"
    assert checkpoint["counters"]["updates"] == 3 and checkpoint["counters"]["offline"] == 1
    assert any(key.startswith("rssm.") for key in checkpoint["agent"]["model"])
    assert len(list((logdir / "episodes").glob("*.npz"))) == 2
    assert len(list((logdir / "held_out").glob("*.npz"))) == 1
    videos = list(logdir.glob("open_loop.*"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0
    assert not list(logdir.glob(".*"))  # no temporary files left behind


def test_help_lists_types_and_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["world-model", "--help"])
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
    code = main(["world-model", *TINY, *args, "--logdir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_wrong_type_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["world-model", "--updates", "many"])
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


def test_train_and_eval_an_agent(tmp_path, capsys):
    logdir = tmp_path / "planet"
    args = [
        "train",
        "--configs",
        "planet",
        "debug",
        "--logdir",
        str(logdir),
        "--run.log_every",
        "100",
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert str(logdir) in out and "rssm eval --run" in out
    # the run directory and the thread count come first, the returns at the end
    assert out.startswith(f"run directory: {logdir}\n") and "1 torch thread(s)" in out
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    last_eval = [r for r in rows if "eval/return" in r][-1]
    random = next(r["episode/random_return"] for r in rows if "episode/random_return" in r)
    assert (
        f"final eval return: {last_eval['eval/return']:.1f} (env step {last_eval['step']})" in out
    )
    assert f"the random policy's seed episodes returned {random:.1f}" in out
    # not a terminal: a plain progress line per log row instead of a progress bar
    assert f"step 100/{rows[-1]['step']}: " in captured.err and "updates" in captured.err
    assert "perf/fps" not in rows[0] or rows[0]["perf/fps"] > 0  # never a 0.0 before any step
    config = yaml.safe_load((logdir / "config.yaml").read_text())
    assert config["agent"] == "planet" and config["run"]["log_every"] == 100
    assert config["run"]["threads"] == 1  # the count in force is saved with the run
    assert config["planet"]["candidates"] == 8  # debug applied after planet
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert any("eval/return" in row for row in rows)
    assert load_checkpoint(logdir / "checkpoint.pt")["config"]["agent"] == "planet"
    assert main(["eval", "--run", str(logdir), "--episodes", "2"]) == 0
    assert "mean" in capsys.readouterr().out
    # The same directory again without --resume is refused, and nothing in it is touched.
    before = (logdir / "checkpoint.pt").read_bytes()
    assert main(args) == 2
    assert "resume" in capsys.readouterr().err
    assert (logdir / "checkpoint.pt").read_bytes() == before


def test_train_help_lists_every_config_key(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    for key in (
        "--run.train_ratio float | None null",
        "--planet.candidates int 200",  # the values the no-argument run uses (planet cpu)
        "--run.steps int 10000",
        "--env.image_size int 32",
        "--world_model.rssm.latent {gaussian,categorical}",
        "presets: atari, cpu, debug, dmc_proprio, dmc_vision, dreamer_v1, dreamer_v2, dreamer_v3",
        "--dreamer.actor_critic.horizon int 15",
        "value after --configs planet cpu",
    ):
        assert key in flat, key


def test_train_help_shows_the_values_after_the_given_presets_with_descriptions(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--configs", "dreamer_v3", "dmc_proprio", "xxs", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    for key in (
        "value after --configs dreamer_v3 dmc_proprio xxs",
        "--world_model.rssm.deter int 128 size D of the deterministic GRU state",
        "--run.train_ratio float | None 512.0 replayed rows per collected row",
        "--run.steps int 500000 train until this many env steps have been collected",
    ):
        assert key in flat, key
    with pytest.raises(SystemExit):  # an unknown preset: the defaults, and the reason
        main(["train", "--configs", "nosuch", "--help"])
    assert "value before presets (unknown preset 'nosuch'" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run.stesp", "5"], "run.steps"),  # misspelled key: suggests the right one
        (["--run.steps", "many"], "run.steps"),  # wrong type names the key
        (["--configs", "plnet"], "planet"),  # unknown preset lists the known ones
        (["--agent", "dreamer_v9"], "planet"),  # unknown agent lists the choices
        (["--env", "nosuite:x"], "builtin"),  # unknown suite lists the known ones
    ],
)
def test_train_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    code = main(["train", "--configs", "planet", "debug", "--logdir", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_eval_of_a_missing_run_directory(tmp_path, capsys):
    assert main(["eval", "--run", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_takes_a_checkpoint_a_seed_a_mode_and_overrides(tmp_path, capsys):
    logdir = tmp_path / "run"
    train = ["train", "--configs", "planet", "debug", "--logdir", str(logdir)]
    short = ["--run.steps", "200", "--run.eval_every", "0", "--run.checkpoint_every", "100"]
    assert main([*train, *short, "--env.time_limit", "20", "--run.tensorboard", "false"]) == 0
    capsys.readouterr()
    run = ["eval", "--run", str(logdir)]
    chosen = ["--checkpoint", "100", "--seed", "3", "--mode", "explore"]
    assert main([*run, *chosen, "--planet.horizon", "2"]) == 0
    out = capsys.readouterr().out
    assert "checkpoint-100.pt (env step 100); overrides: --planet.horizon 2" in out, out
    assert "returns: " in out and " ± " in out
    for bad, message in (
        (["--planet.horizn", "2"], "planet.horizon"),  # misspelled key: the right one
        (["--checkpoint", "150"], "checkpoints of steps 100, 200"),
        (["--world_model.rssm.deter", "8"], "world_model.rssm.deter"),  # other weights
        (["oops"], "dotted keys"),
    ):
        assert main([*run, *bad]) == 2, bad
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    # dream and report read a chosen checkpoint the same way
    report = ["report", "--run", str(logdir), "--horizon", "2", "--context", "2"]
    assert main([*report, "--out", str(tmp_path / "r"), "--checkpoint", "100"]) == 0
    assert json.loads((tmp_path / "r" / "report.json").read_text())["step"] == 100
    assert main([*report, "--checkpoint", "150"]) == 2
    assert "checkpoints of steps 100, 200" in capsys.readouterr().err


def test_ctrl_c_during_start_up_is_one_line(monkeypatch, capsys):
    def interrupted(*_args):
        raise KeyboardInterrupt  # e.g. while torch is being imported

    monkeypatch.setattr("rssm.cli._build_parser", interrupted)
    assert main(["train", "--configs", "debug"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "rssm train: interrupted\n" and captured.out == ""


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--configs", "dreamer_v3", "xxs", "--help"],
        ["world-model", "--help"],
        ["--help"],
        ["train", "--run.steps", "many"],
        ["train", "--no-such-key", "1"],
    ],
)
def test_help_and_argument_errors_do_not_import_torch(args):
    code = (
        "import sys\n"
        "from rssm.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
