"""The ``rssm`` command line: ``rssm train``, ``rssm envs``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["main"]


def _field_type(annotation: Any) -> tuple[type, bool]:
    """(base type, optional) of a dataclass field annotation such as ``int`` or ``str | None``."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing), {"Any": Any})  # annotations are postponed
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return rest[0], len(rest) < len(args)
    return typing.get_origin(annotation) or annotation, False


def _parse_value(kind: type, optional: bool, name: str):
    def parse(text: str):
        if optional and text.lower() in ("none", "null"):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--{name} takes a {kind.__name__}{' or none' if optional else ''}, got {text!r}"
            ) from None

    return parse


def _env_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--env-option takes KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def _add_dataclass_options(parser: argparse.ArgumentParser, cls: type) -> None:
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        name = f.name.replace("_", "-")
        if f.name == "env_options":
            parser.add_argument(
                "--env-option",
                dest="env_options",
                action="append",
                type=_env_option,
                default=[],  # merged over the dataclass default in _train
                metavar="KEY=VALUE",
                help=f"option for make_env, repeatable, on top of {default} (e.g. image_size=64)",
            )
            continue
        kind, optional = _field_type(f.type)
        parser.add_argument(
            f"--{name}",
            dest=f.name,
            type=_parse_value(kind, optional, name),
            default=default,
            metavar=kind.__name__.upper(),
            help=f"({kind.__name__}{' | none' if optional else ''}, default: {default})",
        )


def _build_parser() -> argparse.ArgumentParser:
    from rssm.run.world_model import WorldModelRun

    parser = argparse.ArgumentParser(
        prog="rssm", description="World-model reinforcement learning with RSSMs."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    train = sub.add_parser(
        "train",
        help="train a world model on random-policy experience and score its predictions",
        description=(
            "Collect random-policy episodes, train a world model on them, and score open-loop "
            "prediction on held-out episodes against the copy-last-frame baseline. Writes "
            "config.json, metrics.jsonl, checkpoint.pt and open_loop.mp4 to the run directory."
        ),
    )
    _add_dataclass_options(train, WorldModelRun)
    train.add_argument("--logdir", type=Path, default=None, help="(path) run directory")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    envs = sub.add_parser("envs", help="list the environment suites and the built-in envs")
    envs.add_argument("suite", nargs="?", default=None, help="list the ids of this suite")
    return parser


def _write_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as file:
        file.write(json.dumps(record) + "\n")


def _train(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from rssm.run.checkpoint import save_checkpoint
    from rssm.run.video import open_loop_frames, write_video
    from rssm.run.world_model import (
        WorldModelRun,
        build_config,
        collect_episodes,
        train_world_model,
        windows,
    )

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(WorldModelRun)}
    values["env_options"] = {**WorldModelRun().env_options, **dict(values["env_options"])}
    run = WorldModelRun(**values)
    config = build_config(run)  # fails early on an unknown preset or size
    name = run.env.replace(":", "-")
    logdir = args.logdir or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    logdir.mkdir(parents=True, exist_ok=True)
    if not os.access(logdir, os.W_OK):
        raise PermissionError(f"run directory {logdir} is not writable")
    resolved = {"run": dataclasses.asdict(run), "world_model": dataclasses.asdict(config)}
    (logdir / "config.json").write_text(json.dumps(resolved, indent=2))
    metrics_path = logdir / "metrics.jsonl"
    bar = tqdm(total=run.updates, desc="updates", disable=args.quiet, unit="upd")

    def on_metrics(update: int, metrics: dict[str, float]) -> None:
        _write_jsonl(metrics_path, {"update": update, **metrics})
        bar.update(update - bar.n)
        bar.set_postfix(
            loss=f"{metrics['loss']:.3g}",
            open_loop=f"{metrics['open_loop_model']:.4f}",
            copy_last=f"{metrics['open_loop_copy_last']:.4f}",
        )

    model, summary = train_world_model(run, on_metrics)
    bar.close()
    checkpoint = save_checkpoint(
        logdir / "checkpoint.pt",
        {"model": model.state_dict(), "config": json.loads(json.dumps(resolved))},
    )
    video = None
    if "image" in model.decoder.cnn_shapes:
        episodes = collect_episodes(run.env, 4, run.seed + 20_000, run.env_options)
        data = windows(episodes, run.context + 3 * run.horizon)
        batch = model.preprocess(data)
        model.eval()
        result = model.open_loop(batch, run.context)
        frames = open_loop_frames(
            data["image"][:, : run.context],
            result.true["image"].numpy(),
            result.pred["image"].numpy(),
        )
        video = write_video(logdir / "open_loop.mp4", np.asarray(frames))
    score = summary["open_loop"]
    print(
        f"open-loop image MSE over {run.horizon} steps after {run.context}: model "
        f"{score['model']:.5f}, copy-last-frame {score['copy_last']:.5f} (ratio "
        f"{score['ratio']:.2f}); {summary['seconds']:.0f} s"
    )
    print(f"run directory: {logdir}")
    print(f"  metrics:    {metrics_path}")
    print(f"  checkpoint: {checkpoint}")
    if video is not None:
        print(f"  video:      {video} (rows: truth, prediction, error)")
    return 0


def _envs(args: argparse.Namespace) -> int:
    from rssm.envs import SUITES, list_envs

    if args.suite is None:
        print("suites: " + ", ".join(SUITES))
        print("builtin: " + ", ".join(list_envs("builtin")))
        return 0
    print("\n".join(list_envs(args.suite)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rssm`` console script; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    commands = {"train": _train, "envs": _envs}
    if args.command == "train":
        from rssm.run.malloc import keep_freed_memory

        keep_freed_memory()
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, ImportError, FileNotFoundError, PermissionError) as error:
        print(f"rssm {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rssm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
