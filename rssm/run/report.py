"""World-model quality report of a trained run: open-loop error against imagination horizon.

On every window of ``context + horizon`` steps inside the run's saved episodes (or held-out
ones), the world model observes ``context`` steps and predicts the rest open-loop under the
recorded actions (``WorldModel.open_loop``: the prior's mode for Gaussian latents, the mean error
of sampled rollouts for categorical ones). The error at each horizon ``1 .. horizon`` is
averaged over windows for every decoded observation key and the reward, next to the
copy-last-observation baseline, which repeats the last observed value. A model that has learned
the dynamics beats that baseline; one that predicts the past frame at best only matches it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rssm.files import atomic_write
from rssm.models import scoring
from rssm.run.dream import forked_rng, load_run, run_episodes, world_model
from rssm.run.plot import figure, require_matplotlib, save_figure

__all__ = ["REPORT_JSON", "REPORT_PNG", "world_model_report"]

# Sampled rollouts averaged per window for categorical latents when none is asked for.
CATEGORICAL_SAMPLES = 4
REPORT_JSON = "report.json"
REPORT_PNG = "report.png"
IMAGE_METRIC = "per-pixel MSE in [0, 1] units"
VECTOR_METRIC = "MSE"


def _check_int(name: str, value: Any, low: int, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = f"an int >= {low}" + (" or None" if allow_none else "")
        raise ValueError(f"world_model_report: {name} must be {what}, got {value!r}")


def window_starts(lengths: list[int], window: int, stride: int) -> np.ndarray:
    """Start rows [N] of every ``window``-step window inside each episode of a concatenation.

    Episode ``i`` occupies rows ``sum(lengths[:i]) ..``; a window never crosses into the next
    episode. Starts are ``stride`` apart inside each episode.
    """
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    starts = [
        offset + np.arange(0, length - window + 1, stride, dtype=np.int64)
        for offset, length in zip(offsets, lengths, strict=True)
        if length >= window
    ]
    return np.concatenate(starts) if starts else np.zeros(0, np.int64)


class _Sums:
    """Running sums of per-horizon squared errors per key, for the model and copy-last."""

    def __init__(self) -> None:
        self.model: dict[str, Tensor] = {}
        self.copy_last: dict[str, Tensor] = {}
        self.count = 0

    def add(self, key: str, model: Tensor, copy_last: Tensor) -> None:
        for sums, value in ((self.model, model), (self.copy_last, copy_last)):
            sums[key] = sums[key] + value if key in sums else value

    def means(self) -> dict[str, dict[str, list[float]]]:
        keys = list(self.model)
        stacked = torch.stack([torch.stack([self.model[k], self.copy_last[k]]) for k in keys])
        values = (stacked.double() / self.count).cpu().tolist()  # one device-to-host copy
        return {k: {"model": v[0], "copy_last": v[1]} for k, v in zip(keys, values, strict=True)}


@torch.no_grad()
def open_loop_errors(
    model: Any,
    data: dict[str, np.ndarray],
    starts: np.ndarray,
    context: int,
    horizon: int,
    batch_size: int = 256,
    samples: int = 0,
) -> dict[str, dict[str, list[float]]]:
    """Mean open-loop error per horizon of the windows ``data[start : start + context +
    horizon]`` for each start, batched ``batch_size`` windows at a time.

    Args:
        model: the world model.
        data: concatenated episodes ``{key: [L, ...]}`` (observation keys, ``action``,
            ``reward``, ``is_first``, ...).
        starts: window start rows [N] (:func:`window_starts`).
        context, horizon: observed and predicted steps of each window.
        batch_size: windows per forward pass.
        samples: 0 scores the prior's mode rollout, N the mean error of N sampled rollouts
            (:func:`rssm.models.scoring.open_loop_errors`).

    Returns:
        ``{key: {"model": [horizon], "copy_last": [horizon]}}`` for every decoded key and
        ``reward``; images in [0, 1] units per pixel, vectors and reward as they are.
    """
    offsets = np.arange(context + horizon)
    sums = _Sums()
    for begin in range(0, len(starts), batch_size):
        rows = starts[begin : begin + batch_size, None] + offsets  # [B, W]
        batch = model.preprocess({key: value[rows] for key, value in data.items()})
        for key, errors in scoring.open_loop_errors(model, batch, context, samples).items():
            sums.add(key, errors["model"].sum(0), errors["copy_last"].sum(0))
        sums.count += len(rows)
    return sums.means()


def world_model_report(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    horizon: int = 15,
    context: int = 5,
    episodes: int | None = None,
    device: str | None = None,
    stride: int = 1,
    batch_size: int = 256,
    seed: int | None = 0,
    checkpoint: str | os.PathLike | int | None = None,
    source: str | os.PathLike = "replay",
    samples: int | None = None,
) -> dict[str, Any]:
    """Open-loop prediction error of a run's world model against the imagination horizon.

    Every window of ``context + horizon`` steps inside an episode (``stride`` apart) is scored:
    the model observes ``context`` steps and predicts ``horizon`` steps from the recorded actions
    (the prior's mode rollout, or sampled rollouts: ``samples``). For each decoded key and
    ``reward`` the mean squared error at horizons ``1 .. horizon`` is reported for the model and
    for the copy-last-observation baseline. By default the episodes are the run's saved training
    episodes, so this measures fit; ``source="eval"`` (new episodes of the agent's ``eval``
    policy, from starts the training never saw) or another run's ``replay/`` directory measure
    how far the model carries over to states it was not trained on. A model that fits its replay
    and misreads new episodes (a reward error several times its replay's) overfits its data.

    Writes ``out_dir/report.json`` (the returned data without the paths) and
    ``out_dir/report.png`` (one panel per key: error against horizon, model and copy-last), both
    atomically.

    Args:
        run_dir: a run directory written by ``rssm train``.
        out_dir: where the report goes (created if needed).
        horizon: predicted steps, >= 1.
        context: observed steps before predicting, >= 1.
        episodes: use the newest this many saved episodes; None: all of them (with
            ``source="eval"``: collect this many, None: 1).
        device: torch device; None uses the run's ``run.device``.
        stride: steps between the starts of consecutive windows (1: every window).
        batch_size: windows per forward pass.
        seed: seeds the posterior samples of the context steps (torch's generators of the
            caller are left as they were); None does not seed.
        checkpoint: the checkpoint to load (a step, a file name or a path); None: the newest.
        source: ``"replay"`` (the run's saved episodes; collected ones when it saved none),
            ``"eval"`` (new eval-policy episodes, env seeded ``config.seed + 20_000 + seed``)
            or a directory of episode files with the run's layout.
        samples: 0 scores the prior's mode rollout (the most likely future of Gaussian latents),
            N the mean error of N sampled rollouts; None: 0 for Gaussian latents,
            :data:`CATEGORICAL_SAMPLES` for categorical ones, whose argmax rollout drifts away
            from the states they were trained on.

    Returns:
        ``{"run_dir", "step" (env steps at the checkpoint), "context", "horizon", "episodes",
        "source": "replay" | "collected" | "directory", "source_dir" (the directory, or
        None), "samples" (0: the mode rollout), "windows", "stride", "horizons": [1 .. horizon],
        "keys": {key: {"kind": "image" | "vector" | "reward", "metric": str, "model":
        [horizon], "copy_last": [horizon], "ratio": mean model / mean copy_last}},
        "json": Path, "png": Path}``.

    Raises:
        FileNotFoundError: no run directory or checkpoint.
        ValueError: a bad argument (named), an agent without a world model, a source that is
            not one (:func:`rssm.run.dream.run_episodes`), or episodes too short for one window
            (with the longest length).
        ImportError: matplotlib is not installed (the JSON is not written either).
    """
    for name, value, low in (("horizon", horizon, 1), ("context", context, 1)):
        _check_int(name, value, low)
    _check_int("stride", stride, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("episodes", episodes, 1, allow_none=True)
    _check_int("samples", samples, 0, allow_none=True)
    require_matplotlib()  # fail before the slow part
    run = load_run(run_dir, device, checkpoint=checkpoint)
    model = world_model(run)
    if samples is None:
        samples = CATEGORICAL_SAMPLES if model.rssm.latent == "categorical" else 0
    eps, kind = run_episodes(run_dir, run, episodes, seed, source)
    lengths = [len(e["is_first"]) for e in eps]
    starts = window_starts(lengths, context + horizon, stride)
    if not len(starts):
        raise ValueError(
            f"world_model_report: no episode has context + horizon = {context + horizon} steps "
            f"(the longest has {max(lengths)}); use horizon <= {max(lengths) - context}"
            + (" or fewer context steps" if max(lengths) - context < 1 else "")
        )
    data = {key: np.concatenate([e[key] for e in eps]) for key in eps[0]}
    del eps
    model.eval()
    param = next(model.parameters())
    with forked_rng(param.device, seed):
        errors = open_loop_errors(model, data, starts, context, horizon, batch_size, samples)
    report = {
        "run_dir": str(run_dir),
        "step": run.step,
        "context": context,
        "horizon": horizon,
        "episodes": len(lengths),
        "source": kind,
        "source_dir": str(source) if kind == "directory" else None,
        "samples": samples,
        "windows": int(len(starts)),
        "stride": stride,
        "horizons": list(range(1, horizon + 1)),
        "keys": {key: _describe(model, key, value) for key, value in errors.items()},
    }
    out_dir = Path(out_dir)
    json_path = _write_json(out_dir / REPORT_JSON, report)
    png_path = _plot(report, out_dir / REPORT_PNG)
    return {**report, "json": json_path, "png": png_path}


_SOURCE_WORDS = {"replay": "replay", "collected": "new eval", "directory": "other"}


def _describe(model: Any, key: str, errors: dict[str, list[float]]) -> dict[str, Any]:
    kind = "image" if key in model.decoder.cnn_shapes else "reward" if key == "reward" else "vector"
    model_mean, copy_mean = np.mean(errors["model"]), np.mean(errors["copy_last"])
    ratio = float(model_mean / copy_mean) if copy_mean > 0 else math.inf
    return {
        "kind": kind,
        "metric": IMAGE_METRIC if kind == "image" else VECTOR_METRIC,
        "model": errors["model"],
        "copy_last": errors["copy_last"],
        "ratio": ratio,
    }


def _json_safe(value: Any) -> Any:
    """Non-finite floats become None (JSON has no NaN), as in ``metrics.jsonl``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _write_json(path: Path, data: dict[str, Any]) -> Path:
    return atomic_write(path, json.dumps(_json_safe(data), indent=2, allow_nan=False) + "\n")


def _plot(report: dict[str, Any], path: Path) -> Path:
    keys = report["keys"]
    columns = min(len(keys), 3)
    rows = math.ceil(len(keys) / columns)
    fig = figure(4.0 * columns, 3.2 * rows)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    horizons = report["horizons"]
    for ax, (key, entry) in zip(axes, keys.items(), strict=False):
        ax.plot(horizons, entry["model"], marker="o", markersize=3, label="model")
        ax.plot(horizons, entry["copy_last"], linestyle="--", color="gray", label="copy last")
        ax.set_title(key)
        ax.set_xlabel("imagination horizon (steps)")
        ax.set_ylabel(entry["metric"])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    rollout = f"{report['samples']} sampled rollouts" if report["samples"] else "mode rollout"
    fig.suptitle(
        f"open-loop error ({rollout}) after {report['context']} observed steps, "
        f"{report['windows']} windows "
        f"of {report['episodes']} {_SOURCE_WORDS[report['source']]} episodes at "
        f"{report['step']} env steps"
    )
    return save_figure(fig, path)
