"""The README's command lines run as written: every ``rssm ...`` line of its command-line block
runs against tiny runs (``runs/<dir>`` is a PlaNet run like the demo's, ``runs/a-seed*`` two seeds
of a Dreamer run, ``runs/b-seed0`` another run). Training lines compose and check their config
the way ``rssm train`` does, with the training itself replaced by a stub (they would take hours);
the world-model job likewise. The resume line extends a copy of the demo run by 20 steps."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from rssm.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
TINY = [
    "--run.steps", "100", "--run.eval_every", "100", "--run.log_every", "50",
    "--run.tensorboard", "false",
]  # fmt: skip


def command_lines() -> list[str]:
    """The ``rssm`` lines of the README's first bash block that holds them, without comments
    and optional ``[...]`` parts."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    block = next(b for b in blocks if "\nrssm eval" in b)
    lines = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("rssm "):
            lines.append(re.sub(r"\s*\[[^\]]*\]", "", line).strip())
    return lines


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme") / "runs"
    planet = ["train", "--configs", "planet", "debug"]
    # the demo-like run: presets only (the README resumes it from its config.yaml)
    assert main([*planet, "--run.steps", "100", "--logdir", str(root / "demo")]) == 0
    assert main([*planet, *TINY, "--logdir", str(root / "b-seed0")]) == 0
    for seed in (0, 1):
        dreamer = ["train", "--configs", "dreamer_v3", "debug", *TINY, "--seed", str(seed)]
        assert main([*dreamer, "--logdir", str(root / f"a-seed{seed}")]) == 0
    return root


def test_the_readme_has_command_lines():
    names = {line.split()[1] for line in command_lines()}
    assert {"train", "eval", "dream", "report", "plot", "world-model", "envs"} <= names


@pytest.mark.parametrize("line", command_lines())
def test_readme_command_runs_as_written(line, runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = line.replace("runs/<dir>", str(runs / "demo"))
    line = line.replace("<step>", "100")  # the demo-like run's checkpoint
    for name in ("a-seed0", "a-seed1", "b-seed0"):
        line = line.replace(f"runs/{name}", str(runs / name))
    args = shlex.split(line)[1:]
    if args[0] == "train" and "--resume" not in args:
        seen = []

        def stub(config, resume=False, older=False):  # composing the config is the test
            seen.append(config)
            run_dir = tmp_path / "stub-run"
            run_dir.mkdir(exist_ok=True)
            (run_dir / "metrics.jsonl").touch()
            return run_dir

        monkeypatch.setattr("rssm.run.train.train", stub)
        assert main(args) == 0, capsys.readouterr().err
        assert len(seen) == 1
        return
    if args[0] == "world-model":  # up to the training, which would take hours

        class Reached(BaseException):
            """Raised in place of the hours-long training: the command got that far."""

        def stub(*_args, **_kwargs):
            raise Reached

        monkeypatch.setattr("rssm.run.world_model.train_world_model", stub)
        with pytest.raises(Reached):
            main(args)
        return
    if args[0] == "train":  # --resume: a copy of the demo run, extended by 20 steps, not to 200K
        copy = tmp_path / "demo"
        shutil.copytree(runs / "demo", copy)
        args = [str(copy) if a == str(runs / "demo") else a for a in args]
        args[args.index("--run.steps") + 1] = "120"
        assert main(args) == 0, capsys.readouterr().err
        assert yaml.safe_load((copy / "config.yaml").read_text())["run"]["steps"] == 120
        return
    assert main(args) == 0, capsys.readouterr().err
