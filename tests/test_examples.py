"""The scripts in examples/ run as a newcomer would run them (``--quick``: tiny budgets)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("custom_env_dreamer.py", "trained agent:"),
        ("world_model_from_episodes.py", "open-loop video:"),
        ("plan_with_cem.py", "episode return with CEM"),
    ],
)
def test_example_runs(tmp_path, script, expected):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert expected in done.stdout, done.stdout[-2000:]
    assert (tmp_path / "runs").is_dir(), "outputs go under ./runs"


def test_every_example_is_tested():
    tested = {"custom_env_dreamer.py", "world_model_from_episodes.py", "plan_with_cem.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested
