"""The ``rssm`` command line: ``rssm train``, ``eval``, ``dream``, ``plot``, ``report``,
``sittings``, ``world-model`` and ``envs``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rssm.cli_world_model import add_world_model_parser, run_world_model

__all__ = ["main"]


def _build_parser(presets: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rssm", description="World-model reinforcement learning with RSSMs."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    train = sub.add_parser(
        "train",
        help="train an agent (Dreamer, PlaNet, random) from presets and dotted overrides",
        description=(
            "Train an agent. Presets (YAML files in rssm/presets) are applied in order, then any "
            "dotted override such as --run.steps 5000 or --world_model.rssm.deter 256. With no "
            f"--configs it runs {' '.join(DEFAULT_CONFIGS)}: PlaNet on the built-in point mass, "
            "about 10 minutes on a 2-core CPU. Writes config.yaml, metrics.jsonl (+ TensorBoard), "
            "videos/, replay/ and checkpoint.pt to the run directory."
        ),
        epilog=_config_help(presets),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "--configs",
        nargs="+",
        default=None,
        metavar="PRESET",
        help=f"(list of str, default: {' '.join(DEFAULT_CONFIGS)}) presets applied in order",
    )
    train.add_argument("--env", default=None, help="(str) shortcut for --env.name")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --logdir (its config.yaml, unless --configs rebuilds it)",
    )
    train.add_argument(
        "--older",
        action="store_true",
        help="with --resume: when the newest checkpoint cannot be read, resume from the newest "
        "older one that can",
    )
    evaluate = sub.add_parser(
        "eval",
        help="run evaluation episodes of a trained run (optionally as a video)",
        description=(
            "Run episodes with the eval policy of a run's latest checkpoint (or --checkpoint) "
            "and print their returns. Reads config.yaml and the checkpoint from --run and writes "
            "nothing there. Dotted overrides change the run's config for this evaluation only, "
            "e.g. --planet.horizon 12 or --planet.candidates 1000; one that changes the shapes of "
            "the weights (a model size) is an error naming the key."
        ),
    )
    evaluate.add_argument(
        "--run", type=Path, required=True, metavar="PATH", help="(path, required) run directory"
    )
    evaluate.add_argument(
        "--episodes", type=int, default=1, metavar="INT", help="(int, default: 1) episodes to run"
    )
    evaluate.add_argument(
        "--device", default=None, metavar="STR", help="(str, default: the run's) torch device"
    )
    evaluate.add_argument(
        "--checkpoint",
        default=None,
        metavar="STEP|PATH",
        help="(int or path, default: the newest) the checkpoint to evaluate: an env step "
        "(45000 for checkpoint-45000.pt) or a checkpoint file",
    )
    evaluate.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="INT",
        help="(int, default: the run's eval seed) seed of the eval env and the latent samples",
    )
    evaluate.add_argument(
        "--mode",
        choices=("eval", "explore"),
        default="eval",
        help="(str, default: eval) the policy: eval, or explore (with the run's exploration "
        "noise, as it collected its training episodes)",
    )
    evaluate.add_argument(
        "--video",
        type=Path,
        nargs="?",
        const=Path(),  # --video alone: eval.mp4 in the run directory
        default=None,
        metavar="PATH",
        help="(path, default: none) write the episodes' frames to this .mp4 or .gif file; "
        "--video alone writes eval.mp4 into the run directory",
    )
    _add_see_parsers(sub)
    add_world_model_parser(sub)
    envs = sub.add_parser("envs", help="list the environment suites and the built-in envs")
    envs.add_argument("suite", nargs="?", default=None, help="list the ids of this suite")
    return parser


DEFAULT_CONFIGS = ("planet", "cpu")


def _add_see_parsers(sub: Any) -> None:
    """``dream``, ``plot`` and ``report``: looking at what a run learned."""
    dream = sub.add_parser(
        "dream",
        help="video of the model's imagination next to reality, from a run's checkpoint",
        description=(
            "Observe the first --context steps of a real episode (from the run's replay), then "
            "imagine --steps more: under the recorded actions (--policy replay: rows truth / "
            "imagination / error) or under the agent's own policy (--policy agent)."
        ),
    )
    dream.add_argument("--run", type=Path, required=True, metavar="PATH", help="(path) run dir")
    dream.add_argument("--steps", type=int, default=50, metavar="INT", help="(int, default: 50)")
    dream.add_argument("--out", type=Path, default=None, metavar="PATH",
                       help="(path, default: <run>/dream.mp4) .mp4 or .gif")  # fmt: skip
    dream.add_argument("--context", type=int, default=5, metavar="INT", help="(int, default: 5)")
    dream.add_argument("--policy", choices=["replay", "agent"], default="replay",
                       help="(replay | agent, default: replay)")  # fmt: skip
    dream.add_argument("--episode", type=int, default=0, metavar="INT",
                       help="(int, default: 0) replay episode; -1: the newest")  # fmt: skip
    dream.add_argument("--device", default=None, metavar="STR", help="(str, default: the run's)")
    dream.add_argument("--seed", type=int, default=None, metavar="INT", help="(int, default: none)")
    dream.add_argument("--checkpoint", default=None, metavar="STEP|PATH",
                       help="(int or path, default: the newest) an env step or a file")  # fmt: skip
    plot = sub.add_parser(
        "plot",
        help="learning curves of runs: mean and spread over seeds, vs env steps and wall clock",
        description=(
            "Plot a metric of several runs against env steps and against wall clock. Runs whose "
            "configs differ only in seed and logdir are one curve (mean and spread)."
        ),
    )
    plot.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories")
    plot.add_argument("--out", type=Path, default=None, metavar="PATH",
                      help="(path, default: curves.png in the first run's directory); with "
                      "several metrics, one file each: <out stem>-<metric>.png")  # fmt: skip
    plot.add_argument("--metric", nargs="+", default=["eval/return"], metavar="STR",
                      help="(list of str, default: eval/return) any logged scalars, e.g. "
                      "train/value_mean train/return_mean train/actor_entropy")  # fmt: skip
    plot.add_argument("--labels", nargs="+", default=None, metavar="STR",
                      help="(list of str, default: from configs) per run")  # fmt: skip
    plot.add_argument("--spread", choices=["minmax", "std"], default="minmax",
                      help="(minmax | std, default: minmax)")  # fmt: skip
    report = sub.add_parser(
        "report",
        help="world-model quality: open-loop error against imagination horizon per key",
        description=(
            "Score open-loop prediction on the run's replay episodes for every decoded key and "
            "the reward, against the copy-last-observation baseline; writes report.json and "
            "report.png. --source eval scores new episodes of the eval policy instead (held "
            "out from training): a model whose errors there are several times its replay's "
            "overfits its data."
        ),
    )
    report.add_argument("--run", type=Path, required=True, metavar="PATH", help="(path) run dir")
    report.add_argument("--out", type=Path, default=None, metavar="PATH",
                        help="(path, default: RUN/report) output directory")  # fmt: skip
    report.add_argument("--horizon", type=int, default=15, metavar="INT", help="(int, default: 15)")
    report.add_argument("--context", type=int, default=5, metavar="INT", help="(int, default: 5)")
    report.add_argument("--episodes", type=int, default=None, metavar="INT",
                        help="(int, default: all) the newest N episodes")  # fmt: skip
    report.add_argument("--source", default="replay", metavar="replay|eval|DIR",
                        help="(default: replay) the run's replay episodes, new eval-policy "
                        "episodes (--episodes of them, default 1), or a directory of episode "
                        "files such as another run's replay/")  # fmt: skip
    report.add_argument("--samples", type=int, default=None, metavar="INT",
                        help="(int, default: 0 for Gaussian latents, 4 for categorical) 0 "
                        "scores the prior's mode rollout, N the mean error of N sampled "
                        "rollouts")  # fmt: skip
    report.add_argument("--device", default=None, metavar="STR", help="(str, default: the run's)")
    report.add_argument("--checkpoint", default=None, metavar="STEP|PATH",
                        help="(int or path, default: the newest) env step or file")  # fmt: skip
    sittings = sub.add_parser(
        "sittings",
        help="how a run was trained: one line per invocation (resumes included)",
        description=(
            "Print the sittings of a run from its sittings.jsonl: when each invocation of rssm "
            "train started, from which step to which it went, how long it took and how it ended "
            "(done, budget, interrupted, error, or killed: no stop line)."
        ),
    )
    sittings.add_argument("--run", type=Path, required=True, metavar="PATH", help="(path) run dir")


def _dream(args: argparse.Namespace) -> int:
    from rssm.run.dream import dream

    out = args.out if args.out is not None else args.run / "dream.mp4"
    result = dream(
        args.run, steps=args.steps, out=out, context=args.context, policy=args.policy,
        episode=args.episode, device=args.device, seed=args.seed, checkpoint=args.checkpoint,
    )  # fmt: skip
    print(f"dream: {result['out']} ({result['frames']} frames, episode {result['episode']}, "
          f"policy {result['policy']})")  # fmt: skip
    for key, errors in result["mse"].items():
        base = result["copy_last"][key]
        print(
            f"  {key}: imagination MSE {errors[0]:.5f} at step 1 (copying the last observation: "
            f"{base[0]:.5f}), {errors[-1]:.5f} at step {len(errors)} ({base[-1]:.5f})"
        )
        worse = [i + 1 for i, (e, b) in enumerate(zip(errors, base, strict=True)) if e > b]
        if worse:
            print(
                f"    worse than copying the last observation at {len(worse)} of {len(errors)} "
                f"steps, from step {worse[0]}: the model may have lost what it tracked"
            )
    return 0


def _plot(args: argparse.Namespace) -> int:
    from rssm.run.plot import plot_runs

    out = args.out if args.out is not None else args.runs[0] / "curves.png"
    for metric in args.metric:
        path = out
        if len(args.metric) > 1:
            slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in metric)
            path = out.with_name(f"{out.stem}-{slug}{out.suffix}")
        result = plot_runs(args.runs, path, metric=metric, labels=args.labels, spread=args.spread)
        for name, group in result["groups"].items():
            print(f"{metric}: {name}: {group['seeds']} seed(s), final mean {group['mean'][-1]:.4g}")
        if result["random"] is not None:
            print(f"{metric}: random policy (seed episodes) {result['random']:.4g}")
        for run in result["skipped"]:
            print(f"skipped {run}: it logged no {metric}")
        print(f"plot: {result['out']}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from rssm.run.report import world_model_report

    out = args.out if args.out is not None else args.run / "report"
    result = world_model_report(
        args.run, out, horizon=args.horizon, context=args.context, episodes=args.episodes,
        device=args.device, checkpoint=args.checkpoint, source=args.source, samples=args.samples,
    )  # fmt: skip
    words = {"replay": "the run's replay", "collected": "new episodes of the eval policy",
             "directory": result["source_dir"]}  # fmt: skip
    rollout = f"{result['samples']} sampled rollouts" if result["samples"] else "the mode rollout"
    print(f"scored {result['windows']} windows of {result['episodes']} episodes "
          f"({words[result['source']]}) at {result['step']} env steps, {rollout}")  # fmt: skip
    for key, score in result["keys"].items():
        print(f"{key}: {score['metric']} at horizon {args.horizon}: model "
              f"{score['model'][-1]:.5f}, copy-last {score['copy_last'][-1]:.5f}")  # fmt: skip
    print(f"report: {result['json']} and {result['png']}")
    return 0


def _sittings(args: argparse.Namespace) -> int:
    from rssm.run.runs import load_config
    from rssm.run.sittings import SITTINGS_FILE, describe, read_sittings

    offline = load_config(args.run).run.offline  # checks that it is a run directory
    sittings = read_sittings(args.run)
    if not sittings:
        print(f"{args.run}: no {SITTINGS_FILE} (the run started before sittings were recorded)")
        return 0
    print("\n".join(describe(sittings, offline=offline)))
    return 0


def _config_help(presets: Sequence[str] | None = None) -> str:
    """The train options with the values in force after ``presets`` (``rssm train``'s default
    presets when None) and a one-line description each."""
    from rssm.config import available_presets, help_text, load_presets
    from rssm.run.run_config import Config

    names = list(presets or DEFAULT_CONFIGS)
    try:
        config: Any = load_presets(Config, names)
        source = f"after --configs {' '.join(names)}"
    except ValueError as error:  # an unknown preset: the plain defaults, and why
        config, source = Config, f"before presets ({error})"
    return (
        f"presets: {', '.join(available_presets())}\n\n"
        f"config options (--key value; type; value {source}; description); --logdir defaults "
        "to a new runs/<time>-<agent>-<env>:\n" + help_text(config, prefix="  --")
    )


def _presets_in(argv: Sequence[str]) -> list[str] | None:
    """The names after ``--configs`` on a command line (None without it)."""
    argv = list(argv)
    if "--configs" not in argv:
        return None
    names = []
    for token in argv[argv.index("--configs") + 1 :]:
        if token.startswith("-"):
            break
        names.append(token)
    return names


def _resumed_config(overrides: list[str]) -> Any:
    """``rssm train --resume`` without ``--configs``: the config.yaml of the run in ``--logdir``
    with the overrides applied (the resume itself refuses changes other than the resumable keys,
    naming them)."""
    from rssm.config import apply_overrides
    from rssm.run.run_config import Config
    from rssm.run.runs import load_config

    logdir = apply_overrides(Config(), overrides).logdir
    if logdir == Config().logdir and not Path(logdir).is_dir():
        raise ValueError(
            "--resume continues the run in --logdir: add --logdir RUN_DIR (the directory rssm "
            "train printed), or --configs to rebuild the run's config from presets"
        )
    return apply_overrides(load_config(logdir), overrides)


def _agent_train(args: argparse.Namespace, overrides: list[str]) -> int:
    from rssm.config import apply_overrides, layers, load_presets
    from rssm.run.run_config import Config, check_train_schedule, resolve_threads

    # under torchrun every rank runs this; rank 0 speaks for the run
    say = print if os.environ.get("RANK", "0") == "0" else lambda *_, **__: None
    if args.env is not None:
        overrides = ["--env.name", args.env, *overrides]
    if args.resume and args.configs is None:
        # continue a run as it was configured: its config.yaml, then the overrides
        config = _resumed_config(overrides)
    else:
        presets = args.configs or DEFAULT_CONFIGS
        config = apply_overrides(load_presets(Config, presets), overrides)
        check_train_schedule(config, layers(presets, overrides))
    if config.logdir == Config().logdir and not args.resume:
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{config.agent}-{config.env.name}"
        config = apply_overrides(config, ["--logdir", str(Path("runs") / name.replace(":", "-"))])
    threads = resolve_threads(config.run)
    if config.run.threads is None and not args.resume:  # the count in force, in config.yaml
        config = apply_overrides(config, {"run.threads": threads})
    say(
        f"run directory: {config.logdir}\n  {config.agent} on {config.env.name}, "
        f"{config.run.steps} env steps, {threads} torch thread(s) (--run.threads)",
        flush=True,
    )
    if args.older and not args.resume:
        raise ValueError("--older picks the checkpoint that --resume continues from; add --resume")
    from rssm.run.train import train  # torch: only once the arguments are known to be good

    run_dir = train(config, resume=args.resume, older=args.older)
    say(_final_returns(run_dir))
    say(f"run directory: {run_dir}")
    say(f"  config:     {run_dir / 'config.yaml'}")
    say(f"  metrics:    {run_dir / 'metrics.jsonl'} (TensorBoard: tensorboard --logdir {run_dir})")
    say(f"  checkpoint: {run_dir / 'checkpoint.pt'}")
    say(f"  videos:     {run_dir / 'videos'}")
    say(f"evaluate it: rssm eval --run {run_dir} --episodes 5")
    return 0


def _final_returns(run_dir: Path) -> str:
    """The last evaluation's return beside the random policy's (its seed episodes) on the same
    env, from the run's metrics."""
    from rssm.run.logger import read_metrics

    rows = read_metrics(run_dir)
    evals = [(r["step"], r["eval/return"]) for r in rows if r.get("eval/return") is not None]
    randoms = [r["episode/random_return"] for r in rows if "episode/random_return" in r]
    text = (
        f"final eval return: {evals[-1][1]:.1f} (env step {evals[-1][0]})"
        if evals
        else "final eval return: none (run.eval_every is 0 or no evaluation was due)"
    )
    if randoms:
        text += f"; the random policy's seed episodes returned {randoms[0]:.1f} on this env"
    return text


def _eval(args: argparse.Namespace, overrides: list[str]) -> int:
    if args.episodes < 1:
        raise ValueError(f"--episodes={args.episodes} must be >= 1")
    if overrides and not overrides[0].startswith("--"):
        raise ValueError(
            f"unexpected argument {overrides[0]!r}: overrides are dotted keys with values, "
            "e.g. --planet.horizon 12"
        )
    import statistics

    from rssm.run.evaluate import evaluate_run, video_backend
    from rssm.run.runs import load_run

    video = args.video
    if video == Path():  # --video with no path
        video = args.run / "eval.mp4"
    if video is not None:
        video_backend(Path(video))  # a bad path fails before the checkpoint loads
    run = load_run(args.run, args.device, overrides=overrides, checkpoint=args.checkpoint)
    changed = f"; overrides: {' '.join(overrides)}" if overrides else ""
    print(f"checkpoint: {run.checkpoint} (env step {run.step}){changed}", flush=True)
    # An OSError (e.g. the video's disk is full) becomes one line in main().
    returns = evaluate_run(run, args.episodes, seed=args.seed, video=video, mode=args.mode)
    mean, std = statistics.fmean(returns), statistics.pstdev(returns)
    print(f"returns: {', '.join(f'{r:.1f}' for r in returns)}; mean {mean:.1f} ± {std:.1f}")
    if video is not None:
        print(f"video: {video}")
    return 0


def _envs(args: argparse.Namespace) -> int:
    from rssm.envs import SUITES, list_envs

    if args.suite is None:
        print("suites: " + ", ".join(SUITES))
        print("builtin: " + ", ".join(list_envs("builtin")))
        return 0
    print("\n".join(list_envs(args.suite)))
    return 0


def _error_text(error: BaseException) -> str:
    """One line for the user. The library's own messages are kept; a bare OS error ("[Errno 20]
    Not a directory: 'x'") is reworded to name the path, the problem and the fix."""
    if not isinstance(error, OSError) or error.strerror is None or error.filename is None:
        return " ".join(str(error).split()) or type(error).__name__
    path = str(error.filename)
    if isinstance(error, (NotADirectoryError, FileExistsError)):
        return (
            f"cannot create {path!r}: a file is in the way where a directory is needed "
            f"({error.strerror}); choose another path"
        )
    if isinstance(error, PermissionError):
        return f"cannot write {path!r}: permission denied; choose a writable path"
    return f"{path!r}: {error.strerror}; check the path"


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors that end a command in one line: bad input and what the library raises for
    it. The library's own classes are looked up only where their modules are loaded (a module
    not loaded raised nothing), so that an argument error never imports torch."""
    errors: list[type[BaseException]] = [ValueError, TypeError, ImportError, OSError]
    for module, name in (
        ("rssm.data.driver", "EnvError"),
        ("rssm.agents.optimizer", "NonFiniteError"),
    ):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rssm`` console script; returns the exit code. Ctrl-C at any moment,
    start-up (imports) included, ends in one line and exit code 130."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        command = next((a for a in (argv or sys.argv[1:]) if not a.startswith("-")), "")
        print(f"rssm{' ' + command if command else ''}: interrupted", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser(_presets_in(argv))
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("train", "eval"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    commands = {
        "train": lambda a: _agent_train(a, extra),
        "eval": lambda a: _eval(a, extra),
        "dream": _dream,
        "plot": _plot,
        "report": _report,
        "sittings": _sittings,
        "world-model": run_world_model,
        "envs": _envs,
    }
    if args.command in ("train", "world-model"):
        from rssm.run.malloc import keep_freed_memory

        keep_freed_memory()
    try:
        return commands[args.command](args)
    except Exception as error:
        if not isinstance(error, _user_errors()):
            raise
        print(f"rssm {args.command}: error: {_error_text(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rssm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
