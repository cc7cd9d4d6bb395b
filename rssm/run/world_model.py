"""Training a world model alone, on experience from a fixed (random) policy.

This is the smallest complete job of the library: collect episodes, fit the world model, and
measure how well it predicts the future open-loop against the copy-last-frame baseline. It is
``rssm train``'s offline path with the world-model-only agent (:func:`job_config`): one training
loop, one kind of checkpoint. ``rssm world-model``, the world-model learning test and
``docs/results.md`` all run this code.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rssm.agents.configs import WorldModelAgentConfig
from rssm.data import Driver, RandomPolicy, record_episodes
from rssm.data.episodes import write_episode
from rssm.envs import EnvSpec, env_spec, make_env
from rssm.models import WorldModel, WorldModelConfig, world_model_config
from rssm.models.scoring import OpenLoopScore, open_loop_score, windows
from rssm.run.checkpoint import load_checkpoint
from rssm.run.logger import read_metrics
from rssm.run.reporting import duration_text
from rssm.run.resume import CHECKPOINT_FILE
from rssm.run.run_config import Config, EnvConfig, ReplayConfig, RunConfig, WorldModelRun
from rssm.run.train import train

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


def job_config(run: WorldModelRun, logdir: Path) -> Config:
    """The ``rssm train`` config of a world-model job: the world-model-only agent trained
    offline from ``logdir/episodes`` for ``run.updates`` updates, scored on ``logdir/held_out``
    at every log row (every ``run.eval_every`` updates and at the end)."""
    options = dict(run.env_options)
    env = {key: options.pop(key) for key in ("image_size", "action_repeat", "time_limit")
           if key in options}  # fmt: skip
    return Config(
        agent="world_model",
        seed=run.seed,
        logdir=str(logdir),
        env=EnvConfig(name=run.env, options=options, **env),
        world_model=build_config(run),
        world_model_agent=WorldModelAgentConfig(lr=run.lr, eps=run.eps, clip=run.clip),
        replay=ReplayConfig(
            capacity=1,
            batch_size=run.batch_size,
            length=run.length,
            directory=str(logdir / EPISODES),
        ),  # fmt: skip
        run=RunConfig(
            steps=run.updates,
            offline=True,
            seed_episodes=0,
            eval_every=0,
            video_every=0,
            log_every=run.eval_every,
            checkpoint_every=run.updates,
            held_out=str(logdir / HELD_OUT),
            held_out_context=run.context,
            held_out_horizon=run.horizon,
            device=run.device,
            tensorboard=False,
            threads=torch.get_num_threads(),
        ),  # fmt: skip
    )


def check_job(run: WorldModelRun, logdir: Path) -> tuple[Config, EnvSpec]:
    """The job's config and its env's spec, after the checks that fail before anything is
    collected or written: a known preset and size, an env that builds, a ``logdir`` that holds
    no run."""
    config = job_config(run, logdir)
    env = make_env(run.env, **run.env_options)
    spec = env_spec(env)
    env.close()
    if (logdir / "config.yaml").exists() or (logdir / "config.json").exists():
        raise ValueError(f"logdir {str(logdir)!r} already holds a run; choose another --logdir")
    return config, spec


EPISODES, HELD_OUT = "episodes", "held_out"  # a job's folders of training and held-out episodes


def train_world_model(
    run: WorldModelRun,
    say: Callable[[str], None] | None = None,
    *,
    logdir: str | os.PathLike | None = None,
    on_start: Callable[[], None] | None = None,
) -> tuple[WorldModel, dict[str, Any]]:
    """Collect random-policy episodes, then train a world model on them offline with
    ``rssm train``'s loop (:func:`job_config`: the ``world_model`` agent, the agents' optimiser
    step with its non-finite guard, atomic exact-resume checkpoints), scoring it open-loop on
    held-out episodes at every log row.

    Args:
        run: the job's settings.
        say: called with a line for a person at each phase: what is collected, how long the
            collection will take (timed on its first episode), what is trained.
        logdir: the run directory (``config.yaml``, ``metrics.jsonl``, ``checkpoint.pt``, and
            the episodes in ``episodes/`` and ``held_out/``); None: a temporary one, deleted.
        on_start: called once the checks of :func:`check_job` passed, before anything is
            collected or written (e.g. to print the run directory).

    Returns:
        The trained model and a summary: the final open-loop score (``open_loop``), wall-clock
        ``seconds`` (``collect_seconds`` of them collecting), ``train_steps``,
        ``held_out_windows``, ``parameters``, the run directory (None when temporary) and
        ``history``: one dict per log row (``update``, ``loss``, ``grad_norm``, ``nonfinite``,
        ``open_loop_model``, ``open_loop_copy_last``, ... and the model's metrics).

    Raises:
        NonFiniteError: ``MAX_NONFINITE`` updates in a row had a non-finite loss or gradient.
    """
    if logdir is None:
        with tempfile.TemporaryDirectory(prefix="rssm-world-model-") as folder:
            model, summary = train_world_model(
                run, say, logdir=Path(folder) / "run", on_start=on_start
            )
        return model, {**summary, "logdir": None}
    logdir = Path(logdir)
    start = time.perf_counter()
    config, spec = check_job(run, logdir)
    WorldModel(spec.obs_space, spec.action_dim, config.world_model)  # ... or a model that fits
    if on_start is not None:
        on_start()
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
    for folder, episodes in ((EPISODES, train_eps), (HELD_OUT, eval_eps)):
        for episode in episodes:
            write_episode(logdir / folder, episode)
    steps = sum(len(e["is_first"]) for e in train_eps)
    config = dataclasses.replace(config, replay=dataclasses.replace(config.replay, capacity=steps))
    collect_seconds = time.perf_counter() - start
    if say is not None:
        say(f"collected in {duration_text(collect_seconds)}; training {run.updates} updates of "
            f"{run.batch_size}x{run.length}")  # fmt: skip
    train(config)
    model = WorldModel(spec.obs_space, spec.action_dim, config.world_model).to(run.device)
    state = load_checkpoint(logdir / CHECKPOINT_FILE)
    model.load_state_dict(state["agent"]["model"])
    held_out = windows(eval_eps, run.context + run.horizon)
    history = [_history_row(row) for row in read_metrics(logdir)]
    summary = {
        "open_loop": open_loop_score(model, held_out, run.context, run.horizon),
        "seconds": time.perf_counter() - start,
        "collect_seconds": collect_seconds,
        "train_steps": steps,
        "held_out_windows": int(held_out["is_first"].shape[0]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "logdir": logdir,
        "history": history,
    }
    return model, summary


def _history_row(row: dict[str, Any]) -> dict[str, Any]:
    """A metrics row of the job as the summary's history lists it."""
    out: dict[str, Any] = {"update": row["step"]}
    for key, value in row.items():
        if key.startswith("train/model_"):
            out[key.removeprefix("train/model_")] = value  # loss, grad_norm, nonfinite
        elif key.startswith(("train/", "held_out/")):
            out.setdefault(key.partition("/")[2], value)
    out["nonfinite"] = row.get("train/nonfinite", 0)  # skipped updates so far
    out["seconds"] = row.get("time")
    return out
