"""The thread policy under load: the demo configuration's speed alone and beside a competing
process, for several torch thread counts (``run.threads``).

Each cell is one ``rssm train`` run of the demo configuration (``--configs planet cpu``, the
built-in point mass) for ``--steps`` env steps in a fresh process, timed from start to end; the
competitor is another process multiplying matrices with ``--competitor-threads`` torch threads
for as long as the run lasts (another training run, as a user would have).

    python benchmarks/threads.py                      # threads 1 and 2, alone and loaded
    python benchmarks/threads.py --threads 1 2 --steps 1500 --results
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import captioned, publish  # noqa: E402
from throughput import cpu_name  # noqa: E402

COMPETITOR = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
while True:
    a @ b
"""


def timed_run(
    threads: int, steps: int, loaded: bool, competitor_threads: int, seed_episodes: int = 5
) -> float:
    """Seconds of one demo-configuration run (a fresh process) with ``threads`` torch threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    competitor = None
    if loaded:
        competitor = subprocess.Popen(
            [sys.executable, "-c", COMPETITOR, str(competitor_threads)],
            env={**os.environ, "OMP_NUM_THREADS": str(competitor_threads)},
        )
        time.sleep(2.0)  # let it start spinning
    try:
        with tempfile.TemporaryDirectory() as tmp:
            command = [
                sys.executable, "-m", "rssm", "train", "--configs", "planet", "cpu",
                "--logdir", str(Path(tmp) / "run"), "--run.steps", str(steps),
                "--run.threads", str(threads), "--run.eval_every", "0", "--run.video_every", "0",
                "--run.tensorboard", "false", "--run.seed_episodes", str(seed_episodes),
            ]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True, cwd=ROOT)
            return time.perf_counter() - start
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=1500, help="env steps of each run")
    parser.add_argument("--competitor-threads", type=int, default=2)
    parser.add_argument("--seed-episodes", type=int, default=5, help="the demo's: 5")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--results", action="store_true", help="write docs/results.md section")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "cpu": cpu_name(),
        "loadavg_start": os.getloadavg()[0],
        "steps": args.steps,
        "competitor_threads": args.competitor_threads,
        "cells": [],
    }
    rows = [["run.threads", "alone s", "loaded s", "loaded / alone speed"]]
    for threads in args.threads:
        alone = timed_run(threads, args.steps, False, args.competitor_threads, args.seed_episodes)
        loaded = timed_run(threads, args.steps, True, args.competitor_threads, args.seed_episodes)
        report["cells"].append({"threads": threads, "alone_s": alone, "loaded_s": loaded})
        rows.append([str(threads), f"{alone:.1f}", f"{loaded:.1f}", f"{alone / loaded:.0%}"])
    text = captioned(
        f"demo configuration (`rssm train --configs planet cpu`), {args.steps} env steps per "
        f"run, wall clock from process start; loaded = beside a process multiplying "
        f"1024x1024 matrices with {args.competitor_threads} torch threads; {report['cpu']}; "
        f"1-min load {report['loadavg_start']:.1f} at start",
        rows,
    )
    publish(
        report, text, script="threads.py", section="threads",
        title=f"## Thread policy under load ({report['cpu']})", argv=argv,
        json_path=args.json, results=args.results,
    )  # fmt: skip
    return report


if __name__ == "__main__":
    main()
