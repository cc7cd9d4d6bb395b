"""Learning benchmark for any agent and task: seeded `rssm train` runs, return against env steps.

Each seed is one ordinary training run (``rssm.run.train``) in its own process and run directory
under ``--out``; the benchmark reads the runs' ``metrics.jsonl`` back and reports the evaluation
return (the agent's ``eval`` policy on a held-out env seed) and the mean training-episode return
against env steps and wall clock. ``--json`` writes the curves, ``--results`` writes a section of
docs/results.md named after the task and ``--label``.

    python benchmarks/learn.py --label planet --configs planet cpu --env dmc:cartpole-balance \\
        --set env.image_size=64 env.action_repeat=8 "env.options={fast_render: true}" \\
        --steps 80000 --eval-every 10000 --seeds 0 --json bench_learn_planet.json --results

A run directory that already exists is resumed from its checkpoint (``--fresh`` deletes it
first); ``--report`` only rebuilds the table and JSON from finished run directories (their
settings come from each run's saved ``config.yaml``, so later preset edits do not change them).
``--minutes M`` gives every run a wall-clock budget (``run.max_minutes``): a run stops at the
first episode end after M minutes, or at ``--steps``, whichever comes first, and is evaluated
there; the table says where each seed stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import re
import shlex
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import mean_sd, read_section, write_section  # noqa: E402

from rssm import config as config_lib  # noqa: E402
from rssm.run.logger import read_metrics, wall_clock  # noqa: E402
from rssm.run.malloc import keep_freed_memory  # noqa: E402
from rssm.run.run_config import check_train_schedule, resolve_threads  # noqa: E402
from rssm.run.sittings import Sitting, describe, read_sittings  # noqa: E402
from rssm.run.train import Config, train  # noqa: E402

# DreamerV3's released learning curves (2023 version: size S, action repeat 2, train ratio 512,
# batch 16x64; training-episode return, mean of 5 seeds), ../shared/REFERENCE.md and the authors'
# released score files (danijar/dreamerv3 at 423291a, scores/data/dmc{proprio,vision}_dreamerv3).
# Proprio: at 10K-40K the seeds' curves interpolated at that step; at 50K and 100K the mean of the
# curve at the step and 10K either side (REFERENCE.md's method; the bare point is 631 / 693 on
# reacher-easy and 490 / 840 on cartpole-balance). Vision: the curves are logged every 30K env
# steps from 30K on, so there is no value before 30K; 30K-50K interpolate between the 30K and 60K
# points (REFERENCE.md's method gives the same at 50K), 100K is REFERENCE.md's.
RELEASED_V3: dict[str, dict[str, dict[int, float]]] = {
    "proprio": {
        "dmc:reacher-easy": {10_000: 72, 20_000: 36, 30_000: 359, 40_000: 485, 50_000: 611,
                             100_000: 727},
        "dmc:cartpole-balance": {10_000: 316, 20_000: 227, 30_000: 371, 40_000: 486,
                                 50_000: 518, 100_000: 821},
    },
    "pixels": {
        "dmc:reacher-easy": {30_000: 73, 40_000: 86, 50_000: 98, 100_000: 368},
        "dmc:cartpole-balance": {30_000: 232, 40_000: 273, 50_000: 314, 100_000: 572},
    },
}  # fmt: skip


def released_curve(env: str, obs: str | None) -> tuple[str, dict[int, float]]:
    """The released DreamerV3 curve for ``env`` observed as ``obs`` (``proprio`` or ``pixels``),
    as ``(column header, {env step: return})``; an empty dict where none was released."""
    if obs not in RELEASED_V3:
        return "", {}
    kind = "" if obs == "proprio" else ", pixels"
    return f"released DreamerV3 (S{kind}, train return)", RELEASED_V3[obs].get(env, {})


def _assignment(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE (dotted key), got {text!r}")
    return key, yaml.safe_load(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", required=True, help="names the runs and the results section")
    parser.add_argument("--configs", nargs="+", default=["planet", "cpu"], metavar="PRESET")
    parser.add_argument("--env", required=True, help="task, e.g. dmc:cartpole-balance")
    parser.add_argument(
        "--set", nargs="*", default=[], type=_assignment, metavar="KEY=VALUE",
        help="dotted config overrides (YAML values), applied after the presets",
    )  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "--want-seeds", type=int, default=None,
        help="seeds the protocol asks for; a row with fewer says so (default: len(--seeds))",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, required=True, help="env-step budget of each run")
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("runs/learn"))
    parser.add_argument(
        "--minutes", type=float, default=None,
        help="wall-clock budget of each run (run.max_minutes); --steps is then an upper bound",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch threads per run (run.threads; default: the run's own, 1 on the CPU)",
    )  # fmt: skip
    parser.add_argument("--fresh", action="store_true", help="delete existing run directories")
    parser.add_argument("--report", action="store_true", help="only report existing runs")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--note", default="", help="a sentence for the row, e.g. what else ran on the machine"
    )
    parser.add_argument("--results", action="store_true", help="write docs/results.md section")
    parser.add_argument(
        "--section", default=None, metavar="NAME",
        help="the docs/results.md section to write (default: learn-<env>-<label>, the row "
        "that --beside and --floor read); another name keeps that row, e.g. to report some of "
        "its seeds apart",
    )  # fmt: skip
    parser.add_argument(
        "--beside", nargs="+", default=[], metavar="LABEL",
        help="put the eval return of these rows of docs/results.md (same --env, other --label) "
        "beside this row's, at the same env steps",
    )  # fmt: skip
    parser.add_argument(
        "--floor", default=None, metavar="LABEL",
        help="a row (e.g. the random policy's) that this one must clear: the table says at which "
        "evals the mean is above the floor's mean by more than twice the spread over seeds",
    )  # fmt: skip
    parser.add_argument(
        "--floor-from", type=int, default=0, metavar="STEP",
        help="judge against --floor from this env step on (default: every eval)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.eval_every < 1 or args.steps < 1:
        parser.error(
            f"--steps={args.steps} and --eval-every={args.eval_every} must be >= 1 (a learning "
            "row is its evals; the last one ends the run)"
        )
    if args.steps % args.eval_every:
        parser.error("--steps must be a multiple of --eval-every (the last eval ends the run)")
    if args.fresh and args.report:
        parser.error("--fresh deletes the runs that --report reads; drop one of them")
    threads = dict(args.set).get("run.threads")
    if args.threads and threads is not None and threads != args.threads:
        parser.error(
            f"--threads {args.threads} and --set run.threads={threads} disagree; give one of them"
        )
    return args


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def run_dir(args: argparse.Namespace, seed: int) -> Path:
    return args.out / f"{slug(args.env)}-{slug(args.label)}-seed{seed}"


def make_config(args: argparse.Namespace, seed: int) -> Config:
    """The presets, ``--env``, ``--set`` and the benchmark's own keys, in that order."""
    config = config_lib.load_presets(Config, args.configs)
    overrides = {"env.name": args.env, **dict(args.set)}
    overrides.update(
        {
            "seed": seed,
            "logdir": str(run_dir(args, seed)),
            "run.steps": args.steps,
            "run.eval_every": args.eval_every,
            "run.eval_episodes": args.eval_episodes,
            "run.max_minutes": args.minutes,
        }
    )
    if args.threads:
        # The run sets its own thread count (run.threads, 1 on the CPU by default): a thread
        # count set only in this process would be replaced inside train().
        overrides["run.threads"] = args.threads
    config = config_lib.apply_overrides(config, overrides)
    check_train_schedule(config, config_lib.layers(args.configs, overrides))
    return config


def one_run(job: tuple[argparse.Namespace, int]) -> dict[str, Any]:
    """Trains (or resumes) one seed in this process; returns its curve."""
    args, seed = job
    keep_freed_memory()
    config = make_config(args, seed)
    directory = Path(config.logdir)
    if args.fresh and directory.exists():
        shutil.rmtree(directory)
    if not args.report:
        train(config, resume=directory.exists())
    return curve(directory, seed)


def curve(directory: Path, seed: int) -> dict[str, Any]:
    """Eval return and the mean training return since the previous eval, per eval step."""
    rows = read_metrics(directory)
    sittings = read_sittings(directory)
    # Each sitting's logger restarts its time at 0: count the wall clock over the sittings.
    seconds = wall_clock(rows, [s.from_env_steps for s in sittings])
    points, train_returns = [], []
    for row, elapsed in zip(rows, seconds, strict=True):
        if row.get("episode/return") is not None:
            train_returns.append(row["episode/return"])
        if row.get("eval/return") is not None:
            recent = [r for r in train_returns if r is not None]
            points.append(
                {
                    "step": row["step"],
                    "time": elapsed,
                    "eval_return": row["eval/return"],
                    "train_return": statistics.mean(recent) if recent else None,
                }
            )
            train_returns = []
    last = rows[-1] if rows else {}
    return {
        "seed": seed,
        "logdir": str(directory),
        "points": points,
        "stopped_at": last.get("step"),
        "updates": last.get("train/updates"),
        "sittings": [dataclasses.asdict(s) for s in sittings],
    }


def saved_settings(args: argparse.Namespace, runs: list[dict[str, Any]]) -> Config:
    """The first run's saved ``config.yaml`` (what it really ran with); the presets as they
    are now only when no run directory holds one."""
    for run in runs:
        path = Path(run["logdir"]) / "config.yaml"
        if path.is_file():
            return config_lib.from_dict(Config, yaml.safe_load(path.read_text(encoding="utf-8")))
    return make_config(args, args.seeds[0])


def compared_labels(args: argparse.Namespace) -> list[str]:
    """The rows shown beside this one: ``--beside``, then ``--floor`` if not among them."""
    return list(dict.fromkeys([*args.beside, *([args.floor] if args.floor else [])]))


def row_from_results(env: str, label: str) -> dict[int, str]:
    """The eval-return cells (``"mean ± sd"`` as written) by env step of the learn row ``label``
    on ``env`` in docs/results.md; a clear error where there is no such row."""
    name = f"learn-{slug(env)}-{slug(label)}"
    section = read_section(name)
    if section is None:
        raise SystemExit(
            f"learn.py: no row {label!r} for {env} in docs/results.md (section {name}); write it "
            f"first with `benchmarks/learn.py --label {label} --env {env} ... --results`, or "
            "drop it from --beside/--floor"
        )
    cells: dict[int, str] = {}
    column = None
    for line in section.splitlines():
        parts = [part.strip() for part in line.strip().strip("|").split("|")]
        if parts and parts[0] == "env steps":
            column = parts.index("eval return")
        elif column is not None and parts and parts[0].isdigit():
            cells[int(parts[0])] = parts[column]
    if not cells:
        raise SystemExit(f"learn.py: the row {label!r} ({name}) has no table lines")
    return cells


def _mean_of(cell: str) -> float | None:
    """The mean of a cell written by :func:`results.mean_sd` (``"12.3 ± 4.5"``, ``"12.3"`` or
    ``"-"``)."""
    head = cell.split("±")[0].strip()
    try:
        return float(head)
    except ValueError:
        return None


def floor_verdicts(
    args: argparse.Namespace, runs: list[dict[str, Any]], floor: dict[int, str]
) -> list[str]:
    """At each eval step from ``--floor-from`` where the floor row has a value and this row has
    two or more seeds: is this row's mean above the floor's mean by more than twice the standard
    deviation over this row's seeds? (Evals where a sitting stopped off the grid are not judged.)"""
    label = args.floor
    lines, passed = [], []
    steps = sorted({p["step"] for run in runs for p in run["points"]})
    for step in (s for s in steps if s >= args.floor_from):
        evals = [p["eval_return"] for run in runs for p in run["points"] if p["step"] == step]
        base = _mean_of(floor.get(step, "-"))
        if base is None or len(evals) < 2:
            continue
        margin, spread = statistics.mean(evals) - base, statistics.stdev(evals)
        passed.append(margin > 2 * spread)
        lines.append(
            f"{step}: {'yes' if passed[-1] else 'no'} "
            f"(mean − {label} {margin:.1f}, 2 sd {2 * spread:.1f})"
        )
    where = (
        f"at every eval from {args.floor_from} env steps where both rows have a value and this "
        "one has two or more seeds"
    )
    if not lines:
        return ["", f"Above `{label}` by more than twice the spread over seeds {where}: not judged "
                "(no such eval yet)."]  # fmt: skip
    verdict = "yes" if all(passed) else "no"
    return [
        "",
        f"Above `{label}` by more than twice the spread over seeds {where}: **{verdict}**; "
        + "; ".join(lines)
        + ".",
    ]


def markdown(args: argparse.Namespace, runs: list[dict[str, Any]], command: str) -> str:
    config = saved_settings(args, runs)
    overridden = {key for key, _ in args.set}  # --set keys (e.g. world_model.*) are always shown
    settings = {
        key: value
        for key, value in config_lib.flatten(config).items()
        if key.startswith(("agent", "env.", "replay.", "run.train", "run.seed_"))
        or key == "run.max_minutes"
        or key.startswith((f"{config.agent}.",))
        or key in overridden
    }
    steps = sorted({p["step"] for run in runs for p in run["points"]})
    released_header, released = released_curve(args.env, config.env.options.get("obs"))
    beside = {label: row_from_results(args.env, label) for label in compared_labels(args)}
    lines = [
        f"## {config.agent} on `{args.env}` ({args.label}"
        + (f", section {args.section})" if args.section else ")"),
        "",
        f"Command: `{command.strip()}`  ",
        f"Written {time.strftime('%Y-%m-%d')} by the run itself: {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, {args.jobs} run(s) in parallel, "
        f"{resolve_threads(config.run)} torch thread(s) each; seeds "
        f"{', '.join(map(str, args.seeds))}; eval return = mean of {config.run.eval_episodes} "
        "episodes of the eval policy on held-out env seeds; train return = mean of the training "
        "episodes since the previous eval.  ",
        *([f"Note: {args.note.strip()}  "] if args.note.strip() else []),
        "Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()) + "  ",
        "Stopped at (env steps, updates): "
        + ", ".join(f"seed {r['seed']}: {r['stopped_at']}, {r['updates']}" for r in runs)
        + (f" (wall-clock budget {args.minutes:g} min per run)" if args.minutes else "")
        + ("  " if any(r.get("sittings") for r in runs) else ""),
        *sitting_lines(runs),
        *(
            [
                "",
                "Table rebuilt with `--report` from the finished run directories; without it the "
                "same command trains them.",
            ]
            if args.report
            else []
        ),
        "",
        "| env steps | seeds | eval return | train return | wall clock (min) |"
        + "".join(f" eval return ({label}) |" for label in beside)
        + (f" {released_header} |" if released else ""),
        "|---|---|---|---|---|" + "---|" * len(beside) + ("---|" if released else ""),
    ]
    for step in steps:
        at = [p for run in runs for p in run["points"] if p["step"] == step]
        evals = [p["eval_return"] for p in at]
        trains = [p["train_return"] for p in at if p["train_return"] is not None]
        minutes = [p["time"] / 60 for p in at]
        row = f"| {step} | {len(at)} | {mean_sd(evals)} | {mean_sd(trains)} | {mean_sd(minutes)} |"
        row += "".join(f" {cells.get(step, '-')} |" for cells in beside.values())
        if released:
            row += f" {released[step]:g} |" if step in released else " - |"
        lines.append(row)
    if args.floor:
        lines += floor_verdicts(args, runs, beside[args.floor])
    lines += partial_row_notes(args, runs)
    return "\n".join(lines)


def sitting_lines(runs: list[dict[str, Any]]) -> list[str]:
    """Per seed, the sittings its run directory recorded (``sittings.jsonl``: every invocation,
    resumes and killed ones included); nothing when no run recorded any."""
    if not any(run.get("sittings") for run in runs):
        return []
    lines = []
    for run in runs:
        sittings = [Sitting(**s) for s in run.get("sittings", [])]
        text = "; ".join(describe(sittings)) if sittings else "none recorded"
        lines.append(f"Sittings of seed {run['seed']}: {text}.  ")
    lines[-1] = lines[-1].removesuffix("  ")
    return lines


def partial_row_notes(args: argparse.Namespace, runs: list[dict[str, Any]]) -> list[str]:
    """What makes a row partial: fewer seeds than the protocol asks, runs stopped before
    ``--steps`` (by their wall-clock budget or an interruption)."""
    notes = []
    want = args.want_seeds or len(args.seeds)
    if len(runs) < want:
        notes.append(f"**Partial row: {len(runs)} of the {want} seeds the protocol asks for.**")
    short = [r for r in runs if r["stopped_at"] is None or r["stopped_at"] < args.steps]
    if short:
        where = ", ".join(f"seed {r['seed']} at {r['stopped_at']}" for r in short)
        notes.append(
            f"**Partial row: stopped before the target {args.steps} env steps ({where})**; "
            "the same command with the same `--out` resumes them." + remaining_time(args, short)
        )
    return ["", *notes] if notes else []


def remaining_time(args: argparse.Namespace, runs: list[dict[str, Any]]) -> str:
    """At the pace of each run's last finished sitting (env steps per hour of wall clock, from
    ``sittings.jsonl``), how long the rest to ``--steps`` takes; empty without such a sitting."""
    estimates = []
    for run in runs:
        done = [s for s in run.get("sittings", []) if s.get("minutes") and s.get("to_env_steps")]
        if not done or run["stopped_at"] is None:
            continue
        last = done[-1]
        pace = (last["to_env_steps"] - last["from_env_steps"]) / (last["minutes"] / 60.0)
        if pace > 0:
            hours = (args.steps - run["stopped_at"]) / pace
            estimates.append(f"seed {run['seed']} {hours:.1f} h at {pace:,.0f} env steps/h")
    if not estimates:
        return ""
    return " At the pace of each run's last sitting the rest takes: " + ", ".join(estimates) + "."


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    for label in compared_labels(args):
        row_from_results(args.env, label)  # a missing row fails here, not after the training
    jobs = [(args, seed) for seed in args.seeds]
    if args.jobs > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            runs = list(pool.map(one_run, jobs))
    else:
        runs = [one_run(job) for job in jobs]
    command = "python benchmarks/learn.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    table = markdown(args, runs, command)
    print(table)
    if args.json is not None:
        report = {
            "label": args.label,
            "env": args.env,
            "configs": args.configs,
            "set": dict(args.set),
            "steps": args.steps,
            "minutes": args.minutes,
            "seeds": args.seeds,
            "runs": runs,
        }
        args.json.write_text(json.dumps(report, indent=2))
    if args.results:
        write_section(args.section or f"learn-{slug(args.env)}-{slug(args.label)}", table)
    return runs


if __name__ == "__main__":
    main()
