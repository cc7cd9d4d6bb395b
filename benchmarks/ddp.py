"""Data-parallel update speed: one process vs N ranks under torchrun, at the same global batch.

    python benchmarks/ddp.py                                         # 1 and 2 ranks on the CPU
    python benchmarks/ddp.py --ranks 1 2 4 8 --device cuda --results  # one GPU per rank

Each row launches ``torchrun --nproc-per-node N`` on this script (N = 1 included, so every row
pays the same launcher), builds the agent of ``--configs`` for ``--env`` on every rank, fills a
replay per rank with ``--fill`` random-policy steps, and times ``--updates`` updates after a
warm-up, between two barriers: each rank samples ``batch_size / N`` sequences and the gradients
are averaged over the ranks (rssm.distributed), exactly as ``torchrun ... -m rssm train`` trains.
``updates/s`` is rank 0's; ``rows/s`` counts the global batch (B x T per update).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(ROOT))

from results import captioned, publish  # noqa: E402
from throughput import cpu_name  # noqa: E402


def worker(args: argparse.Namespace) -> dict[str, Any] | None:
    """One rank: build, fill, time; rank 0 returns the row."""
    import torch

    from rssm import distributed
    from rssm.config import apply_overrides, load_presets
    from rssm.data import Driver, RandomPolicy, Replay
    from rssm.envs import env_spec
    from rssm.run.builders import make_agent, make_envs
    from rssm.run.run_config import Config

    torch.set_num_threads(args.threads)
    config = load_presets(Config, args.configs)
    config = apply_overrides(config, {"env.name": args.env, "run.device": args.device})
    with distributed.session(args.device) as (world, device):
        config = apply_overrides(config, {"run.device": device})
        batch = distributed.split_batch(config.replay.batch_size, world.size)
        length = config.replay.length
        envs = make_envs(config, 1, config.seed + 1000 * world.rank)
        spec = env_spec(envs[0])
        agent = make_agent(config, spec)
        replay = Replay(args.fill, seed=world.rank)
        driver = Driver(envs, seed=world.rank)
        driver.on_step(replay.add)
        driver(RandomPolicy(spec.action_dim, spec.discrete, world.rank), steps=args.fill)
        driver.close()
        for _ in range(args.warmup):
            agent.train_step(replay.sample(batch, length))
        distributed.reduce_flags(False)  # a barrier on every backend
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.updates):
            agent.train_step(replay.sample(batch, length))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        distributed.reduce_flags(False)
        seconds = time.perf_counter() - start
        if not world.main:
            return None
        return {
            "ranks": world.size,
            "per_rank_batch": batch,
            "global_batch": config.replay.batch_size,
            "length": length,
            "updates_per_s": args.updates / seconds,
            "rows_per_s": args.updates * config.replay.batch_size * length / seconds,
        }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["dreamer_v3", "dmc_proprio", "xxs"])
    parser.add_argument("--env", default="dmc:reacher-easy")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--fill", type=int, default=2000, help="random steps in each replay")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--label", default="", help="names the results section (ddp-LABEL)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--results", action="store_true", help="write docs/results.md section")
    args = parser.parse_args(argv)
    if args.worker:
        row = worker(args)
        if row is not None:
            print("ROW " + json.dumps(row), flush=True)
        return row or {}
    report: dict[str, Any] = {
        "cpu": cpu_name(), "cores": os.cpu_count(), "loadavg_start": os.getloadavg()[0],
        "configs": args.configs, "env": args.env, "device": args.device, "rows": [],
    }  # fmt: skip
    forwarded = ["--configs", *args.configs, "--env", args.env, "--device", args.device,
                 "--updates", str(args.updates), "--warmup", str(args.warmup),
                 "--fill", str(args.fill), "--threads", str(args.threads)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads)}
    for ranks in args.ranks:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node", str(ranks), __file__, "--worker", *forwarded]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{ranks} rank(s) failed:\n{done.stderr[-3000:]}")
        line = next(x for x in done.stdout.splitlines() if x.startswith("ROW "))
        report["rows"].append(json.loads(line.removeprefix("ROW ")))
    one = report["rows"][0]["updates_per_s"] if report["rows"][0]["ranks"] == 1 else None
    rows = [["ranks", "batch per rank", "updates/s", "rows/s", "vs 1 rank"]]
    for row in report["rows"]:
        ratio = f"{row['updates_per_s'] / one:.2f}" if one else ""
        rows.append([str(row["ranks"]), f"{row['per_rank_batch']}x{row['length']}",
                     f"{row['updates_per_s']:.2f}", f"{row['rows_per_s']:.0f}", ratio])  # fmt: skip
    where = report["cpu"] if args.device == "cpu" else f"{args.device} ({report['cpu']} host)"
    text = captioned(
        f"{' '.join(args.configs)} on {args.env}, global batch "
        f"{report['rows'][0]['global_batch']}x{report['rows'][0]['length']}; {args.updates} "
        f"updates after {args.warmup} of warm-up, {args.threads} torch thread(s) per rank; "
        f"{where}; 1-min load {report['loadavg_start']:.1f} at start",
        rows,
    )
    publish(
        report, text, script="ddp.py", section="ddp" + (f"-{args.label}" if args.label else ""),
        title=f"## Data-parallel updates with torchrun ({where})", argv=argv,
        json_path=args.json, results=args.results,
    )  # fmt: skip
    return report


if __name__ == "__main__":
    main()
