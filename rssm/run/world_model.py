"""Training a world model alone, on experience from a fixed (random) policy.

This is the smallest complete job of the library: collect episodes, fit the world model, and
measure how well it predicts the future open-loop against the copy-last-frame baseline. The
``rssm train`` command, the world-model learning test and ``docs/results.md`` all run this code.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from rssm.agents.optimizer import MAX_NONFINITE, NonFiniteError, Optimizer
from rssm.data import Driver, RandomPolicy, Replay, record_episodes
from rssm.envs import env_spec, make_env
from rssm.models import WorldModel, WorldModelConfig, world_model_config
from rssm.models.scoring import open_loop_errors
from rssm.run.reporting import duration_text
from rssm.run.run_config import WorldModelRun

__all__ = [
    "OpenLoopScore",
    "WorldModelRun",
    "collect_episodes",
    "open_loop_score",
    "tiny_config",
    "train_world_model",
]


def tiny_config(latent: str) -> WorldModelConfig:
    """A small world model (0.3-0.4M parameters at 16x16) that learns the built-in env on a CPU.

    With the :class:`WorldModelRun` defaults (16x16 images, 2500 updates of 16x16 sequences) it
    predicts the point mass open-loop clearly better than copying the last frame
    (docs/results.md).

    Args:
        latent: ``"gaussian"`` (PlaNet/V1 style: free nats, MSE reward) or ``"categorical"``
            (V3 style: 8x8 categoricals, dyn/rep KL, two-hot reward).
    """
    if latent not in ("gaussian", "categorical"):
        raise ValueError(f"tiny_config: latent={latent!r} must be 'gaussian' or 'categorical'")
    base = world_model_config(
        "planet" if latent == "gaussian" else "dreamer_v3",
        "xs" if latent == "categorical" else None,
    )
    rssm = dataclasses.replace(base.rssm, deter=128, units=128)
    if latent == "categorical":
        rssm = dataclasses.replace(rssm, stoch=8, classes=8)
    else:
        rssm = dataclasses.replace(rssm, stoch=16)
    encoder = dataclasses.replace(base.encoder, cnn_depth=16, mlp_units=128, mlp_layers=1)
    decoder = dataclasses.replace(base.decoder, cnn_depth=16, mlp_units=128, mlp_layers=1)
    reward = dataclasses.replace(base.reward_head, units=128, layers=1)
    cont = dataclasses.replace(base.cont_head, units=128, layers=1)
    kl = base.kl
    if latent == "gaussian":
        kl = dataclasses.replace(kl, free_nats=1.0)
    return dataclasses.replace(
        base, rssm=rssm, encoder=encoder, decoder=decoder, reward_head=reward, cont_head=cont, kl=kl
    )


def build_config(run: WorldModelRun) -> WorldModelConfig:
    """The world-model config a run uses."""
    if run.preset.startswith("tiny-"):
        return tiny_config(run.preset.removeprefix("tiny-"))
    return world_model_config(run.preset, run.size)


def collect_episodes(
    env_name: str,
    episodes: int,
    seed: int,
    env_options: dict[str, Any] | None = None,
    on_episode: Callable[[int], None] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Random-policy episodes as dicts of ``[T, ...]`` arrays (one row per step, DESIGN.md §3);
    ``on_episode(count)`` is called after each finished episode (progress)."""
    env = make_env(env_name, seed=seed, **(env_options or {}))
    spec = env_spec(env)
    driver = Driver([env], seed=seed)
    if on_episode is not None:
        done = [0]

        def count(stats: dict[str, Any], worker: int) -> None:
            done[0] += 1
            on_episode(done[0])

        driver.on_episode(count)
    try:
        return record_episodes(driver, RandomPolicy(spec.action_dim, spec.discrete, seed), episodes)
    finally:
        driver.close()


def windows(episodes: list[dict[str, np.ndarray]], length: int) -> dict[str, np.ndarray]:
    """Non-overlapping windows of ``length`` steps inside each episode: ``[N, length, ...]``."""
    rows: dict[str, list[np.ndarray]] = {key: [] for key in episodes[0]}
    for episode in episodes:
        steps = len(episode["is_first"])
        for start in range(0, steps - length + 1, length):
            for key, value in episode.items():
                rows[key].append(value[start : start + length])
    if not rows["is_first"]:
        raise ValueError(f"windows: no episode has {length} steps")
    return {key: np.stack(value) for key, value in rows.items()}


class OpenLoopScore(dict):
    """Per-pixel mean squared error in [0, 1] units of open-loop prediction and of baselines.

    Keys: ``model``, ``copy_last`` (repeat the last observed frame), ``mean_frame`` (predict the
    average held-out frame, which knows nothing of the episode), ``ratio`` (model / copy_last), and
    ``model_per_step`` / ``copy_last_per_step`` (lists over the horizon).
    """


@torch.no_grad()
def open_loop_score(
    model: WorldModel, data: dict[str, np.ndarray], context: int, horizon: int, key: str = "image"
) -> OpenLoopScore:
    """Open-loop image prediction error over ``horizon`` imagined steps after ``context`` observed.

    The imagined latents are the prior's mode (``open_loop(..., sample=False)``): the score is that
    of the model's single most likely prediction, comparable with the deterministic baseline.

    Args:
        model: the world model.
        data: ``[N, >= context + horizon, ...]`` windows that each lie inside one episode.
        context, horizon: observed and predicted steps.
        key: the image key to score.
    """
    batch = model.preprocess({k: v[:, : context + horizon] for k, v in data.items()})
    errors = open_loop_errors(model, batch, context)[key]
    true = batch[key][:, context:].float() / 255.0
    mean_frame = true.mean(dim=(0, 1), keepdim=True)
    model_err, copy_err = errors["model"].mean(0), errors["copy_last"].mean(0)
    score = OpenLoopScore(
        model=float(model_err.mean()),
        copy_last=float(copy_err.mean()),
        mean_frame=float(((mean_frame - true) ** 2).mean()),
        model_per_step=[float(x) for x in model_err],
        copy_last_per_step=[float(x) for x in copy_err],
    )
    score["ratio"] = score["model"] / max(score["copy_last"], 1e-12)
    return score


def batches(replay: Replay, batch_size: int, length: int) -> Iterator[dict[str, np.ndarray]]:
    """Endless ``[B, T]`` batches from ``replay``."""
    while True:
        yield replay.sample(batch_size, length)


def train_world_model(
    run: WorldModelRun,
    on_metrics: Callable[[int, dict[str, float]], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> tuple[WorldModel, dict[str, Any]]:
    """Collect random-policy data, train a world model and score it open-loop on held-out data.

    Args:
        run: the run's settings.
        on_metrics: called as ``on_metrics(update, metrics)`` every ``eval_every`` updates and at
            the end (metrics include ``open_loop_model`` and ``open_loop_copy_last``).
        say: called with a line for a person at each phase: what is collected, how long the
            collection will take (timed on its first episode), what is trained.

    Returns:
        The trained model and a summary dict (final open-loop score, wall-clock seconds, ...).
    """
    torch.manual_seed(run.seed)
    start = time.perf_counter()
    # The model first (the collection draws from numpy only, so the weights are the same): an
    # observation it cannot take fails here, before minutes of collection.
    spec = env_spec(make_env(run.env, **run.env_options))
    model = WorldModel(spec.obs_space, spec.action_dim, build_config(run)).to(run.device)
    # The agents' optimiser step: Adam, global-norm clip, and a skip of any update whose loss or
    # gradients are not finite (counted; 20 in a row stop the run).
    optimizer = Optimizer(model.parameters(), name="model", lr=run.lr, eps=run.eps, clip=run.clip)
    skipped = streak = 0
    total = run.train_episodes + run.eval_episodes
    if say is not None:
        say(f"collecting {total} random-policy episodes of {run.env} ({run.train_episodes} to "
            f"train on, {run.eval_episodes} held out)")  # fmt: skip

    def progress(count: int) -> None:
        if say is not None and count == 1:
            took = time.perf_counter() - start
            say(f"  the first episode took {took:.1f} s: about {duration_text(took * (total - 1))} "
                "for the rest")  # fmt: skip

    train_eps = collect_episodes(
        run.env, run.train_episodes, run.seed, run.env_options, on_episode=progress
    )
    eval_eps = collect_episodes(run.env, run.eval_episodes, run.seed + 10_000, run.env_options)
    if say is not None:
        say(f"collected in {duration_text(time.perf_counter() - start)}; training {run.updates} "
            f"updates of {run.batch_size}x{run.length}")  # fmt: skip
    replay = Replay(sum(len(e["is_first"]) for e in train_eps), seed=run.seed)
    for episode in train_eps:
        for t in range(len(episode["is_first"])):
            replay.add({k: v[t] for k, v in episode.items()})
    held_out = windows(eval_eps, run.context + run.horizon)
    collect_seconds = time.perf_counter() - start
    history = []
    data = batches(replay, run.batch_size, run.length)
    for update in range(1, run.updates + 1):
        output = model.loss(model.preprocess(next(data)))
        step = optimizer.step(output.loss)
        if bool(step["model_nonfinite"]):
            skipped, streak = skipped + 1, streak + 1
            if streak >= MAX_NONFINITE:
                raise NonFiniteError(
                    f"stopped at update {update}: {streak} updates in a row had a non-finite "
                    "loss or gradient; lower --lr or check the environment's observations"
                )
        else:
            streak = 0
        if update % run.eval_every == 0 or update == run.updates:
            metrics = {k: float(v) for k, v in output.metrics.items()}
            metrics.update(loss=output.loss.item(), grad_norm=float(step["model_grad_norm"]))
            metrics.update(nonfinite=skipped)
            score = open_loop_score(model, held_out, run.context, run.horizon)
            metrics.update(
                open_loop_model=score["model"],
                open_loop_copy_last=score["copy_last"],
                open_loop_mean_frame=score["mean_frame"],
                open_loop_ratio=score["ratio"],
                seconds=time.perf_counter() - start,
            )
            history.append({"update": update, **metrics})
            if on_metrics is not None:
                on_metrics(update, metrics)
    summary = {
        "open_loop": score,
        "seconds": time.perf_counter() - start,
        "collect_seconds": collect_seconds,
        "train_steps": len(replay),
        "held_out_windows": int(held_out["is_first"].shape[0]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
    }
    return model, summary
