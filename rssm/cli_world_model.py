"""``rssm world-model``: its options, one per field of :class:`~rssm.run.run_config.WorldModelRun`
(typed, with defaults in ``--help``), and the command, which runs :mod:`rssm.run.world_model`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any

import yaml

__all__ = ["add_world_model_parser", "run_world_model"]


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


def add_world_model_parser(sub: Any) -> None:
    """The ``world-model`` subcommand: one option per :class:`WorldModelRun` field."""
    from rssm.run.run_config import WorldModelRun

    world = sub.add_parser(
        "world-model",
        help="train a world model on random-policy experience and score its predictions",
        description=(
            "Collect random-policy episodes, train a world model on them, and score open-loop "
            "prediction on held-out episodes against the copy-last-frame baseline: rssm train's "
            "offline path with the world_model agent. Writes config.yaml, metrics.jsonl, "
            "checkpoint.pt, the episodes (episodes/, held_out/) and open_loop.mp4 to the run "
            "directory."
        ),
    )
    _add_dataclass_options(world, WorldModelRun)
    world.add_argument("--logdir", type=Path, default=None, help="(path) run directory")
    world.add_argument("--quiet", action="store_true", help="no progress bar")


def run_world_model(args: argparse.Namespace) -> int:
    """``rssm world-model``: collect, train offline with ``rssm train``'s loop, score, video."""
    import numpy as np

    from rssm.models.scoring import windows
    from rssm.run.video import open_loop_frames, write_video
    from rssm.run.world_model import (
        WorldModelRun,
        collect_episodes,
        train_world_model,
    )

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(WorldModelRun)}
    values["env_options"] = {**WorldModelRun().env_options, **dict(values["env_options"])}
    run = WorldModelRun(**values)
    name = run.env.replace(":", "-")
    logdir = args.logdir or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"  # tqdm's own switch
    model, summary = train_world_model(  # a bad preset, env or logdir fails before any output
        run,
        say=lambda line: print(line, file=sys.stderr, flush=True),
        logdir=logdir,
        on_start=lambda: print(f"run directory: {logdir}", flush=True),
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
    print(f"  config:     {logdir / 'config.yaml'}")
    print(f"  metrics:    {logdir / 'metrics.jsonl'}")
    print(f"  checkpoint: {logdir / 'checkpoint.pt'} (rssm dream / report --run {logdir})")
    if video is not None:
        print(f"  video:      {video} (rows: truth, prediction, error)")
    return 0
