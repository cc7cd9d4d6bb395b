"""Speed of one full Dreamer update: the world-model update plus the actor-critic update.

Run from the repository root::

    python benchmarks/train_step.py                      # v3_xs, v3_s, v1 on the CPU
    python benchmarks/train_step.py --agents v3_s --repeats 5 --json bench_train_step.json
    python benchmarks/train_step.py --device cuda --results
    python benchmarks/train_step.py --agents v3_xxs --obs proprio --precision float32,bfloat16

A full update is ``DreamerAgent.train_step`` on a batch of 16x64 (BxT) rows of 64x64x3 uint8
images with 6-dim continuous actions: the world-model loss, backward, clip and Adam step, then
imagination of horizon 15 from all B*T posteriors, the actor and critic losses, their backward
passes, clips and Adam steps, and the slow-critic update. Each agent runs in a fresh process
(peak memory of its own); the two halves are also timed on their own (``world model`` and
``actor-critic`` columns). FLOPs are counted over one whole update by ``FlopCounterMode``
(matmuls and convolutions with their gradients) and the rate is given as a fraction of the fp32
matmul throughput measured in the same run. ``--precision float32,bfloat16`` times each agent
under both (``run.precision``: bfloat16 autocast), in the same run: worth it on CPUs with bf16
matrix instructions (AMX, AVX512-BF16), several times slower on CPUs without them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from results import add_label_argument, align, check_label, labelled, publish  # noqa: E402
from throughput import count_flops, cpu_name, matmul_flops, timed  # noqa: E402
from world_model import ACTION_DIM, IMAGE_SHAPE, make_batch  # noqa: E402

from rssm import config as config_lib  # noqa: E402
from rssm.agents import DreamerAgent  # noqa: E402
from rssm.run.malloc import keep_freed_memory  # noqa: E402
from rssm.run.train import Config  # noqa: E402

# Benchmark name -> presets composed in order.
AGENTS: dict[str, list[str]] = {
    "v3_xs": ["dreamer_v3", "xs"],
    "v3_s": ["dreamer_v3", "s"],
    "v1": ["dreamer_v1"],
    "v2": ["dreamer_v2"],
    "v3_size12m": ["dreamer_v3", "size12m"],
    "v3_xxs": ["dreamer_v3", "xxs"],
}
STATE_DIM = 6  # --obs proprio: a state vector of this size (DMC reacher: 6) instead of images
MIB = 2.0**20


def build(
    name: str,
    device: torch.device,
    horizon: int,
    imag_last: int = 0,
    obs: str = "pixels",
    precision: str = "float32",
) -> DreamerAgent:
    config = config_lib.load_presets(Config, AGENTS[name])
    config = config_lib.apply_overrides(
        config,
        {"dreamer.actor_critic.horizon": horizon, "dreamer.actor_critic.imag_last": imag_last},
    )
    if obs == "proprio":
        space = gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)
        obs_space = gym.spaces.Dict({"state": space})
    else:
        obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)})
    return DreamerAgent(
        obs_space, ACTION_DIM, config.world_model, config.dreamer, seed=0, device=device,
        precision=precision,
    )  # fmt: skip


def behaviour_update(agent: DreamerAgent, start, start_cont) -> None:
    """The actor-critic half of ``train_step`` on fixed start states."""
    losses = agent.behavior.loss(agent.model, start, start_cont)
    agent.actor_opt.step(losses.actor, only_own=True)
    agent.critic_opt.step(losses.critic, only_own=True)
    agent.behavior.update_slow_critic()


def model_update(agent: DreamerAgent, batch: dict[str, Any]) -> None:
    """The world-model half of ``train_step``."""
    agent.model_opt.step(agent.model.loss(batch).loss)


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    agent = build(name, device, args.horizon, args.imag_last, args.obs, args.precision)
    batch = make_batch(args.batch, args.length, device)
    if args.obs == "proprio":
        gen = torch.Generator().manual_seed(1)
        del batch["image"]
        state = torch.randn(args.batch, args.length, STATE_DIM, generator=gen)
        batch["state"] = state.to(device)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base_cuda = torch.cuda.memory_allocated(device)
    for _ in range(args.warmup):
        agent.train_step(batch)
    seconds = [timed(lambda: agent.train_step(batch), device) for _ in range(args.repeats)]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base_cuda
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0 - base_rss
    with torch.no_grad():
        posterior = agent.model.loss(batch).posterior
    steps = args.imag_last or args.length  # the starts train_step imagines from
    start = posterior.detach().at((slice(None), slice(-steps, None))).reshape(-1)
    start_cont = 1.0 - batch["is_terminal"][:, -steps:].reshape(-1).float()
    wm = [timed(lambda: model_update(agent, batch), device) for _ in range(args.repeats)]
    ac = [
        timed(lambda: behaviour_update(agent, start, start_cont), device)
        for _ in range(args.repeats)
    ]
    flops = count_flops(lambda: agent.train_step(batch))
    params = sum(p.numel() for p in agent.model.parameters())
    params += sum(p.numel() for p in agent.behavior.actor.parameters())
    params += sum(p.numel() for p in agent.behavior.critic.parameters())
    return {
        "agent": name,
        "precision": args.precision,
        "presets": AGENTS[name],
        "actor_grad": agent.behavior.actor_grad,
        "params": params,
        "seconds": seconds,
        "median_s": statistics.median(seconds),
        "world_model_s": statistics.median(wm),
        "actor_critic_s": statistics.median(ac),
        "peak_mib": peak / MIB,
        "flops": flops,
    }


def run_child(name: str, precision: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--out", str(out)]
        cmd += ["--precision", precision]
        flags = ("batch", "length", "horizon", "imag_last", "repeats", "warmup", "device", "obs")
        for flag in (*flags, "threads"):
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def table(report: dict[str, Any]) -> str:
    peak = report["matmul_flops"]
    starts = (
        f"the last {report['imag_last']} posteriors of each sequence"
        if report.get("imag_last")
        else "all B*T posteriors"
    )
    lines = [
        f"full Dreamer update (world model + actor-critic), batch {report['batch']}x"
        f"{report['length']}, imagination horizon {report['horizon']} from {starts}, "
        + (f"{STATE_DIM}-dim state vectors" if report["obs"] == "proprio" else "64x64x3 images")
        + f", {ACTION_DIM}-dim continuous actions",
        f"device {report['device']} ({report['cpu']}), torch {report['torch']}, "
        f"{report['threads']} threads, median of {report['repeats']} after {report['warmup']} "
        f"warm-up; 1-min load {report['loadavg_start']:.1f} at start",
        f"fp32 matmul: {peak / 1e9:.1f} GFLOP/s (best of start and end of the run)",
        "",
    ]
    head = ["agent", "precision", "actor grad", "params", "update s", "world model s"]
    head += ["actor-critic s", "peak MiB", "GFLOP/upd", "% peak"]
    rows = [head]
    for r in report["agents"]:
        rows.append(
            [
                r["agent"],
                r["precision"],
                r["actor_grad"],
                f"{r['params'] / 1e6:.1f}M",
                f"{r['median_s']:.2f}",
                f"{r['world_model_s']:.2f}",
                f"{r['actor_critic_s']:.2f}",
                f"{r['peak_mib']:.0f}",
                f"{r['flops'] / 1e9:.0f}",
                f"{100 * r['flops'] / r['median_s'] / peak:.0f}",
            ]
        )
    return "\n".join(lines + align(rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="v3_xs,v3_s,v1", help=f"from {sorted(AGENTS)}")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument(
        "--imag-last", type=int, default=0,
        help="imagine from the last N posteriors of each sequence (0: all B*T, the papers')",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--obs", choices=["pixels", "proprio"], default="pixels",
        help="64x64 images (CNN encoder and decoder) or a state vector (MLPs only)",
    )  # fmt: skip
    parser.add_argument(
        "--precision", default="float32",
        help="float32, bfloat16 (autocast) or both, comma-separated, each agent timed under each",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--results", action="store_true", help="write docs/results.md section")
    add_label_argument(parser)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    check_label(parser, args.label)
    args.precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    wrong = [p for p in args.precisions if p not in ("float32", "bfloat16")]
    if wrong or not args.precisions or (args.child is not None and len(args.precisions) != 1):
        parser.error(f"--precision {args.precision!r}: use float32, bfloat16 or float32,bfloat16")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available; use --device cpu")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        keep_freed_memory()
        args.out.write_text(json.dumps(measure(args.child, args)))
        return {}
    names = [n.strip() for n in args.agents.split(",") if n.strip()]
    unknown = [n for n in names if n not in AGENTS]
    if unknown:
        raise SystemExit(f"--agents: unknown {unknown}; choose from {sorted(AGENTS)}")
    load = os.getloadavg()[0]
    start = matmul_flops(args.device)["flops"]
    agents = [run_child(name, p, args) for name in names for p in args.precisions]
    end = matmul_flops(args.device)["flops"]
    report = {
        "device": args.device,
        "cpu": torch.cuda.get_device_name() if args.device == "cuda" else cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loadavg_start": load,
        "batch": args.batch,
        "length": args.length,
        "horizon": args.horizon,
        "imag_last": args.imag_last,
        "obs": args.obs,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "precisions": args.precisions,
        "matmul_flops": max(start, end),
        "agents": agents,
    }
    publish(
        report,
        table(report),
        script="train_step.py",
        section=labelled(
            "train-step-speed"
            + (f"-imag-last{args.imag_last}" if args.imag_last else "")
            + ("-proprio" if args.obs == "proprio" else "")
            + ("-cuda" if args.device == "cuda" else "")
            + (f"-bf16-threads{torch.get_num_threads()}" if "bfloat16" in args.precisions else ""),
            args.label,
        ),
        title=f"## Full Dreamer update speed ({report['cpu']})",
        argv=argv,
        json_path=args.json,
        results=args.results,
    )
    return report


if __name__ == "__main__":
    main()
