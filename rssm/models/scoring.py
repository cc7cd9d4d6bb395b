"""Open-loop prediction error: the one scorer behind ``rssm world-model``, ``rssm report`` and
``rssm dream``.

A world model observes ``context`` rows of a sequence and predicts the rest from the recorded
actions (:meth:`~rssm.models.WorldModel.open_loop`). Its error per sequence and predicted step is
the mean squared error of each decoded key (images in [0, 1] per pixel, vectors and the reward as
they are), next to the copy-last baseline, which predicts the last observed row at every step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

__all__ = ["copy_last", "open_loop_errors", "step_errors"]


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
    model: torch.nn.Module, batch: Mapping[str, Tensor], context: int
) -> dict[str, dict[str, Tensor]]:
    """``{key: {"model": [B, H], "copy_last": [B, H]}}`` for every decoded key and ``reward``
    of a preprocessed batch ``[B, context + H, ...]`` (each sequence inside one episode).

    The imagined latents are the prior's mode (``open_loop(..., sample=False)``): the score is that
    of the model's single most likely prediction, comparable with the deterministic baseline. The
    model is evaluated in eval mode and left in the mode it was in.
    """
    was_training = model.training
    model.eval()
    try:
        result = model.open_loop(batch, context, sample=False)
    finally:
        model.train(was_training)
    images = model.decoder.cnn_shapes
    ours = step_errors(result.pred, result.true, images)
    baseline = step_errors(copy_last(batch, context, result.true), result.true, images)
    return {key: {"model": ours[key], "copy_last": baseline[key]} for key in ours}
