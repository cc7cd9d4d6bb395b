"""``rssm dream``, ``rssm plot`` and ``rssm report`` from the command line on tiny debug runs."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest

from rssm.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("see")
    for seed in (0, 1):
        args = ["train", "--configs", "planet", "debug", "--seed", str(seed)]
        assert main([*args, "--logdir", str(root / f"seed{seed}")]) == 0
    return root


def test_dream_writes_a_video(runs, capsys):
    out = runs / "dream.mp4"
    assert main(["dream", "--run", str(runs / "seed0"), "--steps", "6", "--out", str(out)]) == 0
    assert iio.imread(out).shape[0] == 5 + 6  # context + imagined frames
    printed = capsys.readouterr().out
    assert "imagination MSE" in printed and "(copying the last observation: " in printed


def test_plot_groups_seeds(runs, capsys):
    out = runs / "curves.png"
    assert main(["plot", str(runs / "seed0"), str(runs / "seed1"), "--out", str(out)]) == 0
    assert iio.imread(out).ndim == 3
    printed = capsys.readouterr().out
    assert "2 seed(s)" in printed and "random policy (seed episodes)" in printed


def test_plot_draws_several_metrics_into_the_first_run_by_default(runs, capsys):
    metrics = ["train/model_loss", "train/kl"]
    assert main(["plot", str(runs / "seed0"), "--metric", *metrics]) == 0
    for name in ("curves-train_model_loss.png", "curves-train_kl.png"):
        assert iio.imread(runs / "seed0" / name).ndim == 3
    assert capsys.readouterr().out.count("plot: ") == 2


def test_report_writes_json_and_png(runs):
    out = runs / "report"
    assert main(["report", "--run", str(runs / "seed0"), "--horizon", "4", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert len(report["keys"]["image"]["model"]) == 4 and (out / "report.png").is_file()


@pytest.mark.parametrize(
    "args",
    [["dream", "--run", "missing"], ["plot", "missing"], ["report", "--run", "missing"],
     ["dream", "--run", "RUN", "--steps", "0"], ["plot", "RUN", "--metric", "eval/retrun"]],
)  # fmt: skip
def test_bad_input_is_one_line(runs, capsys, args):
    args = [str(runs / "seed0") if a == "RUN" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rssm {args[0]}: error:") and "\n" not in err
