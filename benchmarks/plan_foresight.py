"""What a planner expected against what it got: PlaNet's predicted returns along its own episodes.

An eval return says *that* an episode failed; this says where the world model went wrong on it.
At every step of an evaluation episode (the very episodes ``rssm eval --seed S`` runs: the same
starts, the same actions, the same returns) it records

- the reward the env gave on arriving at the observation, and the reward head's prediction on the
  posterior of that observation (does the model *see* the reward when it is there?);
- the planner's predicted return of the plan it acts on (the sum of the reward head over the
  plan's ``H`` imagined steps, averaged over ``--samples`` latent samples) and the return the
  next ``H`` steps actually earned (does the model *foresee* it?).

Per episode it prints the return, the reward head's sum over the episode's observations (its
reading of that return), and the mean predicted and achieved ``H``-step returns over the steps
that have ``H`` steps ahead, their mean difference and their correlation; then the same means
over episodes grouped by return. Reading it: a failed episode whose predicted ``H``-step returns
stay near zero is one where the model sees no reward within the planner's reach (the search, its
horizon or the data are short); one whose predictions run well above what was achieved is one
where the model believes in rewards its actions do not bring (a model error the planner
exploits); a reward-head sum well below the return means the reward head misses real reward, one
well above it that the model takes states without reward for rewarding ones.

    python benchmarks/plan_foresight.py --runs runs/planet-seed0 runs/planet-seed1 \\
        --checkpoint 45000 --episodes 10 --json foresight.json --results

The diagnostics run under forked random generators, so they change nothing the agent draws: the
returns equal ``rssm eval``'s for the same run, checkpoint, seed and episode count.
"""

from __future__ import annotations

import argparse
import math
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


class _Recorder:
    """Stands in for a planner agent in :func:`rssm.run.evaluate.evaluate_run`: acts exactly as
    the agent does and, under forked generators, records per step the reward head's mode on the
    posterior and the predicted return of the plan acted on; :meth:`step` records the env's
    rewards. One env, as ``evaluate_run`` steps."""

    def __init__(self, agent: Any, samples: int) -> None:
        if getattr(agent.capabilities, "imagination", None) != "planner":
            raise ValueError(
                f"plan_foresight needs a planner agent (PlaNet, --configs planet); this run's "
                f"agent is {type(agent).__name__}"
            )
        self.agent, self.samples = agent, samples
        self.episodes: list[dict[str, list[float]]] = []

    def policy(self, carry: Any, obs: Any, mode: str) -> Any:
        carry, action = self.agent.policy(carry, obs, mode)
        if bool(obs["is_first"][0]):
            self.episodes.append({"reward": [], "seen": [], "planned": []})
        episode = self.episodes[-1]
        agent, state, plan = self.agent, carry.state, carry.plan
        last = bool(obs["is_last"][0])  # the driver asks for an action it will not take
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            generator = agent.generator.get_state()
            episode["seen"].append(float(agent.model.reward(state.feat()).mode()[0]))
            if not last:
                actions = plan[:, None].expand(plan.shape[0], self.samples, *plan.shape[1:])
                planned = agent.planning_objective(state)(actions).mean(1)
                episode["planned"].append(float(planned[0]))
            agent.generator.set_state(generator)
        return carry, action

    def step(self, transition: dict[str, Any], worker: int) -> None:
        """The driver's step callback: the reward of every transition after a reset row."""
        if not transition["is_first"]:
            self.episodes[-1]["reward"].append(float(transition["reward"]))


def _job(run: str, checkpoint: str | None, episodes: int, seed: int, samples: int) -> dict:
    """One run: every episode's per-step records, the checkpoint's step and the seconds taken."""
    torch.set_num_threads(1)
    from rssm.run.evaluate import evaluate_run
    from rssm.run.runs import load_run

    loaded = load_run(run, "cpu", overrides={"run.threads": "1"}, checkpoint=checkpoint)
    recorder = _Recorder(loaded.agent, samples)
    start = time.perf_counter()
    returns = evaluate_run(
        loaded._replace(agent=recorder),  # type: ignore[arg-type]
        episodes,
        seed=seed,
        on_step=recorder.step,
    )
    records = recorder.episodes[:episodes]
    for record in records:
        # one plan per action taken; one posterior per observation (the last one's if the
        # driver asked for an action there)
        length = len(record["reward"])
        assert len(record["planned"]) == length and len(record["seen"]) in (length, length + 1)
    return {
        "returns": returns,
        "horizon": loaded.config.planet.horizon,
        "step": loaded.step,
        "seconds": time.perf_counter() - start,
        "episodes": records,
    }


def episode_summary(record: dict[str, list[float]], horizon: int) -> dict[str, float]:
    """One episode's sums and means: ``reward[t]`` is earned by the action of step ``t``,
    ``seen[t]`` predicts the reward of arriving at observation ``t`` (``seen[0]``, the reset's,
    has none to predict), ``planned[t]`` the next ``horizon`` rewards, compared with
    ``achieved[t] = sum(reward[t:t + horizon])`` over the steps that have ``horizon`` steps
    ahead."""
    reward, seen, planned = record["reward"], record["seen"], record["planned"]
    steps = len(reward) - horizon + 1
    achieved = [sum(reward[t : t + horizon]) for t in range(max(steps, 0))]
    planned = planned[: len(achieved)]
    seen_count = min(len(seen) - 1, len(reward))  # seen[t + 1] predicts reward[t]
    return {
        "return": sum(reward),
        "seen_actual": sum(reward[:seen_count]),
        "seen_predicted": sum(seen[1 : seen_count + 1]),
        "planned": statistics.fmean(planned) if planned else math.nan,
        "achieved": statistics.fmean(achieved) if achieved else math.nan,
        "difference": statistics.fmean(p - a for p, a in zip(planned, achieved, strict=True))
        if achieved
        else math.nan,
        "correlation": _correlation(planned, achieved),
    }


def _correlation(x: list[float], y: list[float]) -> float:
    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return statistics.correlation(x, y)


def describe(report: dict[str, Any]) -> str:
    """The text of a report (a fresh evaluation's, or one read back with ``--report``)."""
    results = report["results"]
    horizons = sorted({r["horizon"] for r in results})
    lines = [
        f"runs: {', '.join(r['run'] for r in results)}",
        f"checkpoint env step(s): {', '.join(str(s) for s in sorted({r['step'] for r in results}))}"
        f"; {report['episodes']} episodes per run from env seed {report['seed']} (rssm eval "
        f"--seed {report['seed']}'s episodes); planner horizon {', '.join(map(str, horizons))} "
        f"steps; predicted returns averaged over {report['samples']} latent samples",
    ]
    if "minutes" in report:
        lines.append(
            f"{len(results)} processes, {report['jobs']} side by side, 1 torch thread each, "
            f"{report['minutes']:.1f} min in all ({report['machine']})"
        )
    rows = [
        ["run/episode", "return", "seen predicted", "H-return predicted", "H-return achieved",
         "predicted - achieved", "correlation"],
    ]  # fmt: skip
    summaries = []
    for r, result in enumerate(results):
        for e, record in enumerate(result["episodes"]):
            s = episode_summary(record, result["horizon"])
            summaries.append(s)
            rows.append(
                [f"{r}/{e}", f"{s['return']:.0f}", f"{s['seen_predicted']:.1f}",
                 f"{s['planned']:.2f}", f"{s['achieved']:.2f}", f"{s['difference']:+.2f}",
                 f"{s['correlation']:.2f}"]
            )  # fmt: skip
    lines += [
        "",
        captioned("per episode (H-returns: means over the steps with H steps ahead)", rows),
    ]
    lines += ["", _grouped(summaries)]
    if report.get("note"):
        lines = [report["note"], "", *lines]
    return "\n".join(lines)


def _grouped(summaries: list[dict[str, float]]) -> str:
    """Means over episodes, split at a return of 500 (half an episode's reward on reacher)."""
    rows = [["episodes", "count", "return", "seen predicted", "H-return predicted",
             "H-return achieved"]]  # fmt: skip
    for name, keep in (
        ("return >= 500", lambda s: s["return"] >= 500),
        ("100 <= return < 500", lambda s: 100 <= s["return"] < 500),
        ("return < 100", lambda s: s["return"] < 100),
    ):
        group = [s for s in summaries if keep(s)]
        rows.append(
            [name, str(len(group))]
            + [mean_sd([s[key] for s in group])
               for key in ("return", "seen_predicted", "planned", "achieved")]
        )  # fmt: skip
    return captioned("by outcome (mean ± sd over episodes)", rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_eval_arguments(parser, section="plan-foresight", per="run")
    parser.add_argument("--samples", type=int, default=16, help="latent samples per prediction")
    args = parser.parse_args(argv)
    title = f"## Planner foresight ({args.section})"
    rebuilt = rebuild_or_require(
        parser, args, describe, script="plan_foresight.py", title=title, argv=argv
    )
    if rebuilt is not None:
        return rebuilt
    if args.episodes < 1 or args.samples < 1 or args.jobs < 1:
        parser.error("--episodes, --samples and --jobs must be at least 1")
    start = time.time()
    jobs = {
        r: (run, args.checkpoint, args.episodes, args.seed, args.samples)
        for r, run in enumerate(args.runs)
    }
    results = run_processes(_job, jobs, args.jobs)
    report = {
        **report_header(args, "plan_foresight.py", argv, start),
        "samples": args.samples,
        "results": [{"run": run, **results[r]} for r, run in enumerate(args.runs)],
    }
    publish(report, describe(report), script="plan_foresight.py", section=args.section,
            title=title, argv=argv, json_path=args.json, results=args.results)  # fmt: skip
    return report


if __name__ == "__main__":
    main()
