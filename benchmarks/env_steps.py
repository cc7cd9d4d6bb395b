"""Raw step rate of environments with a uniform random policy (the rate the library's driver can
at best reach). Speed lives here, not in unit tests: a timed assertion passes or fails by how busy
the machine is.

    python benchmarks/env_steps.py                                   # built-in envs
    python benchmarks/env_steps.py --envs builtin:pointmass dmc:walker-walk --steps 2000 --results
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

import numpy as np  # noqa: E402
from results import captioned, publish  # noqa: E402
from throughput import cpu_name  # noqa: E402

from rssm.envs import make_env  # noqa: E402

DEFAULT_ENVS = ["builtin:pointmass", "builtin:pointmass-discrete", "builtin:echo"]


def steps_per_second(name: str, steps: int, repeats: int, image_size: int) -> list[float]:
    """``repeats`` timings of ``steps`` random steps of env ``name`` (resets included)."""
    env = make_env(name, seed=0, image_size=image_size)
    env.action_space.seed(0)
    rates = []
    for _ in range(repeats):
        env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        rates.append(steps / (time.perf_counter() - start))
    env.close()
    return rates


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=DEFAULT_ENVS)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--results", action="store_true", help="write docs/results.md section")
    args = parser.parse_args(argv)
    rows = [["env", "steps/s (median)", "min", "max"]]
    report: dict[str, Any] = {
        "cpu": cpu_name(),
        "loadavg_start": os.getloadavg()[0],
        "steps": args.steps,
        "repeats": args.repeats,
        "image_size": args.image_size,
        "envs": {},
    }
    for name in args.envs:
        rates = steps_per_second(name, args.steps, args.repeats, args.image_size)
        report["envs"][name] = rates
        rows.append([name, f"{statistics.median(rates):.0f}", f"{min(rates):.0f}",
                     f"{max(rates):.0f}"])  # fmt: skip
    text = captioned(
        f"random-policy env steps per second, {args.steps} steps x {args.repeats}, "
        f"{args.image_size}x{args.image_size} images where rendered; {report['cpu']}; "
        f"1-min load {report['loadavg_start']:.1f} at start",
        rows,
    )
    publish(
        report, text, script="env_steps.py", section="env-steps",
        title=f"## Environment step rate ({report['cpu']})", argv=argv,
        json_path=args.json, results=args.results,
    )  # fmt: skip
    return report


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
