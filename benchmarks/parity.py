"""Side-by-side diagnostics of one of our Dreamer runs and a reference implementation's run at
the same configuration: world-model losses, KL, the critic's value against the imagined
λ-return, the return normaliser's scale, the actor's entropy and the gradient norms, against
gradient updates and env steps.

The reference is run from its own checkout (fetched for comparison, never vendored) with the
same task, sizes, train ratio, batch and budget; this script only reads both runs' metric files:
ours ``metrics.jsonl`` (``rssm train``), the reference's ``metrics.jsonl`` in the layout that
NM512/dreamerv3-torch writes (flat keys such as ``dyn_loss``, ``value_mean``, ``target_mean``,
``EMA_005``, ``update_count``). A reference that logs otherwise is compared by writing its
metrics in that layout (one JSON object per line with ``step`` in env steps and ``update_count``).

    python benchmarks/parity.py --ours runs/learn/dmc-reacher-easy-v3-seed0 \\
        --reference ../ref/logs/reacher_seed0 --label reacher-easy-v3-xxs \\
        --plot parity.png --results
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import write_section  # noqa: E402

from rssm.run.logger import read_metrics  # noqa: E402

Row = dict[str, Any]
Getter = Callable[[Row], float | None]

# Keys (either run's, after its prefix) that are not observation-reconstruction losses.
_NOT_DECODER = {"model", "reward", "cont", "dyn", "rep", "kl", "actor", "value", "critic"}


def _key(name: str) -> Getter:
    return lambda row: row.get(name)


def _decoder_loss(prefix: str, exclude: set[str]) -> Getter:
    """The sum of the per-key observation losses (``<key>_loss``) of one row."""

    def get(row: Row) -> float | None:
        losses = [
            value
            for key, value in row.items()
            if key.startswith(prefix)
            and key.endswith("_loss")
            and key[len(prefix) : -len("_loss")] not in exclude
            and isinstance(value, int | float)
        ]
        return sum(losses) if losses else None

    return get


def _reference_scale(row: Row) -> float | None:
    low, high = row.get("EMA_005"), row.get("EMA_095")
    return None if low is None or high is None else max(1.0, high - low)


# metric -> (ours, reference)
METRICS: dict[str, tuple[Getter, Getter]] = {
    "observation loss": (
        _decoder_loss("train/", _NOT_DECODER),
        _decoder_loss("", _NOT_DECODER),
    ),
    "reward loss": (_key("train/reward_loss"), _key("reward_loss")),
    "continue loss": (_key("train/cont_loss"), _key("cont_loss")),
    "KL dyn (after free bits)": (_key("train/dyn_loss"), _key("dyn_loss")),
    "KL rep (after free bits)": (_key("train/rep_loss"), _key("rep_loss")),
    "KL (raw)": (_key("train/kl"), _key("kl")),
    "KL loss (after free nats)": (_key("train/kl_loss"), _key("kl_loss")),
    "prior entropy": (_key("train/prior_ent"), _key("prior_ent")),
    "posterior entropy": (_key("train/post_ent"), _key("post_ent")),
    "critic value (mean)": (_key("train/value_mean"), _key("value_mean")),
    "imagined λ-return (mean)": (_key("train/return_mean"), _key("target_mean")),
    "data reward (mean)": (_key("train/data_reward"), _key("data_reward")),
    "reward head on posteriors (mean)": (_key("train/post_reward"), _key("post_reward")),
    "imagined reward (mean)": (_key("train/imag_reward"), _key("imag_reward_mean")),
    "return scale": (_key("train/return_scale"), _reference_scale),
    "actor entropy": (_key("train/actor_entropy"), _key("actor_entropy")),
    "actor mode, mean abs": (_key("train/actor_mode_abs"), _key("actor_mode_abs")),
    "model grad norm": (_key("train/model_grad_norm"), _key("model_grad_norm")),
    "actor grad norm": (_key("train/actor_grad_norm"), _key("actor_grad_norm")),
    "critic grad norm": (_key("train/critic_grad_norm"), _key("value_grad_norm")),
    "train return": (_key("episode/return"), _key("train_return")),
    "eval return": (_key("eval/return"), _key("eval_return")),
}


def read_reference(logdir: Path) -> list[Row]:
    """The reference's metric rows (one JSON object per line; unreadable lines are skipped)."""
    rows = []
    path = logdir / "metrics.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def series(rows: list[Row], get: Getter, update_key: str) -> list[tuple[int, float, float]]:
    """``(env_step, updates, value)`` of every row that has the metric (updates carried forward
    from the last row that logged them)."""
    out, updates = [], 0.0
    for row in rows:
        if isinstance(row.get(update_key), int | float):
            updates = float(row[update_key])
        value = get(row)
        if isinstance(value, int | float) and math.isfinite(value):
            out.append((int(row["step"]), updates, float(value)))
    return out


def at(points: list[tuple[int, float, float]], where: int, window: int, x: str) -> float | None:
    """Mean of the values logged within ``window`` (updates or env steps, per ``x``) at or before
    ``where``."""
    index = 1 if x == "updates" else 0
    values = [p[2] for p in points if where - window < p[index] <= where]
    return sum(values) / len(values) if values else None


def positions(
    ours: list[Row], reference: list[Row], where: list[int], x: str
) -> list[tuple[float | None, float | None]]:
    """Per column, each run's other axis (env steps for ``x == "updates"``, updates otherwise)
    at its last logged row at or before the column; None where a run logged none."""
    index = 1 if x == "updates" else 0

    def other(points: list[tuple[int, float, float]], w: int) -> float | None:
        before = [p for p in points if p[index] <= w]
        return None if not before else float(before[-1][1 - index])

    a = series(ours, _key("train/updates"), "train/updates")
    b = series(reference, _key("update_count"), "update_count")
    return [(other(a, w), other(b, w)) for w in where]


def mismatched(ours: list[Row], reference: list[Row], where: list[int], x: str) -> list[int]:
    """Columns where the two runs' other axis differs by more than 10 %: compared at equal
    updates (or env steps), they are then in different phases of training."""
    return [
        w
        for w, (u, v) in zip(where, positions(ours, reference, where, x), strict=True)
        if u is not None and v is not None and abs(u - v) > 0.1 * max(abs(u), abs(v), 1.0)
    ]


def table(ours: list[Row], reference: list[Row], where: list[int], window: int, x: str) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3g}"

    unit = unit_name(x)
    head = "| metric | " + " | ".join(f"{w} {unit}: ours / ref" for w in where) + " |"
    lines = [head, "|---|" + "---|" * len(where)]

    # The other axis at each column: two runs compared at equal updates can be at very different
    # env steps (a seed phase that makes its earned updates at once vs a few), and vice versa.
    def count(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    cells = [f"{count(u)} / {count(v)}" for u, v in positions(ours, reference, where, x)]
    lines.append(f"| ({unit_name(flip(x))} there) | " + " | ".join(cells) + " |")
    for name, (get_ours, get_ref) in METRICS.items():
        a = series(ours, get_ours, "train/updates")
        b = series(reference, get_ref, "update_count")
        if not a and not b:
            continue
        cells = [f"{fmt(at(a, w, window, x))} / {fmt(at(b, w, window, x))}" for w in where]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def unit_name(x: str) -> str:
    return "updates" if x == "updates" else "env steps"


def flip(x: str) -> str:
    """The other axis of ``--x``."""
    return "steps" if x == "updates" else "updates"


def plot(ours: list[Row], reference: list[Row], path: Path, x: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [
        name
        for name, (a, b) in METRICS.items()
        if series(ours, a, "train/updates") or series(reference, b, "update_count")
    ]
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        get_ours, get_ref = METRICS[name]
        for label, rows_, get, key in (
            ("ours", ours, get_ours, "train/updates"),
            ("reference", reference, get_ref, "update_count"),
        ):
            points = series(rows_, get, key)
            xs = [p[1] if x == "updates" else p[0] for p in points]
            ax.plot(xs, [p[2] for p in points], label=label, lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("gradient updates" if x == "updates" else "env steps", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ours", type=Path, required=True, help="our run directory")
    parser.add_argument("--reference", type=Path, required=True, help="the reference's logdir")
    parser.add_argument("--label", required=True, help="names the results section")
    parser.add_argument("--x", choices=["updates", "steps"], default="updates",
                        help="columns and plot against gradient updates or env steps")  # fmt: skip
    parser.add_argument("--at", type=int, nargs="+", default=[500, 1000, 1500, 2000],
                        help="table columns, in updates or env steps (--x)")  # fmt: skip
    parser.add_argument("--window", type=int, default=500, help="per cell, in --x units")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of every metric")
    parser.add_argument("--note", default="")
    parser.add_argument("--results", action="store_true", help="write docs/results.md section")
    args = parser.parse_args(argv)
    for path, what in ((args.ours / "metrics.jsonl", "--ours"), (args.reference, "--reference")):
        if not path.exists():
            parser.error(f"{what}: {path} does not exist")
    ours, reference = read_metrics(args.ours), read_reference(args.reference)
    last_ours = max((r["step"] for r in ours), default=0)
    last_ref = max((r["step"] for r in reference), default=0)
    off = mismatched(ours, reference, args.at, args.x)
    other = unit_name(flip(args.x))
    warning = (
        f"**Different phases**: at {', '.join(map(str, off))} {unit_name(args.x)} the two runs' "
        f"{other} differ by more than 10 % (row '({other} there)'): their metrics are not "
        "comparable there; align the runs' seed phases or compare with the other --x.  "
        if off
        else ""
    )
    text = "\n".join(
        [
            f"## Parity: ours vs reference ({args.label})",
            "",
            "Command: `"
            + shlex.join(
                ["python", "benchmarks/parity.py", *(sys.argv[1:] if argv is None else argv)]
            )
            + "`  ",
            f"Ours: `{args.ours}` (to {last_ours} env steps); reference: `{args.reference}` "
            f"(to {last_ref} env steps). Cells: mean of the rows logged in the {args.window} "
            f"{unit_name(args.x)} up to the column's.  ",
            *([f"Note: {args.note.strip()}  "] if args.note.strip() else []),
            *([warning] if warning else []),
            "",
            table(ours, reference, args.at, args.window, args.x),
        ]
    )
    print(text)
    if args.plot is not None:
        plot(ours, reference, args.plot, args.x)
    if args.results:
        write_section(f"parity-{args.label}", text)
    return text


if __name__ == "__main__":
    main()
