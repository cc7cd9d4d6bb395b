"""Learning curves of runs: a metric against env steps and against wall-clock time.

Runs that are seeds of one experiment (the same ``config.yaml`` apart from ``seed`` and
``logdir``, or the same explicit label) form a group, drawn as the mean over seeds with a shaded
spread. Seeds log at different steps, so each seed is interpolated linearly onto a common grid:
the union of the seeds' steps (or times) inside the range that every seed covers, so nothing is
extrapolated.

matplotlib is an optional dependency (extra ``plot``); it is imported when a figure is drawn, and
figures are rendered with the Agg canvas directly, without touching pyplot's global backend.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from rssm.files import atomic_path
from rssm.run.logger import METRICS_FILE, read_metrics, wall_clock
from rssm.run.sittings import read_sittings

__all__ = ["figure", "plot_runs", "require_matplotlib", "save_figure"]

Spread = Literal["minmax", "std"]
_IGNORED_KEYS = ("seed", "logdir")  # keys in which seeds of one experiment differ
_ROW_KEYS = ("step", "time")
_NAME_KEYS = 3  # config keys shown in a group's name
RANDOM_RETURN = "episode/random_return"  # logged by rssm train during its seed episodes
RETURN_METRICS = ("eval/return", "episode/return")  # drawn with the random policy's return


# ------------------------------------------------------------------------------ matplotlib


def require_matplotlib() -> None:
    """Raises an ImportError that names the extra to install when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            'plotting needs matplotlib: pip install "rssm[plot]" (or pip install matplotlib)'
        ) from None


def figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches on an Agg canvas (no pyplot, so
    the process's matplotlib backend is left alone).

    Raises:
        ImportError: matplotlib is not installed (names the extra to install).
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Saves ``fig`` atomically (temporary file in the same folder, then rename).

    The format follows the suffix of ``path`` (``.png``, ``.pdf``, ``.svg``, ...).
    """
    path = Path(path)
    if not path.suffix:
        raise ValueError(f"figure path {str(path)!r} has no suffix; use e.g. {path.name}.png")
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, format=path.suffix[1:].lower(), dpi=dpi)
    return path


# ------------------------------------------------------------------------------ reading runs


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _experiment(run_dir: Path) -> dict[str, Any] | None:
    """The run's flattened ``config.yaml`` without the keys seeds differ in; None without one."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(
            f"plot_runs: {path} is not valid YAML{where}; restore it, or delete it to plot the "
            "run as a group of its own"
        ) from None
    return {k: v for k, v in _flat(data).items() if k not in _IGNORED_KEYS}


def _curves(
    rows: list[dict[str, Any]], metric: str, sitting_starts: Sequence[int] = ()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, seconds, values)`` of the rows that logged ``metric`` (finite values only).

    Seconds run over the run's sittings (``logger.wall_clock``: a resumed run's logger restarts
    its time at 0). Steps that go back (a resume from an older checkpoint) replace the rows
    they repeat, so steps increase strictly.
    """
    steps: list[float] = []
    times: list[float] = []
    values: list[float] = []
    for row, seconds in zip(rows, wall_clock(rows, sitting_starts), strict=True):
        value = row.get(metric)
        if value is None or not np.isfinite(value):
            continue
        step = float(row["step"])
        while steps and steps[-1] >= step:
            steps.pop()
            times.pop()
            values.pop()
        steps.append(step)
        times.append(seconds)
        values.append(float(value))
    return np.array(steps), np.array(times), np.array(values)


def _aggregate(
    xs: list[np.ndarray], ys: list[np.ndarray], spread: Spread, what: str
) -> dict[str, np.ndarray]:
    """Seeds interpolated onto the union of their x values inside the range all of them cover."""
    low_x, high_x = max(x[0] for x in xs), min(x[-1] for x in xs)
    if low_x > high_x:
        ranges = ", ".join(f"[{x[0]:g}, {x[-1]:g}]" for x in xs)
        raise ValueError(
            f"plot_runs: the seeds of {what} do not overlap (ranges {ranges}); give them "
            "different labels to plot them apart"
        )
    grid = np.unique(np.concatenate(xs))
    grid = grid[(grid >= low_x) & (grid <= high_x)]
    values = np.stack([np.interp(grid, x, y) for x, y in zip(xs, ys, strict=True)])  # [S, G]
    mean = values.mean(0)
    if spread == "std":
        std = values.std(0)
        low, high = mean - std, mean + std
    else:
        low, high = values.min(0), values.max(0)
    return {"x": grid, "mean": mean, "low": low, "high": high}


def _group_names(experiments: list[dict[str, Any] | None], dirs: list[Path]) -> list[str]:
    """Names from the config keys in which the groups differ (``key=value, ...``, at most
    ``_NAME_KEYS`` of them); a name that would repeat gets its first run's directory appended."""
    known = [e for e in experiments if e is not None]
    keys = sorted({k for e in known for k in e})
    varying = [k for k in keys if len({repr(e.get(k)) for e in known}) > 1]
    names = []
    for experiment, run_dir in zip(experiments, dirs, strict=True):
        if experiment is None:
            name = run_dir.name
        elif varying:
            name = ", ".join(f"{k}={experiment.get(k)}" for k in varying[:_NAME_KEYS])
            name += ", ..." if len(varying) > _NAME_KEYS else ""
        else:
            parts = [str(experiment[k]) for k in ("agent", "env.name") if k in experiment]
            name = " ".join(parts) or run_dir.name
        names.append(name)
    return [
        f"{name} [{run_dir}]" if names.count(name) > 1 else name
        for name, run_dir in zip(names, dirs, strict=True)
    ]


def _groups(dirs: list[Path], labels: Sequence[str] | None) -> dict[str, list[int]]:
    """Group name -> indices of its runs, in the order the groups first appear."""
    if labels is not None:
        names = [str(label) for label in labels]
    else:
        experiments = [_experiment(d) for d in dirs]
        firsts: list[int] = []  # index of the first run of each distinct experiment
        owner = []
        for i, experiment in enumerate(experiments):
            match = next(
                (j for j in firsts if experiment is not None and experiments[j] == experiment),
                None,
            )
            if match is None:
                firsts.append(i)
                match = i
            owner.append(match)
        first_names = _group_names([experiments[j] for j in firsts], [dirs[j] for j in firsts])
        by_first = dict(zip(firsts, first_names, strict=True))
        names = [by_first[j] for j in owner]
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name, []).append(i)
    return groups


def _check_inputs(run_dirs: Sequence[str | os.PathLike], labels: Sequence[str] | None):
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("plot_runs: run_dirs is empty; pass at least one run directory")
    for run_dir in dirs:
        if not (run_dir / METRICS_FILE).is_file():
            what = "does not exist" if not run_dir.exists() else f"holds no {METRICS_FILE}"
            raise ValueError(
                f"plot_runs: run directory {str(run_dir)!r} {what}; pass directories written by "
                "`rssm train`"
            )
    if labels is not None and (isinstance(labels, str) or len(labels) != len(dirs)):
        count = 1 if isinstance(labels, str) else len(labels)
        raise ValueError(
            f"plot_runs: labels has {count} entries for {len(dirs)} run directories; give one "
            "label per run (runs with the same label are seeds of one group)"
        )
    return dirs


def _missing_metric(metric: str, all_rows: list[list[dict[str, Any]]]) -> ValueError:
    logged = sorted({k for rows in all_rows for row in rows for k in row} - set(_ROW_KEYS))
    close = difflib.get_close_matches(metric, logged, n=len(logged), cutoff=0.0)
    return ValueError(
        f"plot_runs: no run logged metric {metric!r}; the runs logged: "
        f"{', '.join(close) or 'nothing'} (closest first)"
    )


# ------------------------------------------------------------------------------ plotting


def plot_runs(
    run_dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    metric: str = "eval/return",
    labels: Sequence[str] | None = None,
    spread: Spread = "minmax",
) -> dict[str, Any]:
    """Draws ``metric`` of runs against env steps and against wall-clock time into ``out``.

    Runs with the same ``config.yaml`` apart from ``seed`` and ``logdir`` (or the same label) are
    seeds of one group: one colour, the mean over seeds as a line and the spread shaded, with the
    group's name and seed count in the legend. A run without ``config.yaml`` is a group of its
    own. A run that never logged ``metric`` (e.g. no evaluation yet) is left out and listed under
    ``"skipped"``.

    Args:
        run_dirs: run directories, each holding ``metrics.jsonl``.
        out: image path, written atomically; the format follows the suffix (``.png``, ``.pdf``).
        metric: the logged scalar to plot, e.g. ``eval/return`` or ``episode/return``.
        labels: one group name per run directory instead of grouping by config.
        spread: ``"minmax"`` shades min to max over seeds, ``"std"`` the mean +- one std.

    Returns:
        ``{"out": Path, "metric": str, "skipped": [run dirs], "random": the random policy's
        return drawn as a dashed line (return metrics of runs that logged it; else None),
        "time_unit": "seconds" | "minutes" | "hours", "groups": {name: {"runs": [run dirs],
        "seeds": int, "steps", "mean", "low", "high", "seconds", "time_mean", "time_low",
        "time_high"}}}``; the curves are float numpy
        arrays ``[G]`` on the group's step grid (``steps``) and wall-clock grid (``seconds``).

    Raises:
        ValueError: no run directories, a directory without ``metrics.jsonl`` (named), labels of
            the wrong length, or a metric that no run logged (listing the logged ones, closest
            first).
        ImportError: matplotlib is not installed.
    """
    if spread not in ("minmax", "std"):
        raise ValueError(f"plot_runs: spread={spread!r}; use 'minmax' or 'std'")
    dirs = _check_inputs(run_dirs, labels)
    require_matplotlib()
    all_rows = [read_metrics(d) for d in dirs]
    curves = [
        _curves(rows, metric, [s.from_env_steps for s in read_sittings(d)])
        for rows, d in zip(all_rows, dirs, strict=True)
    ]
    if not any(len(steps) for steps, _, _ in curves):
        raise _missing_metric(metric, all_rows)
    groups: dict[str, dict[str, Any]] = {}
    for name, members in _groups(dirs, labels).items():
        members = [i for i in members if len(curves[i][0])]
        if not members:
            continue
        values = [curves[i][2] for i in members]
        by_step = _aggregate([curves[i][0] for i in members], values, spread, f"{name!r} in steps")
        # Against wall clock: the same per-step statistics, placed at the seeds' mean time of
        # reaching each step (seeds never log at the same seconds, but they do at the same steps).
        seconds = np.mean(
            [np.interp(by_step["x"], curves[i][0], curves[i][1]) for i in members], axis=0
        )
        groups[name] = {
            "runs": [str(dirs[i]) for i in members],
            "seeds": len(members),
            "steps": by_step["x"],
            "mean": by_step["mean"],
            "low": by_step["low"],
            "high": by_step["high"],
            "seconds": seconds,
            "time_mean": by_step["mean"],
            "time_low": by_step["low"],
            "time_high": by_step["high"],
        }
    skipped = [str(d) for d, (steps, _, _) in zip(dirs, curves, strict=True) if not len(steps)]
    unit = _time_unit(max(float(g["seconds"].max()) for g in groups.values()))
    random = _random_return(all_rows) if metric in RETURN_METRICS else None
    path = _draw(groups, Path(out), metric, unit, random)
    return {
        "out": path,
        "metric": metric,
        "skipped": skipped,
        "time_unit": unit,
        "groups": groups,
        "random": random,
    }


def _random_return(all_rows: list[list[dict[str, Any]]]) -> float | None:
    """Mean over runs of the random policy's return on their env (the seed episodes, logged as
    ``episode/random_return``); None when no run logged it."""
    values = [
        next(r[RANDOM_RETURN] for r in rows if r.get(RANDOM_RETURN) is not None)
        for rows in all_rows
        if any(r.get(RANDOM_RETURN) is not None for r in rows)
    ]
    return float(np.mean(values)) if values else None


def _time_unit(seconds: float) -> Literal["seconds", "minutes", "hours"]:
    if seconds >= 2 * 3600:
        return "hours"
    return "minutes" if seconds >= 120 else "seconds"


def _draw(
    groups: dict[str, dict[str, Any]], out: Path, metric: str, unit: str, random: float | None
) -> Path:
    fig = figure(11.0, 4.0)
    by_step, by_time = fig.subplots(1, 2, sharey=True)
    scale = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0}[unit]
    colors = [f"C{i % 10}" for i in range(len(groups))]
    for (name, group), color in zip(groups.items(), colors, strict=True):
        seeds = group["seeds"]
        label = f"{name} ({seeds} seed{'s' if seeds != 1 else ''})"
        by_step.plot(
            group["steps"], group["mean"], color=color, label=label, marker="o", markersize=3
        )
        by_step.fill_between(group["steps"], group["low"], group["high"], color=color, alpha=0.2)
        clock = group["seconds"] / scale
        by_time.plot(clock, group["time_mean"], color=color, marker="o", markersize=3)
        by_time.fill_between(clock, group["time_low"], group["time_high"], color=color, alpha=0.2)
    if random is not None:  # the baseline a learner must beat
        for axes in (by_step, by_time):
            axes.axhline(random, color="0.4", linestyle="--", linewidth=1)
        by_step.plot([], [], color="0.4", linestyle="--", label="random policy (seed episodes)")
    by_step.set_xlabel("env steps")
    by_step.set_ylabel(metric)
    by_time.set_xlabel(f"wall clock ({unit})")
    for axes in (by_step, by_time):
        axes.grid(alpha=0.3)
    by_step.legend(loc="best", fontsize="small")
    return save_figure(fig, out)
