"""Is a change slower? ``train_step.py`` of an older git revision vs this checkout, side by side.

Run from the repository root::

    python benchmarks/revisions.py --base 6539e0b --agents v3_xxs --obs proprio --rounds 3
    python benchmarks/revisions.py --base HEAD~5 --agents v3_xs --repeats 3 --results

The base revision is checked out into a temporary git worktree (removed at the end) and each
side runs its own ``benchmarks/train_step.py`` in its own process, so each times its own code
against the same installed torch. Rounds alternate the order (base then this checkout, then
the other way round) so that a change of machine load hits both alike; every timed update of
every round is pooled and the median reported. ``ratio`` = this checkout's median / the base's:
above 1 is slower. Run it on an idle machine: absolute times vary between runs, the ratio is
what the side-by-side rounds make comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT / "benchmarks"))

from results import add_label_argument, align, check_label, labelled, publish  # noqa: E402
from throughput import cpu_name  # noqa: E402

SCRIPT = Path("benchmarks") / "train_step.py"
PARTS = ("world_model_s", "actor_critic_s")  # the two halves train_step.py also times


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def run_side(tree: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [
        sys.executable, str(tree / SCRIPT), "--agents", args.agents, "--obs", args.obs,
        "--batch", str(args.batch), "--length", str(args.length),
        "--horizon", str(args.horizon), "--repeats", str(args.repeats),
        "--warmup", str(args.warmup), "--threads", str(args.threads), "--json", str(out),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=tree, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def pooled(runs: list[dict[str, Any]]) -> dict[str, float]:
    """One side's rounds: the median of every timed update, and of each half's per-round median."""
    seconds = [s for run in runs for s in run["seconds"]]
    return {"median_s": statistics.median(seconds),
            **{part: statistics.median(run[part] for run in runs) for part in PARTS}}  # fmt: skip


def table(report: dict[str, Any]) -> str:
    lines = [
        f"full Dreamer update (benchmarks/train_step.py), batch {report['batch']}x"
        f"{report['length']}, {report['obs']}, {report['threads']} threads, "
        f"{report['rounds']} rounds x {report['repeats']} timed updates per side",
        f"base {report['base']} vs this checkout {report['head']}; {report['cpu']}; "
        f"1-min load {report['loadavg_start']:.1f} at start",
        "s = median over all timed updates of all rounds; ratio = this checkout / base "
        "(above 1: slower)",
        "",
    ]
    header = ["agent", "base s", "this s", "ratio", "base WM s", "this WM s", "base AC s"]
    rows = [[*header, "this AC s"]]
    for name, sides in report["agents"].items():
        base, head = sides["base"], sides["head"]
        ratio = head["median_s"] / base["median_s"]
        cells = [f"{side[key]:.3f}" for key in ("median_s", *PARTS) for side in (base, head)]
        rows.append([name, *cells[:2], f"{ratio:.3f}", *cells[2:]])
    return "\n".join(lines + align(rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--agents", default="v3_xxs", help="as train_step.py --agents")
    parser.add_argument("--obs", choices=["pixels", "proprio"], default="proprio")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5, help="timed updates per side per round")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each side")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--results", action="store_true", help="write docs/results.md section")
    add_label_argument(parser)
    args = parser.parse_args(argv)
    check_label(parser, args.label)
    if args.rounds < 1 or args.repeats < 1:
        parser.error("--rounds and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    base = git("rev-parse", "--short", f"{args.base}^{{commit}}")
    head = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain"):
        head += "+changes"
    timings: dict[str, dict[str, list[dict[str, Any]]]] = {}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "base"
        git("worktree", "add", "--detach", str(tree), base)
        try:
            if not (tree / SCRIPT).is_file():
                raise SystemExit(f"--base {args.base}: that revision has no {SCRIPT}")
            sides = [("base", tree), ("head", ROOT)]
            for round_ in range(args.rounds):
                for side, path in sides if round_ % 2 == 0 else sides[::-1]:
                    out = Path(tmp) / f"{side}-{round_}.json"
                    for agent in run_side(path, args, out)["agents"]:
                        timings.setdefault(agent["agent"], {}).setdefault(side, []).append(agent)
                    print(f"round {round_ + 1}/{args.rounds}: {side} done", flush=True)
        finally:
            git("worktree", "remove", "--force", str(tree))
    agents = {name: {side: pooled(runs) for side, runs in by_side.items()}
              for name, by_side in timings.items()}  # fmt: skip
    report = {
        "base": base,
        "head": head,
        "agents": agents,
        "loadavg_start": load,
        "cpu": cpu_name(),
        **{
            k: getattr(args, k)
            for k in ("batch", "length", "horizon", "obs", "repeats", "rounds", "threads")
        },
    }
    publish(
        report,
        table(report),
        script="revisions.py",
        section=labelled(f"train-step-vs-{base}", args.label),
        title=f"## Full Dreamer update: {base} vs this checkout ({report['cpu']})",
        argv=argv,
        json_path=args.json,
        results=args.results,
    )
    return report


if __name__ == "__main__":
    main()
