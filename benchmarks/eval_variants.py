"""Evaluation of trained runs under several settings side by side: the same checkpoints, the same
episodes (the same env seed per run), one setting changed per variant.

A learning row says *that* an eval return is low; this says *why* where the cause is in the acting,
not in what was learned: e.g. a planner horizon shorter than the paper's, or an eval policy without
the exploration noise the training episodes had. Every (run, variant) pair is one process with one
torch thread; within a run every variant meets the same episode starts (``--seed``), so the
differences between variants are paired.

    python benchmarks/eval_variants.py --runs runs/planet-seed0 runs/planet-seed1 \\
        --checkpoint 45000 --episodes 10 --variant h8: --variant h12:planet.horizon=12 \\
        --variant explore:mode=explore --results --section eval-variants-planet

A variant is ``NAME:KEY=VALUE,KEY=VALUE`` (dotted config keys, as ``rssm eval`` takes them;
``mode=explore`` picks the exploration policy); ``NAME:`` alone evaluates the run as trained.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from evaluations import (  # noqa: E402
    add_eval_arguments,
    rebuild_or_require,
    report_header,
    run_processes,
)
from results import captioned, mean_sd, publish  # noqa: E402


def parse_variant(text: str) -> tuple[str, dict[str, str], str]:
    """``NAME:KEY=VALUE,...`` as (name, overrides, mode); a clear error for a malformed one."""
    name, colon, rest = text.partition(":")
    if not colon or not name:
        raise ValueError(
            f"--variant {text!r}: write NAME:KEY=VALUE,KEY=VALUE (or NAME: for the run as trained)"
        )
    overrides: dict[str, str] = {}
    mode = "eval"
    for item in filter(None, rest.split(",")):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError(f"--variant {text!r}: {item!r} is not KEY=VALUE")
        if key == "mode":
            if value not in ("eval", "explore"):
                raise ValueError(f"--variant {text!r}: mode={value!r}; use eval or explore")
            mode = value
        else:
            overrides[key] = value
    return name, overrides, mode


def _job(
    run: str, checkpoint: str | None, overrides: dict[str, str], mode: str, episodes: int, seed: int
) -> dict[str, Any]:
    """One (run, variant): its episodes' returns, the checkpoint's step and the seconds taken."""
    torch.set_num_threads(1)
    from rssm.run.evaluate import evaluate_run
    from rssm.run.runs import load_run

    overrides = {**overrides, "run.threads": "1"}
    loaded = load_run(run, "cpu", overrides=overrides, checkpoint=checkpoint)
    start = time.perf_counter()
    returns = evaluate_run(loaded, episodes, seed=seed, mode=mode)  # type: ignore[arg-type]
    return {"returns": returns, "step": loaded.step, "seconds": time.perf_counter() - start}


def table(
    runs: list[str],
    variants: list[tuple[str, dict[str, str], str]],
    results: dict[tuple[int, int], dict[str, Any]],
) -> str:
    """Per variant: each run's mean, the mean over runs ± sd over runs, all episodes' mean ± sd,
    and the paired difference to the first variant (same run, same episode index)."""
    head = [
        "variant",
        *[f"run {i}" for i in range(len(runs))],
        "mean ± sd over runs",
        "episodes: mean ± sd",
        f"minus {variants[0][0]}: mean ± sd",
        "s/episode",
    ]
    rows = [head]
    for v, (name, _, _) in enumerate(variants):
        per_run = [statistics.fmean(results[r, v]["returns"]) for r in range(len(runs))]
        episodes = [x for r in range(len(runs)) for x in results[r, v]["returns"]]
        paired = [
            a - b
            for r in range(len(runs))
            for a, b in zip(results[r, v]["returns"], results[r, 0]["returns"], strict=True)
        ]
        seconds = sum(results[r, v]["seconds"] for r in range(len(runs))) / len(episodes)
        rows.append(
            [
                name,
                *[f"{m:.1f}" for m in per_run],
                mean_sd(per_run),
                mean_sd(episodes),
                "-" if v == 0 else mean_sd(paired),
                f"{seconds:.1f}",
            ]
        )
    return captioned("eval return per variant (runs are the columns run 0..)", rows)


def describe(report: dict[str, Any]) -> str:
    """The text of a report (a fresh evaluation's, or one read back with ``--report``)."""
    runs = report["runs"]
    variants = [(v["name"], v["overrides"], v["mode"]) for v in report["variants"]]
    index = {name: v for v, (name, _, _) in enumerate(variants)}
    results = {(runs.index(r["run"]), index[r["variant"]]): r for r in report["results"]}
    steps = sorted({result["step"] for result in results.values()})
    lines = [
        f"runs: {', '.join(runs)}",
        f"checkpoint env step(s): {', '.join(map(str, steps))}; {report['episodes']} episodes per "
        f"run and variant from env seed {report['seed']} (the same episode starts in every "
        "variant)",
        "variants: "
        + "; ".join(
            f"{name} = {', '.join(f'{k}={v}' for k, v in o.items()) or 'as trained'}"
            + (f", {mode} policy" if mode != "eval" else "")
            for name, o, mode in variants
        ),
    ]
    if "minutes" in report:
        lines.append(
            f"{len(results)} processes, {report['jobs']} side by side, 1 torch thread each, "
            f"{report['minutes']:.1f} min in all ({report['machine']})"
        )
    lines += ["", table(runs, variants, results), "", "returns per episode (same starts per run):"]
    for r in range(len(runs)):
        for v, (name, _, _) in enumerate(variants):
            returns = " ".join(f"{x:.0f}" for x in results[r, v]["returns"])
            lines.append(f"  run {r} {name}: {returns}")
    if report.get("note"):
        lines = [report["note"], "", *lines]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_eval_arguments(parser, section="eval-variants", per="run and variant")
    parser.add_argument(
        "--variant", action="append", help="NAME:KEY=VALUE,... (repeat; the first is the baseline)"
    )
    args = parser.parse_args(argv)
    title = f"## Evaluation variants ({args.section})"
    rebuilt = rebuild_or_require(
        parser, args, describe, script="eval_variants.py", title=title, argv=argv,
        inputs=("runs", "variant"),
    )  # fmt: skip
    if rebuilt is not None:
        return rebuilt
    if args.episodes < 2:
        parser.error(f"--episodes={args.episodes}: at least 2, for a spread over episodes")
    try:
        variants = [parse_variant(v) for v in args.variant]
    except ValueError as error:
        parser.error(str(error))
    names = [name for name, _, _ in variants]
    if len(set(names)) != len(names):
        parser.error(f"--variant names repeat: {', '.join(names)}")
    jobs = {
        (r, v): (run, args.checkpoint, overrides, mode, args.episodes, args.seed)
        for r, run in enumerate(args.runs)
        for v, (_, overrides, mode) in enumerate(variants)
    }
    start = time.time()
    results = run_processes(_job, jobs, args.jobs)
    report = {
        "runs": args.runs,
        "variants": [{"name": n, "overrides": o, "mode": m} for n, o, m in variants],
        **report_header(args, "eval_variants.py", argv, start),
        "results": [
            {"run": args.runs[r], "variant": variants[v][0], **results[r, v]} for r, v in results
        ],
    }
    publish(report, describe(report), script="eval_variants.py", section=args.section,
            title=title, argv=argv, json_path=args.json, results=args.results)  # fmt: skip
    return report


if __name__ == "__main__":
    main()
