"""The bad-input catalogue (issue 5): every kind of mistake a user can make through the public API
or the CLI gets a clear message that names the problem and the fix, and loses no file.

CLI cases require exit code 2 and exactly one stderr line without a traceback; cases that touch an
existing run or replay directory compare every file's bytes and mtime before and after. All run
directories are copies (in ``tmp_path``) of one tiny PlaNet run trained once for the module. The
run is trained with the relative logdir ``run`` so that a copy at ``tmp_path / "run"`` resumes
from inside ``tmp_path`` (the logdir is part of the compared config).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from rssm import config as config_lib
from rssm.agents import PlanetAgent
from rssm.behavior import ReturnNormalizer, cem, lambda_return
from rssm.cli import main
from rssm.data import Driver, RandomPolicy, Replay
from rssm.envs import env_spec, make_env
from rssm.models import world_model_config
from rssm.run.checkpoint import (
    CheckpointError,
    IncompatibleCheckpointError,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
)
from rssm.run.train import Config, make_agent

BASE = [
    "--env.time_limit", "10", "--run.steps", "25", "--run.eval_every", "0",
    "--run.video_every", "0", "--run.train_every", "10", "--run.train_steps", "1",
    "--run.tensorboard", "false",
]  # fmt: skip
PLANET = ["train", "--configs", "planet", "debug", *BASE]
DREAMER = ["train", "--configs", "dreamer_v3", "debug", *BASE]


# ------------------------------------------------------------------------------ helpers


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``directory``: its bytes and mtime."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(code: int, err: str, command: str, *fragments: str) -> None:
    """Exit code 2, one stderr line ``rssm COMMAND: error: ...`` holding every fragment."""
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"rssm {command}: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def episode_files(run: Path) -> list[Path]:
    return sorted((run / "replay").glob("*.npz"))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def set_image_size(path: Path, size: int) -> None:
    """Rewrite an episode file with images of another size (another observation layout)."""
    with np.load(path) as data:
        episode = {key: data[key] for key in data.files}
    episode["image"] = np.zeros((len(episode["image"]), size, size, 3), np.uint8)
    with path.open("wb") as file:
        np.savez(file, **episode)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny PlaNet run (logdir ``run``, two saved episodes); never modified by a test."""
    root = tmp_path_factory.mktemp("bad-input")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main([*PLANET, "--logdir", "run"]) == 0
    finally:
        os.chdir(cwd)
    run = root / "run"
    assert len(episode_files(run)) >= 2 and (run / "checkpoint.pt").is_file()
    return run


@pytest.fixture
def run_copy(trained, tmp_path, monkeypatch) -> Path:
    """A copy of the trained run at ``tmp_path / "run"``, with ``tmp_path`` as the cwd."""
    target = tmp_path / "run"
    shutil.copytree(trained, target)
    monkeypatch.chdir(tmp_path)
    return target


@pytest.fixture(scope="module")
def planet_parts():
    """A PlaNet agent (debug sizes) on ``builtin:pointmass`` with image and state, and a batch."""
    env = make_env("builtin:pointmass", image_size=16, time_limit=12, obs="both")
    spec = env_spec(env)
    config = config_lib.load_presets(Config, ["planet", "debug"])
    agent = PlanetAgent(spec.obs_space, spec.action_dim, config.world_model, config.planet)
    replay = Replay(100, seed=0)
    driver = Driver([env], seed=0)
    driver.on_step(replay.add)
    driver(RandomPolicy(spec.action_dim, seed=0), episodes=1)
    driver.close()
    return agent, replay.sample(2, 8)


# ------------------------------------------------------------------ train: bad configs

# (id, arguments after `train` [--configs planet debug unless given], fragments of the message)
TRAIN_CASES = [
    ("unknown env suite", ["--env", "foo:pointmass"], ["'foo:pointmass'", "suite:id", "builtin"]),
    ("env without suite", ["--env", "pointmass"], ["'pointmass'", "suite:id", "builtin"]),
    ("unknown env id", ["--env", "builtin:pointmas"], ["'pointmas'", "Closest: pointmass"]),
    ("unknown preset", ["--configs", "planet", "debugg"], ["'debugg'", "did you mean 'debug'"]),
    (
        "misspelled key",
        ["--replay.capcity", "100"],
        ["'replay.capcity'", "did you mean 'replay.capacity'"],
    ),
    ("wrong type int", ["--replay.batch_size", "two"], ["'replay.batch_size'", "expected int"]),
    ("wrong type bool", ["--run.compile", "1"], ["'run.compile'", "write true or false"]),
    ("option without value", ["--run.steps"], ["--run.steps", "needs a value"]),
    ("replay capacity 0", ["--replay.capacity", "0"], ["capacity", "positive int", "got 0"]),
    ("negative batch size", ["--replay.batch_size", "-1"], ["batch_size", "positive", "-1"]),
    ("zero sequence length", ["--replay.length", "0"], ["length", "positive", "got 0"]),
    ("image size 0", ["--env.image_size", "0"], ["image_size", "positive", "got 0"]),
    ("num_envs 0", ["--env.num_envs", "0"], ["num_envs", "positive", "got 0"]),
    (
        "image size 17",
        ["--env.image_size", "17"],
        ["image_size=17 is not supported", "supported sizes include", "32, 48, 64"],
    ),
    ("deter 0", ["--world_model.rssm.deter", "0"], ["deter=0", "positive"]),
    ("negative units", ["--world_model.rssm.units", "-3"], ["units=-3", "positive"]),
    ("stoch 0", ["--world_model.rssm.stoch", "0"], ["stoch=0", "positive"]),
    ("cnn depth 0", ["--world_model.encoder.cnn_depth", "0"], ["cnn_depth=0", "positive"]),
    ("head units 0", ["--world_model.reward_head.units", "0"], ["units=0", "must be > 0"]),
    (
        "invalid key regex",
        ["--world_model.encoder.cnn_keys", "("],
        ["cnn_keys='('", "not a valid regular expression", "'.*'"],
    ),
    (
        "unknown loss scale",
        ["--world_model.loss_scales.imag", "2"],
        ["['imag']", "loss terms of this model are ['image'"],
    ),
    ("planning horizon 0", ["--planet.horizon", "0"], ["PlanetConfig.horizon", "got 0"]),
    ("candidates 0", ["--planet.candidates", "0"], ["PlanetConfig.candidates", "got 0"]),
    ("elites > candidates", ["--planet.elites", "20"], ["elites (20) must be <= candidates (8)"]),
    (
        "imagination horizon 0",
        ["--dreamer.actor_critic.horizon", "0"],
        ["ActorCriticConfig.horizon", "got 0"],
    ),
    (
        "planet on discrete actions",
        ["--env", "builtin:pointmass-discrete"],
        ["discrete=True", "use the Dreamer agent"],
    ),
    ("unknown agent", ["--agent", "sac"], ["'agent'", "'sac'", "'dreamer', 'planet', 'random'"]),
    ("negative train ratio", ["--run.train_ratio", "-1"], ["run.train_ratio", ">= 0", "-1"]),
    ("zero env steps", ["--run.steps", "0"], ["RunConfig.steps must be a positive int", "got 0"]),
    (
        "train ratio and train every together",
        ["--run.train_ratio", "64", "--run.train_every", "20"],
        [
            "run.train_every (from --run.train_every)",
            "run.train_ratio=64",
            "--run.train_ratio null",
        ],
    ),
    (
        "train steps against a preset's train ratio",
        ["--configs", "dreamer_v3", "debug", "--run.train_ratio", "32", "--run.train_steps", "3"],
        ["run.train_steps (from --run.train_steps)", "run.train_ratio=32"],
    ),
    ("unknown env option", ["--env.options.colour", "red"], ["colour", "it accepts: obs"]),
    ("bad env option value", ["--env.options.obs", "pics"], ["obs='pics'", "pixels, state"]),
    ("env options not a mapping", ["--env.options", "[1]"], ["'env.options'", "expected dict"]),
    ("device name", ["--run.device", "gpu"], ["device='gpu'", "not a torch device", "'cpu'"]),
]
if not torch.cuda.is_available() or torch.cuda.device_count() < 8:
    TRAIN_CASES.append(("missing cuda device", ["--run.device", "cuda:7"], ["'cuda:7'", "'cpu'"]))


@pytest.mark.parametrize(
    ("args", "fragments"), [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES]
)
def test_train_rejects_bad_config_before_writing(capsys, tmp_path, args, fragments):
    logdir = tmp_path / "new"
    head = ["train"] if "--configs" in args else ["train", "--configs", "planet", "debug"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's warning about zero-sized conv layers
        code, _, err = cli(capsys, *head, *args, *BASE, "--logdir", logdir)
    assert_error(code, err, "train", *fragments)
    assert not logdir.exists(), "a rejected run must not create its run directory"


# ------------------------------------------------------------------ train: run directories


def test_logdir_that_holds_a_run_needs_resume(capsys, run_copy):
    before = snapshot(run_copy)
    code, _, err = cli(capsys, *PLANET, "--logdir", "run")
    assert_error(code, err, "train", "'run' already holds a run", "--resume", "another logdir")
    assert snapshot(run_copy) == before


def test_resume_with_changed_config_names_the_keys(capsys, run_copy):
    before = snapshot(run_copy)
    code, _, err = cli(capsys, *PLANET, "--logdir", "run", "--resume", "--planet.horizon", "4")
    assert_error(code, err, "train", "planet.horizon: 3 -> 4", "only logdir, run.steps, run.device")
    assert snapshot(run_copy) == before


def test_resume_from_truncated_checkpoint(capsys, run_copy):
    for path in run_copy.glob("checkpoint*.pt"):  # checkpoint.pt and any numbered ones
        truncate(path)
    before = snapshot(run_copy)
    code, _, err = cli(capsys, *PLANET, "--logdir", "run", "--resume")
    assert_error(code, err, "train", "checkpoint.pt is corrupt or truncated", "restore it")
    assert snapshot(run_copy) == before


class _Payload:
    """Pickles as a call of ``os.system``: what a planted checkpoint carries."""

    def __reduce__(self):
        return (os.system, ("echo planted-checkpoint-ran",))


def test_resume_from_a_checkpoint_carrying_code_never_runs_it_nor_falls_back(capsys, run_copy):
    assert list(run_copy.glob("checkpoint-*.pt")), "an older good checkpoint exists"
    latest = run_copy / "checkpoint.pt"
    latest.unlink()  # a hard link to the newest numbered checkpoint: replace, do not write in it
    torch.save({"format_version": 1, "agent": _Payload()}, latest)
    before = snapshot(run_copy)
    code, out, err = cli(capsys, *PLANET, "--logdir", "run", "--resume")
    assert_error(code, err, "train", "refused to load", "pickled callable `posix.system`")
    assert "planted-checkpoint-ran" not in out + err
    assert snapshot(run_copy) == before
    code, _, err = cli(capsys, *PLANET, "--logdir", "run", "--resume", "--older")
    assert_error(code, err, "train", "pickled callable `posix.system`")
    code, _, err = cli(capsys, "eval", "--run", run_copy)
    assert_error(code, err, "eval", "refused to load", "pickled callable `posix.system`")
    assert snapshot(run_copy) == before


def test_resume_planet_checkpoint_as_dreamer_run(capsys, run_copy):
    before = snapshot(run_copy)
    code, _, err = cli(capsys, *DREAMER, "--logdir", "run", "--resume")
    assert_error(code, err, "train", "cannot resume", "agent: 'planet' -> 'dreamer'")
    assert snapshot(run_copy) == before


def test_resume_skips_a_truncated_episode_and_keeps_every_file(capsys, run_copy):
    damaged, *others = episode_files(run_copy)
    truncate(damaged)
    before = {p.name: p.read_bytes() for p in episode_files(run_copy)}
    with pytest.warns(RuntimeWarning, match="skipping corrupt episode.*" + damaged.name):
        code, _, err = cli(capsys, *PLANET, "--run.steps", "30", "--logdir", "run", "--resume")
    assert code == 0, err
    after = {p.name: p.read_bytes() for p in episode_files(run_copy)}
    assert {name: after[name] for name in before} == before, "an episode file was changed or lost"


def _file_in_the_way(tmp_path: Path) -> Path:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where a directory is needed")
    return blocker


def test_unwritable_logdir(capsys, tmp_path):
    """chmod does not stop root, so the directory is made impossible by a file in its path."""
    blocker = _file_in_the_way(tmp_path)
    code, _, err = cli(capsys, *PLANET, "--logdir", blocker / "run")
    assert_error(code, err, "train", str(blocker), "a file is in the way", "choose another path")
    assert blocker.read_text().startswith("a regular file")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_logdir(capsys, tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        code, _, err = cli(capsys, *PLANET, "--logdir", parent / "run")
    finally:
        parent.chmod(0o700)
    assert_error(code, err, "train", str(parent / "run"), "permission denied")


def test_resume_of_missing_logdir_is_an_error(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quick = ["--run.seed_episodes", "0", "--run.steps", "1"]  # today it trains: keep it short
    code, _, err = cli(capsys, *PLANET, *quick, "--logdir", "typo", "--resume")
    assert_error(code, err, "train", "'typo'", "does not exist", "--resume")
    assert not (tmp_path / "typo").exists()


def test_resume_of_a_moved_run(capsys, trained, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(trained, moved)
    code, _, err = cli(capsys, *PLANET, "--run.steps", "30", "--logdir", moved, "--resume")
    assert code == 0, err


def test_resume_with_an_episode_of_another_layout_names_that_file(capsys, run_copy):
    foreign = episode_files(run_copy)[0]
    set_image_size(foreign, 32)
    before = snapshot(run_copy)
    code, _, err = cli(capsys, *PLANET, "--run.steps", "30", "--logdir", "run", "--resume")
    assert_error(code, err, "train", foreign.name, "(32, 32, 3)")
    assert snapshot(run_copy) == before


def test_resume_from_a_world_model_checkpoint(capsys, run_copy):
    state = load_checkpoint(run_copy / "checkpoint.pt")
    for numbered in run_copy.glob("checkpoint-*.pt"):  # nothing good to fall back to
        numbered.unlink()
    save_checkpoint(
        run_copy / "checkpoint.pt",
        {"model": state["agent"]["model"], "config": {"run": {"env": "builtin:pointmass"}}},
    )
    before = snapshot(run_copy)
    code, _, err = cli(capsys, *PLANET, "--logdir", "run", "--resume")
    assert_error(code, err, "train", "not written by rssm train")
    assert snapshot(run_copy) == before


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
    ["truncated", "garbage", "world-model checkpoint", "another config", "planet checkpoint, "
     "dreamer run"],
)  # fmt: skip
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
    blocker = _file_in_the_way(tmp_path)
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
        timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )  # fmt: skip
    err = result.stderr
    assert_error(result.returncode, err, args[0], *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


# ------------------------------------------------------------------------ public API


def test_make_env_errors():
    with pytest.raises(ValueError, match=r"'foo:bar' must be 'suite:id' with suite one of builtin"):
        make_env("foo:bar")
    with pytest.raises(ValueError, match=r"unknown builtin env 'pointmas'\. Closest: pointmass"):
        make_env("builtin:pointmas")
    with pytest.raises(ValueError, match=r"unknown option\(s\) colour .* it accepts: obs"):
        make_env("builtin:pointmass", colour="red")
    with pytest.raises(ValueError, match=r"image_size=-1 must be a positive int"):
        make_env("builtin:pointmass", image_size=-1)


def test_config_functions_name_the_key_and_the_fix(tmp_path):
    with pytest.raises(
        ValueError, match=r"expected Config, got \[1, 2\] .*a mapping of its fields"
    ):
        config_lib.from_dict(Config, [1, 2])
    with pytest.raises(ValueError, match=r"'replay.batchsize'; did you mean 'replay.batch_size'"):
        config_lib.from_dict(Config, {"replay": {"batchsize": 3}})
    with pytest.raises(ValueError, match=r"config key 'seed': expected int, got 'zero'"):
        config_lib.merge(Config(), {"seed": "zero"})
    with pytest.raises(TypeError, match=r"overrides are a list of tokens \(e\.g\. shlex\.split\)"):
        config_lib.apply_overrides(Config(), "--seed 1")
    with pytest.raises(ValueError, match=r"unknown preset 'planet' \(available in .*: none\)"):
        config_lib.load_presets(Config, ["planet"], directory=tmp_path / "nothing")


def test_invalid_yaml_preset_in_a_directory(tmp_path):
    (tmp_path / "broken.yaml").write_text("run:\n  steps: [1, 2\n")
    (tmp_path / "listed.yaml").write_text("- a\n- b\n")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as error:
        config_lib.load_presets(Config, ["broken"], directory=tmp_path)
    text = str(error.value)
    assert "preset 'broken'" in text and "not valid YAML at line" in text and "fix the file" in text
    assert len(text.splitlines()) == 1, text
    with pytest.raises(ValueError, match=r"preset 'listed' .*expected a mapping .*got list"):
        config_lib.load_presets(Config, ["listed"], directory=tmp_path)
    assert snapshot(tmp_path) == before


def test_unknown_agent_and_world_model_preset():
    spec = env_spec(make_env("builtin:pointmass", image_size=16))
    config = dataclasses.replace(config_lib.load_presets(Config, ["planet", "debug"]), agent="sac")
    with pytest.raises(ValueError, match=r"unknown agent 'sac'; choose one of dreamer, planet"):
        make_agent(config, spec)
    with pytest.raises(ValueError, match=r"unknown preset 'planett'; known: \['dreamer_v1'"):
        world_model_config("planett")


def test_behavior_building_blocks_check_their_inputs():
    zeros = torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"cont has shape \(2, 3\) but reward has shape \(2, 4\)"):
        lambda_return(zeros, torch.zeros(2, 3), zeros, discount=0.99, lam=0.95)
    with pytest.raises(ValueError, match=r"reward must have shape \[N, H\+1\].*got \(4,\)"):
        lambda_return(torch.zeros(4), torch.zeros(4), torch.zeros(4), discount=0.99, lam=0.95)
    with pytest.raises(ValueError, match=r"discount must lie in \[0, 1\], got 1\.5"):
        lambda_return(zeros, zeros, zeros, discount=1.5, lam=0.95)

    def objective(actions):
        return -actions.square().sum((-1, -2))

    mean = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"elites \(8\) must be <= candidates \(4\); lower elites"):
        cem(objective, mean, 1.0, iterations=2, candidates=4, elites=8)
    with pytest.raises(ValueError, match=r"candidates must be a positive int, got 0"):
        cem(objective, mean, 1.0, iterations=2, candidates=0, elites=1)
    with pytest.raises(ValueError, match=r"low \(1\.0\) must be <= high \(-1\.0\)"):
        cem(objective, mean, 1.0, iterations=2, candidates=4, elites=2, low=1.0, high=-1.0)
    with pytest.raises(ValueError, match=r"0 <= low < high <= 100, got low=95, high=5"):
        ReturnNormalizer(low=95, high=5)
    with pytest.raises(ValueError, match=r"0 <= low < high <= 100, got low=5\.0, high=150"):
        ReturnNormalizer(high=150)
    with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\), got 1\.0"):
        ReturnNormalizer(decay=1.0)


def test_actions_of_the_wrong_shape():
    env = make_env("builtin:pointmass", image_size=16)
    driver = Driver([env], seed=0)
    with pytest.raises(ValueError, match=r"action of shape \(3,\) does not fit .*with 2 numbers"):
        driver(lambda carry, obs: (carry, np.zeros((1, 3), np.float32)), steps=2)
    with pytest.raises(ValueError, match=r"shape \(2,\), expected \[N, A\] with N=1 envs"):
        driver(lambda carry, obs: (carry, np.zeros(2, np.float32)), steps=2)
    driver.close()


def test_policy_with_a_carry_or_observation_of_the_wrong_size(planet_parts):
    agent, batch = planet_parts
    obs = {key: value[:, 0] for key, value in batch.items() if key != "action"}  # N = 2
    with pytest.raises(ValueError, match=r"prev_action has shape \(3, 2\).*initial_carry\(2\)"):
        agent.policy(agent.initial_carry(3), obs, "eval")
    carry = agent.initial_carry(2)
    wrong_plan = carry._replace(plan=torch.zeros(2, 7, 2))
    with pytest.raises(
        ValueError, match=r"carry\.plan has shape \(2, 7, 2\), expected .*\[2, 3, 2\]"
    ):
        agent.policy(wrong_plan, obs, "eval")
    small = {**obs, "image": np.zeros((2, 8, 8, 3), np.uint8)}
    with pytest.raises(
        ValueError, match=r"'image' has shape \(2, 8, 8, 3\), expected \[\.\.\., 16"
    ):
        agent.policy(None, small, "eval")
    with pytest.raises(ValueError, match=r"mode='greedy'; use 'explore' or 'eval'"):
        agent.policy(None, obs, "greedy")


@pytest.mark.parametrize("key", ["reward", "state"])
def test_nan_in_a_batch_skips_the_update(planet_parts, key):
    """WorldModel.loss returns a non-finite loss (its term names the culprit); train_step skips
    the optimiser step, leaves weights and Adam state as they were and reports it."""
    agent, batch = planet_parts
    bad = {k: v.copy() for k, v in batch.items()}
    bad[key][0, 3] = np.nan
    output = agent.model.loss(agent.model.preprocess(bad))
    assert not torch.isfinite(output.loss)
    term = output.terms[key]  # [B, T]: the NaN row is non-finite, the other sequence is not
    assert not torch.isfinite(term[0]).all() and torch.isfinite(term[1]).all()
    weights = [p.detach().clone() for p in agent.model.parameters()]
    adam = agent.model_opt.state_dict()["state"]
    metrics = agent.train_step(bad)
    assert metrics["model_nonfinite"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(weights, agent.model.parameters(), strict=True))
    assert agent.model_opt.state_dict()["state"].keys() == adam.keys()


def test_replay_skips_a_truncated_episode_and_keeps_the_others(trained, tmp_path):
    directory = tmp_path / "replay"
    shutil.copytree(trained / "replay", directory)
    damaged, *good = sorted(directory.glob("*.npz"))
    truncate(damaged)
    before = snapshot(directory)
    replay = Replay(1000, directory=directory)
    with pytest.warns(RuntimeWarning, match="skipping corrupt episode.*" + damaged.name):
        loaded = replay.load()
    assert loaded == len(good) and len(replay) == 11 * len(good)
    assert snapshot(directory) == before


def test_replay_directory_of_another_layout(trained, tmp_path):
    directory = tmp_path / "replay"
    shutil.copytree(trained / "replay", directory)
    foreign = sorted(directory.glob("*.npz"))[-1]
    set_image_size(foreign, 32)
    before = snapshot(directory)
    replay = Replay(1000, directory=directory)
    with pytest.raises(ValueError, match=r"does not match this replay: key 'image' has shape"):
        replay.load()
    assert len(replay) == 0, "nothing may be loaded from a directory of mixed layouts"
    assert snapshot(directory) == before


def test_checkpoint_api_errors(trained, tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes((trained / "checkpoint.pt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"corrupt or truncated \(1000 bytes"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*first checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    saved = {"model": {"w": torch.zeros(3, 4)}}
    with pytest.raises(IncompatibleCheckpointError, match=r"model\.w \[3, 4\] vs \[3, 5\]"):
        check_compatible(saved, {"model": {"w": torch.zeros(3, 5)}}, path=path)


def test_a_replay_larger_than_ram_is_one_line_before_the_run_directory_exists(
    capsys, tmp_path, monkeypatch
):
    from rssm.data import replay as replay_module

    monkeypatch.setattr(replay_module, "_physical_memory", lambda: 64 * 2**20)  # 64 MiB
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *PLANET, "--logdir", "run", "--replay.capacity", "1000000")
    assert_error(code, err, "train", "replay.capacity=1000000 needs about", "lower replay.capacity")
    assert "replay.storage=disk" in err
    assert not (tmp_path / "run").exists(), "nothing written: a rerun is not blocked"
