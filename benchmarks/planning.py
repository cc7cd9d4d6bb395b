"""Seconds per planned action of CEM planning in the PlaNet world model: the library vs a reference.

Run from the repository root::

    python benchmarks/planning.py                            # PlaNet setting on the CPU
    python benchmarks/planning.py --threads 1 --repeats 3 --profile 15
    python benchmarks/planning.py --device cuda --json bench_planning.json --results

The setting is PlaNet's (Hafner et al. 2019, §3 "Planning algorithm"): 1000 candidates, top 100
refit, 10 iterations, horizon 12, in the ``world_model_config("planet")`` model (Gaussian RSSM,
deter 200, stoch 30) built for 64x64x3 images and a 6-dim action, in eval mode without autograd.
One planned action is one planning call for one environment from its current posterior.

Planners run in the same process on the same weights:

- ``library``: the PlaNet agent's planner entry point, :meth:`rssm.agents.PlanetAgent.plan`
  (:func:`rssm.behavior.cem` over its objective, :func:`rssm.agents.planet.imagined_return`),
  on the same weights: all K candidates rolled out at once through
  :meth:`RSSM.imagine`, the reward head's mode summed over imagined steps 1..H (one step at a
  time, so that its [K, 300] intermediates stay in the cache);
- ``library, compiled``: the same on a copy of the model compiled as ``run.compile`` does
  (``PlanetAgent(compile=True)``: the fused RSSM prior step, the reward MLP);
  ``--no-compile`` leaves it out (compiling takes a minute or so on 2 CPU cores);
- ``reference``: what a typical implementation looks like, written here: per iteration a
  ``torch.distributions.Normal`` sample, then a plain Python loop of ``rssm.img_step`` and the
  reward head per step, ``argsort`` for the elites and their mean and std;
- ``Kaixhin/PlaNet`` (with ``--kaixhin PATH``, a checkout fetched for comparison): that
  project's TorchScript ``MPCPlanner`` over its own transition and reward models built at the
  same sizes (its own random weights: the shapes, and so the FLOPs, match).

Each is warmed up once, then timed ``--repeats`` times, interleaved (library, reference, ...,
library, ...) so that a change of machine load hits all alike; the median is reported. With
``malloc keep`` (the default) glibc keeps freed memory as the ``rssm`` command line does, so
large intermediates are not page-faulted in again at every call. FLOPs of a
planning call are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls only: the
imagination and the reward head dominate; elementwise ops, sampling and sorting are not counted).
The achieved rate is stated as a fraction of the fp32 matmul throughput measured in the same run
(before and after, the larger of the two), so numbers from a loaded machine stay comparable.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

# Run from a checkout without installing: the repository root goes before site-packages.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from results import align, publish  # noqa: E402
from throughput import count_flops, cpu_name, matmul_flops, sync, timed  # noqa: E402

from rssm.agents import PlanetAgent, PlanetConfig  # noqa: E402
from rssm.models import WorldModel, world_model_config  # noqa: E402
from rssm.run.malloc import keep_freed_memory  # noqa: E402
from rssm.types import RSSMState  # noqa: E402

Device = Literal["cpu", "cuda"]
Planner = Callable[[RSSMState, Tensor, Tensor], Tensor]
IMAGE_SHAPE = (64, 64, 3)
ACTION_DIM = 6
LOW, HIGH = -1.0, 1.0


def build(device: torch.device) -> tuple[WorldModel, RSSMState]:
    """The PlaNet world model (eval mode) on ``device`` and a posterior [1] to plan from.

    The posterior is one filtering step from the initial state on a random image.
    """
    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)})
    model = WorldModel(obs_space, ACTION_DIM, world_model_config("planet")).to(device).eval()
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, *IMAGE_SHAPE), generator=gen, dtype=torch.uint8)
    with torch.no_grad():
        embed = model.encoder.encode(model.encoder.preprocess({"image": image.to(device)}))
        state = model.rssm.initial(1)
        prev_action = torch.zeros(1, ACTION_DIM, device=device)
        is_first = torch.ones(1, dtype=torch.bool, device=device)
        posterior, _ = model.rssm.obs_step(state, prev_action, embed, is_first)
    return model, posterior


def library_planner(model: WorldModel, args: argparse.Namespace, compile: bool = False) -> Planner:
    """``plan(state [1], mean [H, A], std [H, A]) -> mean [H, A]``: :meth:`PlanetAgent.plan` (CEM
    over :func:`rssm.agents.planet.imagined_return`) of an agent holding ``model``'s weights;
    ``compile``: its building blocks compiled as ``run.compile`` does. The initial std is the
    config's (PlaNet: 1, as the other planners' ``std``)."""
    config = PlanetConfig(
        horizon=args.horizon, candidates=args.candidates, elites=args.elites,
        iterations=args.iterations, init_std=1.0,
    )  # fmt: skip
    device = next(model.parameters()).device
    agent = PlanetAgent(
        gym.spaces.Dict({"image": gym.spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)}),
        ACTION_DIM, world_model_config("planet"), config, device=device, compile=compile,
    )  # fmt: skip
    agent.model.load_state_dict(model.state_dict())
    agent.model.eval()

    def plan(state: RSSMState, mean: Tensor, std: Tensor) -> Tensor:
        return agent.plan(state, mean[None])[0]

    return plan


def reference_planner(model: WorldModel, args: argparse.Namespace) -> Planner:
    """The same CEM written plainly: Normal sampling, a step loop, argsort elites."""
    rssm, reward = model.rssm, model.reward
    k, e = args.candidates, args.elites

    def plan(state: RSSMState, mean: Tensor, std: Tensor) -> Tensor:
        start = state.map(lambda x: x.expand(k, -1))  # [K]
        for _ in range(args.iterations):
            dist = torch.distributions.Normal(mean, std, validate_args=False)  # std may hit 0
            actions = dist.sample((k,)).clamp(LOW, HIGH)  # [K, H, A]
            returns = torch.zeros(k, device=mean.device)
            s = start
            for t in range(args.horizon):
                s = rssm.img_step(s, actions[:, t])
                returns = returns + reward(s.feat()).mode()
            elite = actions[returns.argsort(descending=True)[:e]]  # [E, H, A]
            mean, std = elite.mean(0), elite.std(0, unbiased=False)
        return mean

    return plan


def kaixhin_planner(model: WorldModel, args: argparse.Namespace) -> Planner:
    """Kaixhin/PlaNet's ``MPCPlanner`` (TorchScript), imported from the checkout at
    ``--kaixhin`` (fetched for comparison, never vendored), over its own transition and reward
    models built at this model's sizes (deterministic and stochastic state, hidden units, reward
    MLP): the same matmul shapes, so the timing compares the planners, not the models. It returns
    the first action only."""
    sys.path.insert(0, str(args.kaixhin))
    try:
        models = importlib.import_module("models")
        planner = importlib.import_module("planner")
    finally:
        sys.path.remove(str(args.kaixhin))
    config = world_model_config("planet")
    deter, stoch = config.rssm.deter, config.rssm.stoch
    device = next(model.parameters()).device
    transition = models.TransitionModel(deter, stoch, ACTION_DIM, config.rssm.units, 1024)
    reward = models.RewardModel(deter, stoch, config.reward_head.units)
    mpc = planner.MPCPlanner(
        ACTION_DIM, args.horizon, args.iterations, args.candidates, args.elites,
        transition.to(device).eval(), reward.to(device).eval(), LOW, HIGH,
    )  # fmt: skip

    def plan(state: RSSMState, mean: Tensor, std: Tensor) -> Tensor:
        return mpc(state.deter, state.stoch)[0]  # [A]: the first action of the plan

    return plan


def make_planners(model: WorldModel, args: argparse.Namespace) -> dict[str, Planner]:
    """The planners, each wrapped in ``torch.no_grad``."""
    planners = {"library": library_planner(model, args)}
    if args.compile:
        planners["library, compiled"] = library_planner(model, args, compile=True)
    planners["reference"] = reference_planner(model, args)
    if args.kaixhin is not None:
        planners["Kaixhin/PlaNet"] = kaixhin_planner(model, args)

    def no_grad(fn: Planner) -> Planner:
        def run(state: RSSMState, mean: Tensor, std: Tensor) -> Tensor:
            with torch.no_grad():
                return fn(state, mean, std)

        return run

    return {name: no_grad(fn) for name, fn in planners.items()}


def profile(fn: Callable[[], Any], device: torch.device, rows: int) -> str:
    """``torch.profiler`` table of one call, sorted by self time (CPU, or CUDA on a GPU)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with torch_profile(activities=activities, record_shapes=True) as prof:
        fn()
        sync(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=rows)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Times, FLOPs and optional profiles of both planners on one model."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model, posterior = build(device)
    mean = torch.zeros(args.horizon, ACTION_DIM, device=device)
    std = torch.ones(args.horizon, ACTION_DIM, device=device)
    planners = make_planners(model, args)
    calls = {name: (lambda fn=fn: fn(posterior, mean, std)) for name, fn in planners.items()}
    results: dict[str, dict[str, Any]] = {}
    for name, call in calls.items():
        first = timed(call, device)  # warm-up (and compilation)
        plan = call()
        expected = (ACTION_DIM,) if name == "Kaixhin/PlaNet" else (args.horizon, ACTION_DIM)
        assert plan.shape == expected, f"{name}: plan {tuple(plan.shape)}"
        assert bool(((plan >= LOW) & (plan <= HIGH)).all()), f"{name}: plan outside bounds"
        # A compiled call does the eager library's matmuls; the counter sees only eager ops.
        flops = results["library"]["flops"] if "compiled" in name else count_flops(call)
        results[name] = {"planner": name, "seconds": [], "flops": flops, "first_call_s": first}
    for _ in range(args.repeats):  # interleaved, so load changes hit both planners alike
        for name, call in calls.items():
            results[name]["seconds"].append(timed(call, device))
    for r in results.values():
        r["median_s"] = statistics.median(r["seconds"])
        r["min_s"] = min(r["seconds"])
    if args.profile:
        for name, call in calls.items():
            print(f"--- torch.profiler: one planning call of {name} ---")
            print(profile(call, device, args.profile), flush=True)
    params = sum(p.numel() for p in model.parameters())
    return {"params": params, "planners": list(results.values())}


def table(report: dict[str, Any]) -> str:
    """Plain-text report: the setting and machine, then one aligned row per planner."""
    peak = report["matmul_flops"]
    lines = [
        f"CEM planning, PlaNet world model (deter 200, stoch 30, {report['params'] / 1e6:.2f}M "
        f"params), action_dim {ACTION_DIM}: {report['candidates']} candidates, top "
        f"{report['elites']}, {report['iterations']} iterations, horizon {report['horizon']}",
        f"device {report['device']} ({report['cpu']}), torch {report['torch']}, "
        f"{report['threads']} threads, {report['repeats']} timed calls each after 1 warm-up, "
        f"1-min load {report['loadavg_start']:.1f} at start, {report['loadavg_end']:.1f} at end",
        f"fp32 matmul: {report['matmul_flops_start'] / 1e9:.1f} GFLOP/s at start, "
        f"{report['matmul_flops_end'] / 1e9:.1f} at end; using {peak / 1e9:.1f}",
        "s/action = seconds per planning call (one planned action); FLOPs: FlopCounterMode over",
        "one call (matmuls); % peak = (FLOPs / median s) / fp32 matmul throughput;",
        f"speed-up = reference median s / this planner's median s; malloc: {report['malloc']}",
        "1st s = the warm-up call (with compilation for the compiled planner); compiled FLOPs =",
        "the eager library's (the same ops, fused)",
    ]
    if report["loadavg_start"] >= 0.5 * (report["cpu_count"] or 1) and report["device"] == "cpu":
        lines.append(
            f"WARNING: the machine was busy (load {report['loadavg_start']:.1f} on "
            f"{report['cpu_count']} cores); compare with --threads 1"
        )
    lines.append("")
    ref = next(r for r in report["planners"] if r["planner"] == "reference")["median_s"]
    rows = [
        ["planner", "s/action", "min s", "GFLOP/action", "GFLOP/s", "% peak", "speed-up", "1st s"]
    ]
    for r in report["planners"]:
        rate = r["flops"] / r["median_s"]
        rows.append(
            [
                r["planner"],
                f"{r['median_s']:.3f}",
                f"{r['min_s']:.3f}",
                f"{r['flops'] / 1e9:.1f}",
                f"{rate / 1e9:.1f}",
                f"{100 * rate / peak:.1f}",
                f"{ref / r['median_s']:.2f}x",
                f"{r['first_call_s']:.1f}",
            ]
        )
    return "\n".join(lines + align(rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=1000, help="K sampled per iteration")
    parser.add_argument("--elites", type=int, default=100, help="E, top candidates refit on")
    parser.add_argument("--iterations", type=int, default=10, help="CEM refits per action")
    parser.add_argument("--horizon", type=int, default=12, help="H, imagined steps")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per planner")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument(
        "--results", action="store_true", help="write the table into docs/results.md"
    )
    parser.add_argument(
        "--no-compile",
        dest="compile",
        action="store_false",
        help="leave out the 'library, compiled' row (torch.compile; needs a C++ compiler on CPU)",
    )
    parser.add_argument(
        "--peak-seconds",
        type=float,
        default=1.0,
        help="seconds per size of the fp32 matmul throughput measurement (before and after)",
    )
    parser.add_argument("--profile", type=int, default=0, help="print top-N profiler rows")
    parser.add_argument(
        "--kaixhin",
        type=Path,
        default=None,
        metavar="PATH",
        help="a checkout of Kaixhin/PlaNet: also time its MPCPlanner at the same sizes",
    )
    parser.add_argument(
        "--malloc",
        choices=["keep", "default"],
        default="keep",
        help="keep: reuse freed memory as the `rssm` CLI does (rssm.run.malloc); default: as is",
    )
    args = parser.parse_args(argv)
    for key in ("candidates", "elites", "iterations", "horizon", "repeats"):
        if getattr(args, key) < 1:
            parser.error(f"--{key}={getattr(args, key)} must be >= 1")
    if args.elites > args.candidates:
        parser.error(f"--elites={args.elites} must be <= --candidates={args.candidates}")
    if args.threads < 0:
        parser.error(f"--threads={args.threads} must be >= 0 (0: torch's default)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available; use --device cpu")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc == "keep":
        keep_freed_memory()
    load_start = os.getloadavg()[0]
    start = matmul_flops(args.device, seconds=args.peak_seconds)["flops"]
    measured = measure(args)
    end = matmul_flops(args.device, seconds=args.peak_seconds)["flops"]
    load_end = os.getloadavg()[0]
    report: dict[str, Any] = {
        "device": args.device,
        "cpu": torch.cuda.get_device_name() if args.device == "cuda" else cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "candidates": args.candidates,
        "elites": args.elites,
        "iterations": args.iterations,
        "horizon": args.horizon,
        "repeats": args.repeats,
        "malloc": args.malloc,
        "matmul_flops_start": start,
        "matmul_flops_end": end,
        "matmul_flops": max(start, end),
        **measured,
    }
    ref = next(r for r in report["planners"] if r["planner"] == "reference")["median_s"]
    for r in report["planners"]:
        r["flops_per_s"] = r["flops"] / r["median_s"]
        r["fraction_of_matmul"] = r["flops_per_s"] / report["matmul_flops"]
        r["speedup_vs_reference"] = ref / r["median_s"]
    report["ratio_reference_over_library"] = next(
        r["speedup_vs_reference"] for r in report["planners"] if r["planner"] == "library"
    )
    publish(
        report,
        table(report),
        script="planning.py",
        section="planning-speed" + ("-cuda" if args.device == "cuda" else ""),
        title=f"## CEM planning speed ({report['cpu']})",
        argv=argv,
        json_path=args.json,
        results=args.results,
    )
    return report


if __name__ == "__main__":
    main()
