"""Open-loop prediction error: the one scorer behind ``rssm world-model``, ``rssm report`` and
``rssm dream``.

A world model observes ``context`` rows of a sequence and predicts the rest from the recorded
actions (:meth:`~rssm.models.WorldModel.open_loop`). Its error per sequence and predicted step is
the mean squared error of each decoded key (images in [0, 1] per pixel, vectors and the reward as
they are), next to the copy-last baseline, which predicts the last observed row at every step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "OpenLoopScore",
    "copy_last",
    "open_loop_errors",
    "open_loop_score",
    "step_errors",
    "windows",
]


def step_errors(
    pred: Mapping[str, Tensor], true: Mapping[str, Tensor], image_keys: Iterable[str] = ()
) -> dict[str, Tensor]:
    """Mean squared error ``[B, H]`` per sequence and step of each key of ``pred`` ([B, H, ...]
    tensors); keys in ``image_keys`` (uint8) are scaled to [0, 1] first."""
    images = set(image_keys)
    errors = {}
    for key, value in pred.items():
        scale = 255.0 if key in images else 1.0
        diff = (value.to(torch.float32) - true[key].to(torch.float32)) / scale
        errors[key] = diff.square().flatten(2).mean(-1) if diff.dim() > 2 else diff.square()
    return errors


def copy_last(
    batch: Mapping[str, Tensor], context: int, true: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """The baseline prediction: row ``context - 1`` of each key of ``true``, repeated."""
    return {key: batch[key][:, context - 1 : context].expand_as(true[key]) for key in true}


@torch.no_grad()
def open_loop_errors(
    model: torch.nn.Module, batch: Mapping[str, Tensor], context: int, samples: int = 0
) -> dict[str, dict[str, Tensor]]:
    """``{key: {"model": [B, H], "copy_last": [B, H]}}`` for every decoded key and ``reward``
    of a preprocessed batch ``[B, context + H, ...]`` (each sequence inside one episode).

    ``samples=0``: the imagined latents are the prior's mode (``open_loop(..., sample=False)``),
    the model's single most likely prediction for Gaussian latents, comparable with the
    deterministic baseline. ``samples=N``: the mean error of N sampled rollouts (the
    imagination the agent learns from; the draws come from torch's global generator). For
    categorical latents the per-step argmax rollout leaves the states the model was trained on
    and drifts, so sample those. The model is evaluated in eval mode and left in the mode it was
    in.
    """
    was_training = model.training
    model.eval()
    images = model.decoder.cnn_shapes
    draws = max(samples, 1)
    total: dict[str, Tensor] = {}
    try:
        for _ in range(draws):
            result = model.open_loop(batch, context, sample=samples > 0)
            for key, value in step_errors(result.pred, result.true, images).items():
                total[key] = total[key] + value if key in total else value
    finally:
        model.train(was_training)
    baseline = step_errors(copy_last(batch, context, result.true), result.true, images)
    return {key: {"model": total[key] / draws, "copy_last": baseline[key]} for key in total}


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
    model: Any, data: dict[str, np.ndarray], context: int, horizon: int, key: str = "image"
) -> OpenLoopScore:
    """Open-loop image prediction error over ``horizon`` imagined steps after ``context`` observed.

    The imagined latents are the prior's mode (``open_loop(..., sample=False)``): the score is that
    of the model's single most likely prediction, comparable with the deterministic baseline.

    Args:
        model: the world model (:class:`~rssm.models.WorldModel`).
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
