"""What the scripts that evaluate trained runs share (``eval_variants.py``,
``plan_foresight.py``): their options, the checks made before any process starts, the spawned
processes, the report's common fields and the ``--report`` rebuild."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
from results import command_line, publish
from throughput import cpu_name


def add_eval_arguments(parser: argparse.ArgumentParser, *, section: str, per: str) -> None:
    """The options every evaluation of trained runs here takes: the runs, the checkpoint, the
    episodes and their env seed, the processes, and where the report goes (or ``--report``)."""
    parser.add_argument("--runs", nargs="+", help="run directories of rssm train")
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="the checkpoint step (or file) of every run; default: the newest",
    )
    parser.add_argument("--episodes", type=int, default=10, help=f"episodes per {per}")
    parser.add_argument("--seed", type=int, default=10_000, help="env seed of the episodes")
    parser.add_argument("--jobs", type=int, default=2, help="processes side by side")
    parser.add_argument("--note", default="", help="a sentence for the results section")
    parser.add_argument("--section", default=section, help="docs/results.md section")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--results", action="store_true", help="write docs/results.md section")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="JSON",
        help="evaluate nothing: rebuild the tables from the --json an evaluation wrote",
    )


def republish(
    args: argparse.Namespace, describe: Any, *, script: str, title: str, argv: list[str] | None
) -> dict[str, Any]:
    """``--report``: the tables of a finished evaluation from the JSON it wrote (its command
    quoted), printed and, with ``--results``, written to docs/results.md."""
    report = json.loads(args.report.read_text())
    if args.note:
        report["note"] = args.note
    command = report.get("command") or "its command is not recorded in that file"
    text = describe(report) + (
        f"\n\nRebuilt with --report from {args.report}, the JSON that the evaluation wrote "
        f"({command})."
    )
    publish(report, text, script=script, section=args.section, title=title, argv=argv,
            json_path=None, results=args.results)  # fmt: skip
    return report


def rebuild_or_require(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    describe: Any,
    *,
    script: str,
    title: str,
    argv: list[str] | None,
    inputs: tuple[str, ...] = ("runs",),
) -> dict[str, Any] | None:
    """With ``--report``: the rebuilt report (:func:`republish`), refusing the options of a fresh
    evaluation (``inputs``). Without: None, once every one of ``inputs`` is given and the runs
    hold the checkpoint asked for (:func:`check_runs`)."""
    flags = " and ".join(f"--{name}" for name in inputs)
    if args.report is not None:
        if any(getattr(args, name) for name in inputs):
            parser.error(f"--report rebuilds a finished evaluation's tables; drop {flags}")
        return republish(args, describe, script=script, title=title, argv=argv)
    if not all(getattr(args, name) for name in inputs):
        parser.error(f"{flags} {'is' if len(inputs) == 1 else 'are'} required (or --report JSON)")
    problem = check_runs(args.runs, args.checkpoint)
    if problem:
        parser.error(problem)
    return None


def run_processes(function: Any, jobs: dict[Any, tuple], workers: int) -> dict[Any, Any]:
    """``function(*job)`` for every job, in ``workers`` spawned processes; results by key."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {key: pool.submit(function, *job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def report_header(
    args: argparse.Namespace, script: str, argv: list[str] | None, start: float
) -> dict[str, Any]:
    """The fields every evaluation report records: its episodes, seed and processes, the
    minutes it took since ``start``, the machine and the command."""
    return {
        "episodes": args.episodes,
        "seed": args.seed,
        "jobs": args.jobs,
        "minutes": (time.time() - start) / 60,
        "machine": f"{cpu_name()}, torch {torch.__version__}",
        "command": command_line(script, argv),
        "note": args.note,
    }


def check_runs(runs: list[str], checkpoint: str | None) -> str | None:
    """Why ``runs`` cannot be evaluated at ``checkpoint`` (a run directory without
    ``config.yaml``, a checkpoint a run does not keep), or None; checked before any process
    starts, so that the answer is one line, not a worker's traceback."""
    from rssm.run.checkpoint import CheckpointNotFoundError
    from rssm.run.runs import find_checkpoint

    for run in runs:
        if not (Path(run) / "config.yaml").is_file():
            return f"--runs: {run} holds no config.yaml (not a run directory of rssm train)"
        if checkpoint is not None:
            try:
                find_checkpoint(run, checkpoint)
            except CheckpointNotFoundError as error:
                return f"--checkpoint: {error}"
    return None
