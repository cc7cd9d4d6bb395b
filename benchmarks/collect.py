"""Collection speed: env steps per second of the driver with a random policy, for environments in
this process (``env.parallel: none``) and in 1, 2, 4 worker processes (``env.parallel:
process``), next to the raw env's own step rate measured in the same run.

    python benchmarks/collect.py                                   # walker-walk pixels and proprio
    python benchmarks/collect.py --workers 1 2 --steps 400 --results --json bench_collect.json

``raw`` steps one env in a plain loop (``env.step`` with random actions, resets at episode ends):
the most any collection can do per env. Each driver row steps N envs in lockstep for ``--steps``
env steps in total (after a warm-up), so a perfect N-worker row on N free cores is N x raw.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from results import captioned, publish  # noqa: E402
from throughput import cpu_name  # noqa: E402

from rssm.data import Driver, RandomPolicy  # noqa: E402
from rssm.envs import env_spec, make_env  # noqa: E402
from rssm.envs.parallel import ProcessEnv  # noqa: E402

OBS = ("pixels", "proprio")
# The suite option that gives the state vector instead of pixels.
STATE_OPTION = {"dmc": "proprio", "builtin": "state", "gym": "vector"}


def obs_options(env: str, obs: str) -> dict[str, Any]:
    suite = env.partition(":")[0]
    return {"obs": "pixels"} if obs == "pixels" else {"obs": STATE_OPTION[suite]}


def raw_rate(make: Any, steps: int) -> float:
    """Env steps per second of one env stepped in a plain loop."""
    env = make(seed=0)
    rng = np.random.default_rng(0)
    shape = env.action_space.shape
    env.reset(seed=0)
    for _ in range(20):  # warm-up (first renders, caches)
        env.step(rng.uniform(-1, 1, shape).astype(np.float32))
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, shape).astype(np.float32))
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def driver_rate(make: Any, name: str, workers: int, steps: int) -> float:
    """Env steps per second of a driver over ``workers`` worker envs (0: one local env)."""
    if workers:
        envs = [ProcessEnv(functools.partial(make, seed=i), name) for i in range(workers)]
    else:
        envs = [make(seed=0)]
    spec = env_spec(envs[0])
    driver = Driver(envs, seed=0, name=name)
    policy = RandomPolicy(spec.action_dim, spec.discrete, seed=0)
    driver(policy, steps=20 * len(envs))  # warm-up
    start = time.perf_counter()
    driver(policy, steps=steps)
    rate = steps / (time.perf_counter() - start)
    driver.close()
    return rate


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="dmc:walker-walk")
    parser.add_argument("--obs", nargs="+", default=["pixels", "proprio"], choices=OBS)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=400, help="env steps per row (agent steps)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--action-repeat", type=int, default=2)
    parser.add_argument("--label", default="", help="names the results section (collect-LABEL)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--results", action="store_true", help="write docs/results.md section")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "loadavg_start": os.getloadavg()[0],
        "env": args.env,
        "steps": args.steps,
        "rows": [],
    }
    rows = [["obs", "collector", "env steps/s", "vs raw", "vs 1 worker"]]
    for obs in args.obs:
        make = functools.partial(
            make_env, args.env, action_repeat=args.action_repeat, image_size=args.image_size,
            **obs_options(args.env, obs),
        )  # fmt: skip
        raw = raw_rate(make, args.steps)
        local = driver_rate(make, args.env, 0, args.steps)
        rates = {n: driver_rate(make, args.env, n, args.steps) for n in args.workers}
        one = rates.get(1)
        report["rows"].append({"obs": obs, "raw": raw, "local": local, "workers": rates})
        rows.append([obs, "raw env loop", f"{raw:.0f}", "1.00", ""])
        rows.append([obs, "driver, in process", f"{local:.0f}", f"{local / raw:.2f}", ""])
        for n, rate in rates.items():
            ratio = f"{rate / one:.2f}" if one else ""
            rows.append([obs, f"driver, {n} worker(s)", f"{rate:.0f}", f"{rate / raw:.2f}", ratio])
    text = captioned(
        f"{args.env}, action repeat {args.action_repeat}, {args.image_size}x{args.image_size} "
        f"pixels or proprio; random policy; agent steps per second (x{args.action_repeat} for "
        f"env frames), {args.steps} per row after a warm-up; {report['cpu']}; "
        f"1-min load {report['loadavg_start']:.1f} at start"
        + (
            f"; LP_NUM_THREADS={os.environ['LP_NUM_THREADS']}"
            if "LP_NUM_THREADS" in os.environ
            else ""
        ),  # fmt: skip
        rows,
    )
    publish(
        report, text, script="collect.py",
        section="collect" + (f"-{args.label}" if args.label else ""),
        title=f"## Collection with environment workers ({report['cpu']}"
        + (f", {args.label})" if args.label else ")"), argv=argv,
        json_path=args.json, results=args.results,
    )  # fmt: skip
    return report


if __name__ == "__main__":
    main()
