"""Speed of one world-model update (forward, backward, gradient clip, Adam step) per preset.

Run from the repository root::

    python benchmarks/world_model.py                      # planet, v3_xs, v3_s on the CPU
    python benchmarks/world_model.py --models v3_s --repeats 3 --profile 15 --breakdown
    python benchmarks/world_model.py --device cuda --json bench.json

Each model is measured in a fresh child process, so that its peak memory is its own: on the CPU the
increase of the peak resident set size (``ru_maxrss``) over the updates (activations, gradients and
Adam state; coarse, the allocator may keep freed pages), on CUDA the peak of
``torch.cuda.max_memory_allocated`` over the allocation before the first update. The FLOPs of an
update are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one forward and backward:
it counts matrix multiplies and (transposed) convolutions and their gradients, which dominate, and
not elementwise ops, normalisation, sampling or the optimizer. The achieved rate is stated as a
fraction of the fp32 matmul throughput measured in the same run (before and after the models, the
larger of the two is used), so numbers from a loaded or different machine stay comparable.

On a shared CPU, compare with ``--threads 1``: two OpenMP threads competing with other processes
can be several times slower. The ``% sys`` column shows the kernel's share of the CPU time (page
faults of freshly mapped activation buffers); ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=100000000000`` in the environment shows the time without them.
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
from typing import Any, Literal

import torch

# Run from a checkout without installing: the repository root goes before site-packages.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from results import align, publish  # noqa: E402
from throughput import count_flops, cpu_name, matmul_flops, sync, timed  # noqa: E402

from rssm.models import WorldModel, world_model_config  # noqa: E402
from rssm.run.malloc import keep_freed_memory  # noqa: E402

Device = Literal["cpu", "cuda"]
# Benchmark name -> (preset, size) of ``world_model_config``; ``preset[:size]`` is also accepted.
MODELS: dict[str, tuple[str, str | None]] = {
    "planet": ("planet", None),
    "v3_xs": ("dreamer_v3", "xs"),
    "v3_s": ("dreamer_v3", "s"),
}
IMAGE_SHAPE = (64, 64, 3)
ACTION_DIM = 6
LR, EPS, CLIP = 1e-4, 1e-8, 1000.0  # DreamerV3's model optimiser (speed does not depend on them)
MIB = 2.0**20


def resolve(name: str) -> tuple[str, str | None]:
    """Benchmark model name -> ``(preset, size)``; raises ValueError on an unknown preset."""
    if name in MODELS:
        return MODELS[name]
    preset, _, size = name.partition(":")
    world_model_config(preset, size or None)  # validates, with a message listing known names
    return preset, size or None


def make_batch(batch: int, length: int, device: torch.device, seed: int = 0) -> dict[str, Any]:
    """Random training batch [B, T, ...]: uint8 images, continuous actions in [-1, 1], episode
    starts at t = 0 and at ~2% of the other rows, terminals on the row before a start."""
    gen = torch.Generator().manual_seed(seed)
    is_first = torch.rand(batch, length, generator=gen) < 0.02
    is_first[:, 0] = True
    is_terminal = torch.zeros_like(is_first)
    is_terminal[:, :-1] = is_first[:, 1:] & (torch.rand(batch, length - 1, generator=gen) < 0.5)
    data = {
        "image": torch.randint(0, 256, (batch, length, *IMAGE_SHAPE), generator=gen).byte(),
        "action": torch.rand(batch, length, ACTION_DIM, generator=gen) * 2 - 1,
        "reward": torch.randn(batch, length, generator=gen),
        "is_first": is_first,
        "is_terminal": is_terminal,
    }
    return {key: value.to(device) for key, value in data.items()}


def build(name: str, device: torch.device) -> tuple[WorldModel, torch.optim.Optimizer]:
    """The world model of benchmark ``name`` on ``device`` and its Adam optimiser."""
    obs_space = gym.spaces.Dict(
        {"image": gym.spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)},
    )
    model = WorldModel(obs_space, ACTION_DIM, world_model_config(*resolve(name))).to(device)
    model.train()
    return model, torch.optim.Adam(model.parameters(), lr=LR, eps=EPS)


def update(model: WorldModel, optimizer: torch.optim.Optimizer, batch: dict[str, Any]) -> None:
    """One training update as in ``rssm.run.world_model.train_world_model``."""
    output = model.loss(batch)
    optimizer.zero_grad(set_to_none=True)
    output.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    optimizer.step()


def forward_backward(model: WorldModel, batch: dict[str, Any]) -> None:
    """The loss and its gradients (no optimiser step); gradients are dropped afterwards."""
    model.loss(batch).loss.backward()
    model.zero_grad(set_to_none=True)


def breakdown(
    model: WorldModel,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    device: torch.device,
    repeats: int,
) -> dict[str, float]:
    """Median seconds and FLOPs of each part of an update, each run forward + backward alone.

    The parts (encoder, RSSM filtering loop, decoder, reward/continue heads and KL, clip + Adam)
    are cut at detached leaves, so their sum approximates the whole update.

    Returns:
        ``{part: {"s": median seconds, "flops": counted FLOPs}}``.
    """
    is_first, action = batch["is_first"], batch["action"]
    # prev_action of DESIGN section 3: shifted one row right, zero at t = 0 and at is_first.
    prev_actions = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)
    prev_actions = prev_actions.masked_fill(is_first.unsqueeze(-1), 0.0)
    with torch.no_grad():
        embed0 = model.encoder.encode(model.encoder.preprocess(batch, noise=True))
        post0, _ = model.rssm.observe(None, embed0, prev_actions, is_first)
    inputs = model.encoder.preprocess(batch, noise=True)
    kl_kwargs = vars(model.config.kl)

    def encoder() -> None:
        model.encoder.encode(model.encoder.preprocess(batch, noise=True)).sum().backward()

    def rssm() -> None:
        embed = embed0.clone().requires_grad_()
        post, prior = model.rssm.observe(None, embed, prev_actions, is_first)
        (post.feat().sum() + prior.stats.sum()).backward()

    def decoder() -> None:
        feat = post0.feat().requires_grad_()
        loss = sum(dist.loss(inputs[key]).mean() for key, dist in model.decoder(feat).items())
        loss.backward()

    def heads_kl() -> None:
        feat = post0.feat().requires_grad_()
        loss = model.reward(feat).loss(batch["reward"]).mean()
        if model.cont is not None:
            loss = loss + model.cont(feat).loss(1.0 - batch["is_terminal"].float()).mean()
        post = post0.map(lambda x: x.detach().requires_grad_())
        prior = post0.map(lambda x: x.detach().requires_grad_())
        kl = model.rssm.kl_loss(post, prior, **kl_kwargs)
        kl.pop("kl_value")
        (loss + sum(v.mean() for v in kl.values())).backward()

    def optim() -> None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()

    parts = {"encoder": encoder, "rssm": rssm, "decoder": decoder, "heads_kl": heads_kl}
    result = {}
    for name, fn in parts.items():
        flops = count_flops(fn)  # also the warm-up
        seconds = statistics.median(timed(fn, device) for _ in range(repeats))
        result[name] = {"s": seconds, "flops": flops}
    update(model, optimizer, batch)  # gradients for the optimiser part
    seconds = statistics.median(timed(optim, device) for _ in range(repeats))
    result["clip_adam"] = {"s": seconds, "flops": 0.0}
    optimizer.zero_grad(set_to_none=True)
    return result


def profile(
    model: WorldModel,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    device: torch.device,
    rows: int,
) -> str:
    """``torch.profiler`` table of one update, sorted by self time (CPU, or CUDA on a GPU)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with torch_profile(activities=activities, record_shapes=False) as prof:
        update(model, optimizer, batch)
        sync(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=rows)


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """All measurements of one model (run in a fresh process by :func:`run_child`)."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model, optimizer = build(name, device)
    batch = make_batch(args.batch, args.length, device)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base_cuda = torch.cuda.memory_allocated(device)
    for _ in range(args.warmup):
        update(model, optimizer, batch)
    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds = [timed(lambda: update(model, optimizer, batch), device) for _ in range(args.repeats)]
    after = resource.getrusage(resource.RUSAGE_SELF)
    peak_rss = after.ru_maxrss * 1024.0
    sys_s, user_s = after.ru_stime - before.ru_stime, after.ru_utime - before.ru_utime
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base_cuda
    else:
        peak = peak_rss - base_rss
    flops = count_flops(lambda: forward_backward(model, batch))
    result: dict[str, Any] = {
        "model": name,
        "preset": "/".join(str(p) for p in resolve(name) if p is not None),
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": seconds,
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "peak_mib": peak / MIB,
        "peak_rss_mib": peak_rss / MIB,
        "flops": flops,
        # Kernel CPU time (mostly page faults of freshly mapped buffers) and faults per update.
        "sys_fraction": sys_s / max(sys_s + user_s, 1e-9),
        "minor_faults": (after.ru_minflt - before.ru_minflt) / args.repeats,
    }
    if args.breakdown:
        result["breakdown"] = breakdown(model, optimizer, batch, device, max(args.repeats, 1))
    if args.profile:
        print(f"--- torch.profiler: one update of {name} ---")
        print(profile(model, optimizer, batch, device, args.profile), flush=True)
    return result


def run_child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Measure ``name`` in a fresh interpreter; its stdout (the profile) passes through."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--out", str(out)]
        for flag in (
            "batch",
            "length",
            "repeats",
            "warmup",
            "device",
            "threads",
            "profile",
            "malloc",
        ):
            cmd += [f"--{flag}", str(getattr(args, flag))]
        if args.breakdown:
            cmd.append("--breakdown")
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def table(report: dict[str, Any]) -> str:
    """Plain-text report: the machine, then one aligned row per model."""
    peak = report["matmul_flops"]
    lines = [
        f"world-model update, batch {report['batch']}x{report['length']} (BxT), "
        f"64x64x3 uint8 images, action_dim {ACTION_DIM}",
        f"device {report['device']} ({report['cpu']}), torch {report['torch']}, "
        f"{report['threads']} threads, {report['repeats']} timed after {report['warmup']} warm-up, "
        f"1-min load {report['loadavg_start']:.1f} at start, {report['loadavg_end']:.1f} at end",
        f"fp32 matmul: {report['matmul_flops_start'] / 1e9:.1f} GFLOP/s at start, "
        f"{report['matmul_flops_end'] / 1e9:.1f} at end; using {peak / 1e9:.1f}",
        "FLOPs: FlopCounterMode over forward+backward: matmuls and convs, not elementwise ops,",
        "norms or the optimizer; % peak = (FLOPs / median s) / fp32 matmul throughput;",
        "% sys = kernel share of the CPU time of the timed updates (page faults); "
        f"malloc: {report['malloc']}",
    ]
    if report["loadavg_start"] >= 0.5 * (report["cpu_count"] or 1):
        lines.append(
            f"WARNING: the machine was busy (load {report['loadavg_start']:.1f} on "
            f"{report['cpu_count']} cores); multi-threaded timings suffer badly from contention, "
            "compare with --threads 1"
        )
    lines.append("")
    head = ["model", "params", "median s", "min s", "peak MiB", "GFLOP/upd", "GFLOP/s", "% peak"]
    head.append("% sys")
    rows = [head]
    for r in report["models"]:
        rate = r["flops"] / r["median_s"]
        rows.append(
            [
                r["model"],
                f"{r['params'] / 1e6:.2f}M",
                f"{r['median_s']:.3f}",
                f"{r['min_s']:.3f}",
                f"{r['peak_mib']:.0f}",
                f"{r['flops'] / 1e9:.1f}",
                f"{rate / 1e9:.1f}",
                f"{100 * rate / peak:.1f}",
                f"{100 * r['sys_fraction']:.0f}",
            ]
        )
    lines += align(rows)
    for r in report["models"]:
        if "breakdown" in r:
            lines += ["", f"{r['model']}: parts of an update, each forward+backward on its own"]
            lines += _breakdown_rows(r["breakdown"], r["median_s"], peak)
    return "\n".join(lines)


def _breakdown_rows(parts: dict[str, dict[str, float]], total: float, peak: float) -> list[str]:
    rows = [["part", "median s", "% update", "GFLOP", "% peak"]]
    for name, part in parts.items():
        rate = 100 * part["flops"] / part["s"] / peak
        rows.append(
            [
                name,
                f"{part['s']:.3f}",
                f"{100 * part['s'] / total:.0f}",
                f"{part['flops'] / 1e9:.1f}",
                f"{rate:.1f}" if part["flops"] else "-",
            ]
        )
    rows.append(["sum", f"{sum(p['s'] for p in parts.values()):.3f}", "", "", ""])
    return align(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="planet,v3_xs,v3_s", help="comma-separated names")
    parser.add_argument("--batch", type=int, default=16, help="sequences per batch (B)")
    parser.add_argument("--length", type=int, default=64, help="steps per sequence (T)")
    parser.add_argument("--repeats", type=int, default=3, help="timed updates per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates before timing")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument(
        "--results", action="store_true", help="write the table into docs/results.md"
    )
    parser.add_argument("--profile", type=int, default=0, help="print top-N profiler rows")
    parser.add_argument("--breakdown", action="store_true", help="time model parts separately")
    parser.add_argument(
        "--malloc",
        choices=["keep", "default"],
        default="keep",
        help="keep: reuse freed memory as `rssm` does (rssm.run.malloc); default: glibc as is",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key in ("batch", "length", "repeats"):
        if getattr(args, key) < 1:
            parser.error(f"--{key}={getattr(args, key)} must be >= 1")
    if args.length < 2:
        parser.error(f"--length={args.length} must be >= 2")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available; use --device cpu")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        if args.malloc == "keep":
            keep_freed_memory()
        args.out.write_text(json.dumps(measure(args.child, args)))
        return {}
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for name in names:
        try:
            resolve(name)
        except ValueError as error:
            raise SystemExit(f"--models: {name!r}: {error}; named ones: {sorted(MODELS)}") from None
    load_start = os.getloadavg()[0]
    start = matmul_flops(args.device)["flops"]
    models = [run_child(name, args) for name in names]
    end = matmul_flops(args.device)["flops"]
    load_end = os.getloadavg()[0]
    report = {
        "device": args.device,
        "cpu": torch.cuda.get_device_name() if args.device == "cuda" else cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "batch": args.batch,
        "length": args.length,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "malloc": args.malloc,
        "matmul_flops_start": start,
        "matmul_flops_end": end,
        "matmul_flops": max(start, end),
        "models": models,
    }
    for r in models:
        r["flops_per_s"] = r["flops"] / r["median_s"]
        r["fraction_of_matmul"] = r["flops_per_s"] / report["matmul_flops"]
    publish(
        report,
        table(report),
        script="world_model.py",
        section="world-model-speed" + ("-cuda" if args.device == "cuda" else ""),
        title=f"## World-model update speed ({report['cpu']})",
        argv=argv,
        json_path=args.json,
        results=args.results,
    )
    return report


if __name__ == "__main__":
    main()
