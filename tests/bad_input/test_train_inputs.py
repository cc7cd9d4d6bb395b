"""The bad-input catalogue, ``rssm train``: bad configs are refused before anything is written, and
run directories (resume, truncated or foreign checkpoints and episodes, unwritable logdirs) get
one clear line and lose no file. The rules of the catalogue are in bad_input_support.py.
"""

from __future__ import annotations

import os
import shutil
import warnings

import pytest
import torch
from bad_input_support import (
    BASE,
    DREAMER,
    PLANET,
    assert_error,
    cli,
    episode_files,
    file_in_the_way,
    set_image_size,
    snapshot,
    truncate,
)

from rssm.run.checkpoint import (
    load_checkpoint,
    save_checkpoint,
)
from rssm.run.runs import load_config

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


def test_unwritable_logdir(capsys, tmp_path):
    """chmod does not stop root, so the directory is made impossible by a file in its path."""
    blocker = file_in_the_way(tmp_path)
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


def test_resume_without_configs_continues_from_the_runs_config(capsys, run_copy):
    code, _, err = cli(capsys, "train", "--resume", "--logdir", "run", "--run.steps", "30")
    assert code == 0, err
    config = load_config(run_copy)
    assert config.run.steps == 30 and config.agent == "planet" and config.env.time_limit == 10


def test_resume_without_configs_refuses_other_changes(capsys, run_copy):
    before = snapshot(run_copy)
    code, _, err = cli(capsys, "train", "--resume", "--logdir", "run", "--planet.horizon", "4")
    assert_error(code, err, "train", "planet.horizon: 3 -> 4", "only logdir, run.steps")
    assert snapshot(run_copy) == before


def test_resume_without_configs_or_logdir_asks_for_the_logdir(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "train", "--resume")
    assert_error(code, err, "train", "--resume continues the run in --logdir", "--logdir RUN_DIR")
    assert not any(tmp_path.iterdir())
