"""Does a world model carry over to episodes it was not trained on? Each run's open-loop errors on
its own replay against held-out episodes.

For every run it scores the model with :func:`rssm.run.report.world_model_report` (what ``rssm
report`` runs) on

- ``replay``: the run's saved training episodes, the data the model fits;
- ``eval``: ``--episodes`` new episodes of the run's eval policy, from env starts the training
  never saw (``rssm report --source eval``): the states the agent meets when it is evaluated;
- ``cross`` (with ``--cross``): the next run's replay (the last run takes the first's): the same
  task, another agent's trajectories and starts.

and prints, per run and source, the mean open-loop error over horizons 1..H of the reward and
of every decoded key, its ratio to the same run's replay error and its ratio to the error of
copying the last observed value on the same windows. Reading it: ratios to the replay near 1
mean the model predicts new episodes as well as its data; a reward ratio of several means the
model fits its own episodes and misreads new states, so a planner or an actor optimises rewards
that are not there (docs/not_learning.md, section 2); a ratio to copy-last above 1 means that
on those episodes repeating the last observation predicts better than the model.

    python benchmarks/held_out.py --runs runs/planet-seed0 runs/planet-seed1 runs/planet-seed2 \\
        --episodes 10 --cross --json held_out.json --results
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluations import (  # noqa: E402
    add_eval_arguments,
    rebuild_or_require,
    report_header,
    run_processes,
)
from results import captioned, mean_sd, publish  # noqa: E402

SOURCES = ("replay", "eval", "cross")


def _job(
    run: str,
    checkpoint: str | None,
    source: str,
    episodes: int | None,
    seed: int,
    horizon: int,
    context: int,
    stride: int,
    samples: int | None,
) -> dict[str, Any]:
    """One run on one source: world_model_report's data (without its file paths) and seconds."""
    import torch

    torch.set_num_threads(1)
    from rssm.run.report import world_model_report

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        report = world_model_report(
            run, out, horizon=horizon, context=context, episodes=episodes, device="cpu",
            stride=stride, seed=seed, checkpoint=checkpoint, source=source, samples=samples,
        )  # fmt: skip
    report = {key: value for key, value in report.items() if key not in ("json", "png")}
    return {**report, "seconds": time.perf_counter() - start}


def mean_error(entry: dict[str, Any]) -> float:
    """The model's open-loop error of one key averaged over horizons 1..H."""
    return statistics.fmean(entry["model"])


def _rollout(result: dict[str, Any]) -> str:
    samples = result.get("samples", 0)  # reports written before the option: the mode rollout
    return f"mean of {samples} sampled rollouts" if samples else "the prior's mode rollout"


def describe(report: dict[str, Any]) -> str:
    """The text of a report (a fresh run's, or one read back with ``--report``)."""
    results = report["results"]
    keys = sorted({k for r in results for k in r["keys"]}, key=lambda k: (k != "reward", k))
    steps = sorted({r["step"] for r in results})
    first = results[0]
    lines = [
        f"runs: {', '.join(report['runs'])}",
        f"checkpoint env step(s): {', '.join(map(str, steps))}; open-loop over horizons 1.."
        f"{first['horizon']} after {first['context']} observed steps ({_rollout(first)}), "
        f"windows {first['stride']} step(s) apart; eval: {report['episodes']} new episodes per "
        f"run of its eval policy, env seed config.seed + 20000 + {report['seed']}; cross: the "
        "next run's replay",
    ]
    if "minutes" in report:
        lines.append(
            f"{len(results)} processes, {report['jobs']} side by side, 1 torch thread each, "
            f"{report['minutes']:.1f} min in all ({report['machine']})"
        )
    metrics = {k: next(r["keys"][k]["metric"] for r in results if k in r["keys"]) for k in keys}
    lines.append("errors: " + "; ".join(f"{k}: {m}" for k, m in metrics.items()))
    header = ["run/source", "episodes", "windows"]
    for key in keys:
        header += [key, f"{key} ÷ replay", f"{key} ÷ copy-last"]
    rows = [header]
    ratios: dict[str, dict[str, list[float]]] = {s: {k: [] for k in keys} for s in SOURCES}
    copies: dict[str, dict[str, list[float]]] = {s: {k: [] for k in keys} for s in SOURCES}
    replay = {r["run_index"]: r for r in results if r["name"] == "replay"}
    for r in results:
        row = [f"{r['run_index']}/{r['name']}", str(r["episodes"]), str(r["windows"])]
        base = replay.get(r["run_index"])
        for key in keys:
            if key not in r["keys"]:
                row += ["-", "-", "-"]
                continue
            error = mean_error(r["keys"][key])
            ratio = error / mean_error(base["keys"][key]) if base else float("nan")
            ratios[r["name"]][key].append(ratio)
            copy = error / statistics.fmean(r["keys"][key]["copy_last"])
            copies[r["name"]][key].append(copy)
            row += [f"{error:.4g}", f"{ratio:.2f}", f"{copy:.2f}"]
        rows.append(row)
    lines += ["", captioned("mean open-loop error over the horizons, per run and source", rows)]
    summary = [["source", "runs"]]
    for key in keys:
        summary[0] += [f"{key} ÷ replay", f"{key} ÷ copy-last"]
    for name in SOURCES:
        if ratios[name][keys[0]]:
            summary.append([name, str(len(ratios[name][keys[0]]))])
            for key in keys:
                replay_ratio = mean_sd(ratios[name][key], digits=2) if name != "replay" else "1"
                summary[-1] += [replay_ratio, mean_sd(copies[name][key], digits=2)]
    lines += ["", captioned("ratios (mean ± sd over runs)", summary)]
    if report.get("note"):
        lines = [report["note"], "", *lines]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_eval_arguments(parser, section="held-out", per="run (the eval source)")
    parser.set_defaults(seed=0)
    parser.add_argument("--cross", action="store_true", help="also score the next run's replay")
    parser.add_argument("--horizon", type=int, default=15, help="predicted steps")
    parser.add_argument("--context", type=int, default=5, help="observed steps before predicting")
    parser.add_argument("--stride", type=int, default=1, help="steps between window starts")
    parser.add_argument(
        "--samples", type=int, default=None,
        help="0: the prior's mode rollout; N: mean error of N sampled rollouts (default: 0 for "
        "Gaussian latents, 4 for categorical, as rssm report)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    title = f"## World model on held-out episodes ({args.section})"
    rebuilt = rebuild_or_require(
        parser, args, describe, script="held_out.py", title=title, argv=argv
    )
    if rebuilt is not None:
        return rebuilt
    if min(args.episodes, args.jobs, args.horizon, args.context, args.stride) < 1:
        parser.error("--episodes, --jobs, --horizon, --context and --stride must be at least 1")
    if args.cross and len(args.runs) < 2:
        parser.error("--cross scores each run's model on another run's replay: give two --runs")
    start = time.time()
    jobs = {}
    for r, run in enumerate(args.runs):
        common = (args.seed, args.horizon, args.context, args.stride, args.samples)
        jobs[r, "replay"] = (run, args.checkpoint, "replay", None, *common)
        jobs[r, "eval"] = (run, args.checkpoint, "eval", args.episodes, *common)
        if args.cross:
            other = str(Path(args.runs[(r + 1) % len(args.runs)]) / "replay")
            jobs[r, "cross"] = (run, args.checkpoint, other, None, *common)
    done = run_processes(_job, jobs, args.jobs)
    report = {
        **report_header(args, "held_out.py", argv, start),
        "runs": list(args.runs),
        "results": [
            {"run_index": r, "name": name, **done[r, name]} for (r, name) in sorted(
                jobs, key=lambda job: (job[0], SOURCES.index(job[1])))
        ],
    }  # fmt: skip
    publish(report, describe(report), script="held_out.py", section=args.section,
            title=title, argv=argv, json_path=args.json, results=args.results)  # fmt: skip
    return report


if __name__ == "__main__":
    main()
