"""World-model learning on the built-in point mass: open-loop prediction vs copying the last frame.

For each latent kind and seed: collect random-policy episodes, train the world model, and score
the open-loop image error over ``--horizon`` imagined steps after ``--context`` observed ones on
held-out episodes. Prints a table, writes JSON with ``--json`` and its section of
docs/results.md with ``--results``.

    python benchmarks/learn_world_model.py --seeds 0 1 2 --json bench_wm_learning.json --results
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import write_section  # noqa: E402

from rssm.run.malloc import keep_freed_memory  # noqa: E402
from rssm.run.world_model import WorldModelRun, train_world_model  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = WorldModelRun()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latents", nargs="+", default=["gaussian", "categorical"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--updates", type=int, default=defaults.updates)
    parser.add_argument("--image-size", type=int, default=defaults.env_options["image_size"])
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--length", type=int, default=defaults.length)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--train-episodes", type=int, default=defaults.train_episodes)
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes)
    parser.add_argument("--context", type=int, default=defaults.context)
    parser.add_argument("--horizon", type=int, default=defaults.horizon)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, 1 thread each")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--results", action="store_true", help="write docs/results.md section")
    return parser.parse_args(argv)


def one_run(job: tuple[str, int, dict]) -> dict:
    """Train and score one (latent, seed) in this process with one thread."""
    latent, seed, args = job
    torch.set_num_threads(1)
    keep_freed_memory()
    run = WorldModelRun(
        preset=f"tiny-{latent}",
        env_options={"image_size": args["image_size"]},
        seed=seed,
        train_episodes=args["train_episodes"],
        eval_episodes=args["eval_episodes"],
        updates=args["updates"],
        batch_size=args["batch_size"],
        length=args["length"],
        lr=args["lr"],
        context=args["context"],
        horizon=args["horizon"],
        eval_every=max(1, args["updates"] // 5),
    )
    _, summary = train_world_model(run)
    score = summary["open_loop"]
    return {
        "latent": latent,
        "seed": seed,
        **{k: score[k] for k in ("model", "copy_last", "mean_frame", "ratio")},
        "model_per_step": score["model_per_step"],
        "copy_last_per_step": score["copy_last_per_step"],
        "seconds": summary["seconds"],
        "parameters": summary["parameters"],
        "history": summary["history"],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    jobs = [(latent, seed, vars(args)) for latent in args.latents for seed in args.seeds]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        rows = []
        for r in pool.map(one_run, jobs):
            rows.append(r)
            print(
                f"{r['latent']:12s} seed {r['seed']}: model {r['model']:.5f}  copy-last "
                f"{r['copy_last']:.5f}  mean-frame {r['mean_frame']:.5f}  ratio "
                f"{r['ratio']:.2f}  {r['seconds']:.0f} s",
                flush=True,
            )
    command = "python benchmarks/learn_world_model.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    table = markdown(rows, args, command)
    print(table)
    if args.json is not None:
        report = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
        args.json.write_text(json.dumps(report, indent=2))
    if args.results:
        write_section("world-model-learning", table)
    return rows


def markdown(rows: list[dict], args: argparse.Namespace, command: str) -> str:
    lines = [
        "## World-model learning on `builtin:pointmass`",
        "",
        f"Command: `{command.strip()}`  ",
        f"Written {time.strftime('%Y-%m-%d')} by the run itself on {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, {args.jobs} runs in parallel with 1 thread each.  ",
        f"Random-policy data: {args.train_episodes} training episodes of 100 steps, "
        f"{args.eval_episodes} held-out episodes (other env seeds), {args.image_size}x"
        f"{args.image_size} RGB. {args.updates} updates of batch {args.batch_size}x{args.length}, "
        f"Adam lr {args.lr}. Score: per-pixel MSE in [0, 1] units over {args.horizon} imagined "
        f"steps after {args.context} observed (non-overlapping {args.context + args.horizon}-step "
        "windows of the held-out episodes); copy-last repeats the last observed frame.",
        "",
        "| latent | seed | params | model MSE | copy-last MSE | mean-frame MSE | ratio to "
        f"copy-last | MSE at step {args.horizon}: model / copy-last | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['latent']} | {r['seed']} | {r['parameters'] / 1e6:.2f}M | {r['model']:.5f} | "
            f"{r['copy_last']:.5f} | {r['mean_frame']:.5f} | {r['ratio']:.2f} | "
            f"{r['model_per_step'][-1]:.5f} / "
            f"{r['copy_last_per_step'][-1]:.5f} | {r['seconds']:.0f} |"
        )
    for latent in args.latents:
        ratios = [r["ratio"] for r in rows if r["latent"] == latent]
        if len(ratios) > 1:
            lines.append(
                f"| {latent} | mean of {len(ratios)} | | | | | {statistics.mean(ratios):.2f} ± "
                f"{statistics.stdev(ratios):.2f} | | |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
