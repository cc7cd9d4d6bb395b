"""What a training run reports: metric means between log rows, evaluation episodes, open-loop
prediction videos and the progress bar (used by :mod:`rssm.run.train`)."""

from __future__ import annotations

import functools
import math
import sys
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rssm.data import Driver, Replay
from rssm.data.episodes import check_layouts, list_episodes, read_episode
from rssm.models.scoring import open_loop_score, windows
from rssm.run.logger import Logger
from rssm.run.run_config import Config
from rssm.run.video import open_loop_frames


class Stats:
    """Means of train metrics and episode statistics since the last log."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.last_return = math.nan
        self.random = False  # True while the seed episodes (uniform random policy) run

    def add(self, prefix: str, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.sums[prefix + name] += float(value)
            self.counts[prefix + name] += 1

    def episode(self, stats: dict[str, Any], worker: int) -> None:
        self.last_return = float(stats["return"])
        self.add("episode/", {"return": stats["return"], "length": stats["length"]})
        if self.random:  # the random policy's return on this env: a baseline for the curves
            self.add("episode/", {"random_return": stats["return"]})

    def flush(self) -> dict[str, float]:
        means = {name: total / self.counts[name] for name, total in self.sums.items()}
        self.sums.clear()
        self.counts.clear()
        return means

    def state_dict(self) -> dict[str, Any]:
        """The sums since the last log row (so a resumed run logs the same means)."""
        return {"sums": dict(self.sums), "counts": dict(self.counts), "last": self.last_return}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums.clear()
        self.counts.clear()
        self.sums.update(state["sums"])
        self.counts.update(state["counts"])
        self.last_return = float(state["last"])


def load_held_out(
    config: Config, shapes: dict[str, tuple[int, ...]]
) -> dict[str, np.ndarray] | None:
    """The windows ``[N, context + horizon, ...]`` of ``run.held_out``'s episodes that every log
    row scores (:func:`held_out_scores`); None without ``run.held_out``.

    Raises:
        ValueError: the folder holds no episode long enough, or episodes of another layout.
    """
    folder = config.run.held_out
    if folder is None:
        return None
    files, _ = list_episodes(folder)
    length = config.run.held_out_context + config.run.held_out_horizon
    if not files:
        raise ValueError(
            f"run.held_out {folder!r} holds no episode files; point it at a folder of episodes "
            "(a run's replay/ or the layout of docs/conventions.md), or drop it"
        )
    layout, files = check_layouts(files, None, shapes)
    episodes = [read_episode(file.path, layout) for file in files]
    try:
        return windows(episodes, length)
    except ValueError:
        raise ValueError(
            f"run.held_out {folder!r}: no episode has the {length} steps of "
            "run.held_out_context + run.held_out_horizon; lower them or use longer episodes"
        ) from None


def held_out_scores(agent: Any, config: Config, data: dict[str, np.ndarray]) -> dict[str, float]:
    """The world model's open-loop image prediction on the held-out windows next to the
    copy-last-frame and mean-frame baselines (:func:`rssm.models.scoring.open_loop_score`);
    nothing for a model without a decoded image."""
    model = agent.model
    images = list(model.decoder.cnn_shapes)
    if not images:
        return {}
    key = "image" if "image" in images else images[0]
    score = open_loop_score(
        model, data, config.run.held_out_context, config.run.held_out_horizon, key
    )
    return {f"held_out/open_loop_{name}": score[name]
            for name in ("model", "copy_last", "mean_frame", "ratio")}  # fmt: skip


def evaluate_episodes(agent: Any, driver: Driver, finished: list[dict[str, Any]], episodes: int):
    """``episodes`` episodes with the agent's ``eval`` policy from fresh resets; ``finished`` is
    the list that ``driver``'s episode callback appends to."""
    finished.clear()
    driver.reset()
    driver(functools.partial(agent.policy, mode="eval"), episodes=episodes)
    return finished[:episodes]


def open_loop_video(logger: Logger, agent: Any, replay: Replay, config: Config) -> None:
    """Logs ``open_loop/<key>`` videos (rows truth / prediction / error) for each image key.

    Agents without a world model (``agent.model.open_loop``) have nothing to show. Replay
    sequences may cross an episode start; the prediction does not reset there.
    """
    length = config.replay.length
    if not agent.capabilities.world_model or length < 2 or len(replay) < length:
        return
    model = agent.model
    context = min(config.run.video_context, length - 1)
    batch = model.preprocess(replay.sample(4, length))
    was_training = model.training
    model.eval()
    result = model.open_loop(batch, context)
    model.train(was_training)
    for key, pred in result.pred.items():
        if pred.dtype != torch.uint8 or pred.ndim != 5:  # images only: [B, T, H, W, C]
            continue
        frames = open_loop_frames(
            batch[key][:, :context].cpu().numpy(),
            result.true[key].cpu().numpy(),
            pred.cpu().numpy(),
        )
        logger.video(f"open_loop/{key}", frames)


class Reporter:
    """Logs on the log/eval/video schedules of ``parts`` (``rssm.run.train``'s parts) and at the
    end of the run, and drives the progress bar."""

    def __init__(self, parts: Any, logger: Logger, bar: tqdm) -> None:
        self.parts, self.logger, self.bar = parts, logger, bar
        self.clock = (time.perf_counter(), parts.counters.env_steps)

    def __call__(self, final: bool, evaluate: bool = False) -> None:
        """``final``: the run ends here (log now); ``evaluate``: also evaluate off schedule
        (a run stopped by its wall-clock budget)."""
        parts, logger = self.parts, self.logger
        counters, schedules, config = parts.counters, parts.schedules, parts.config
        step = counters.env_steps
        self.bar.update(step - self.bar.n)
        wrote = False
        scheduled = schedules.eval(step)
        if (scheduled or (evaluate and config.run.eval_every)) and config.run.eval_episodes:
            episodes = evaluate_episodes(
                parts.agent, parts.eval_driver, parts.eval_episodes, config.run.eval_episodes
            )
            logger.scalar("eval/return", float(np.mean([e["return"] for e in episodes])))
            logger.scalar("eval/length", float(np.mean([e["length"] for e in episodes])))
            wrote = True
        if schedules.video(step):
            open_loop_video(logger, parts.agent, parts.replay, config)
            wrote = True
        if schedules.log(step) or final:
            self._scalars(step)
            wrote = True
        if wrote:
            logger.write(step)

    def _scalars(self, step: int) -> None:
        """The metric means since the last row, the effective ratios and the speed."""
        counters, config = self.parts.counters, self.parts.config
        now = time.perf_counter()
        elapsed = step - self.clock[1]
        fps = elapsed / max(now - self.clock[0], 1e-9) if elapsed > 0 else None
        self.clock = (now, step) if elapsed > 0 else self.clock
        replayed = counters.updates * config.replay.batch_size * config.replay.length  # all ranks
        self.logger.scalars(self.parts.stats.flush())
        held_out = self.parts.held_out
        if held_out is not None and self.parts.agent.capabilities.world_model:
            self.logger.scalars(held_out_scores(self.parts.agent, config, held_out))
        ratios = {  # an offline run collects nothing: no ratio to collection
            "train/grad_steps_per_env_step": counters.updates / max(step, 1),
            "train/replay_ratio": replayed / max(counters.agent_steps * counters.world, 1),
            "episode/count": counters.episodes,
        }
        self.logger.scalars(
            {
                "train/updates": counters.updates,
                "train/nonfinite": counters.nonfinite,
                **({"train/ranks": counters.world} if counters.world > 1 else {}),
                **({} if counters.offline else ratios),
                **({"perf/fps": fps} if fps is not None else {}),  # none before any step
                "replay/steps": len(self.parts.replay),
            }
        )
        last = self.parts.stats.last_return
        self.bar.set_postfix(ret=f"{last:.1f}")
        if self.bar.disable:  # no terminal (e.g. a log file): a plain line per log row
            total = config.run.steps
            eta = f", ETA {duration_text((total - step) / fps)}" if fps else ""
            unit = "updates" if counters.offline else "env steps"
            rate = f"{fps:.0f} {unit}/s" if fps else f"- {unit}/s"
            episode = "" if counters.offline else f", last episode return {last:.1f}"
            print(
                f"step {step}/{total}: {rate}{eta}{episode}, {counters.updates} updates",
                file=sys.stderr,
                flush=True,
            )


def duration_text(seconds: float) -> str:
    """A duration for a person: seconds, minutes or hours."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class QuietReporter:
    """The reporter of ranks other than 0 in a data-parallel run: it fires the same schedules as
    :class:`Reporter` (so that the rank's checkpointed state matches rank 0's) and drops its
    metric sums where rank 0 writes a row, but logs, evaluates and shows nothing."""

    def __init__(self, parts: Any) -> None:
        self.parts = parts

    def __call__(self, final: bool, evaluate: bool = False) -> None:
        schedules, step = self.parts.schedules, self.parts.counters.env_steps
        schedules.eval(step)
        schedules.video(step)
        if schedules.log(step) or final:
            self.parts.stats.flush()
