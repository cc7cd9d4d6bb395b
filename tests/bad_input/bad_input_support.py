"""Shared pieces of the bad-input catalogue (this folder): the tiny run's CLI arguments and the
checks.

Every kind of mistake a user can make through the public API or the CLI gets a clear message
that names the problem and the fix, and loses no file. CLI cases require exit code 2 and exactly
one stderr line without a traceback; cases that touch an existing run or replay directory compare
every file's bytes and mtime before and after. Run directories are copies (in ``tmp_path``) of one
tiny PlaNet run trained once per module (conftest.py) with the relative logdir ``run``, so that a
copy at ``tmp_path / "run"`` resumes from inside ``tmp_path`` (the logdir is part of the compared
config).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rssm.cli import main

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


def file_in_the_way(tmp_path: Path) -> Path:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where a directory is needed")
    return blocker
