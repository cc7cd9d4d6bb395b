"""The benchmark scripts run end to end on tiny settings (their numbers come from real runs)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(autouse=True)
def importable(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))


@pytest.fixture(scope="module")
def planet_run(tmp_path_factory):
    """A tiny PlaNet run (200 env steps on the point mass) that the evaluation tests share; they
    write nothing into it."""
    out = tmp_path_factory.mktemp("planet-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        import learn

        learn.main([
            "--label", "smoke", "--configs", "planet", "debug", "--env", "builtin:pointmass",
            "--steps", "200", "--eval-every", "200", "--seeds", "0", "--out", str(out / "runs"),
        ])  # fmt: skip
    return str(next((out / "runs").iterdir()))


def test_learn_writes_curves_for_each_seed(tmp_path, capsys):
    import learn

    out = tmp_path / "learn.json"
    learn.main([
        "--label", "smoke", "--configs", "planet", "debug", "--env", "builtin:pointmass",
        "--steps", "200", "--eval-every", "100", "--eval-episodes", "1", "--seeds", "0", "1",
        "--out", str(tmp_path / "runs"), "--json", str(out),
    ])  # fmt: skip
    report = json.loads(out.read_text())
    assert [run["seed"] for run in report["runs"]] == [0, 1]
    for run in report["runs"]:
        assert [p["step"] for p in run["points"]] == [100, 200]
        assert all(p["eval_return"] is not None and p["time"] >= 0 for p in run["points"])
    assert [(run["stopped_at"], run["updates"] > 0) for run in report["runs"]] == [(200, True)] * 2
    table = capsys.readouterr().out
    assert "| env steps | seeds | eval return |" in table and "| 200 | 2 |" in table
    assert "seed 0: 200," in table
    # a second call resumes the finished runs instead of training again
    again = learn.main([*sys.argv[:0], "--label", "smoke", "--configs", "planet", "debug",
                        "--env", "builtin:pointmass", "--steps", "200", "--eval-every", "100",
                        "--seeds", "0", "--out", str(tmp_path / "runs"), "--report"])  # fmt: skip
    assert again[0]["points"] == report["runs"][0]["points"]


def test_learn_wall_clock_budget_stops_runs_early_and_says_where(tmp_path, capsys):
    import learn

    runs = learn.main([
        "--label", "budget", "--configs", "planet", "debug", "--env", "builtin:pointmass",
        "--steps", "200", "--eval-every", "100", "--eval-episodes", "1", "--seeds", "0",
        "--out", str(tmp_path / "runs"), "--minutes", "1e-9", "--note", "alone on the machine",
        "--want-seeds", "3", "--set", "world_model.kl.free_nats=2.0",
    ])  # fmt: skip
    # The budget is spent at once: the run stops at the end of the seed episode and is
    # evaluated there.
    (run,) = runs
    assert run["stopped_at"] < 200 and [p["step"] for p in run["points"]] == [run["stopped_at"]]
    table = capsys.readouterr().out
    assert f"seed 0: {run['stopped_at']}," in table and "wall-clock budget 1e-09 min" in table
    assert "`run.max_minutes=1e-09`" in table and "Note: alone on the machine" in table
    # a --set key is listed among the settings even outside the sections always shown
    assert "`world_model.kl.free_nats=2.0`" in table and "`run.seed_updates=None`" in table
    assert "Partial row: 1 of the 3 seeds the protocol asks for" in table
    assert (
        f"Partial row: stopped before the target 200 env steps (seed 0 at {run['stopped_at']})"
        in table
    )
    # the run's sittings (sittings.jsonl) are in the row and the JSON
    assert "Sittings of seed 0: 1. " in table
    assert f"0 to {run['stopped_at']} env steps in " in table and ", budget (commit" in table
    assert [s["reason"] for s in run["sittings"]] == ["budget"]
    assert "At the pace of each run's last sitting the rest takes: seed 0 " in table


def test_learn_estimates_the_rest_of_a_partial_row_from_the_last_sitting():
    import learn

    args = learn.parse_args(["--label", "row", "--env", "dmc:reacher-easy", "--steps", "100000"])
    sittings = [  # the last sitting went 20K to 30K env steps in 120 minutes: 5,000 per hour
        {"from_env_steps": 0, "to_env_steps": 20_000, "minutes": 60.0},
        {"from_env_steps": 20_000, "to_env_steps": 30_000, "minutes": 120.0},
        {"from_env_steps": 30_000, "to_env_steps": None, "minutes": None},  # killed
    ]
    runs = [{"seed": 3, "stopped_at": 30_000, "sittings": sittings}]
    assert learn.remaining_time(args, runs).endswith("seed 3 14.0 h at 5,000 env steps/h.")
    assert learn.remaining_time(args, [{"seed": 3, "stopped_at": 30_000, "sittings": []}]) == ""


def test_learn_curve_counts_the_wall_clock_over_sittings(tmp_path):
    # Three sittings; the third's first eval comes later in its sitting than the second's last
    # eval did in its own, so only sittings.jsonl shows where the third began.
    import learn

    rows = [
        {"step": 10_000, "time": 600.0, "eval/return": 1.0, "episode/return": 2.0},
        {"step": 12_000, "time": 700.0, "eval/return": 1.0},  # budget stop: eval, checkpoint
        {"step": 13_000, "time": 50.0, "episode/return": 3.0},
        {"step": 14_000, "time": 120.0, "eval/return": 2.0},  # budget stop
        {"step": 20_000, "time": 900.0, "eval/return": 3.0, "episode/return": 4.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = [
        {"event": "start", "time": "t", "env_steps": 0, "updates": 0, "pid": 1},
        {"event": "stop", "time": "t", "env_steps": 12_000, "reason": "budget", "pid": 1},
        {"event": "start", "time": "t", "env_steps": 12_000, "updates": 0, "pid": 2},
        {"event": "stop", "time": "t", "env_steps": 14_000, "reason": "budget", "pid": 2},
        {"event": "start", "time": "t", "env_steps": 14_000, "updates": 0, "pid": 3},
    ]
    (tmp_path / "sittings.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    run = learn.curve(tmp_path, seed=0)
    assert [p["time"] for p in run["points"]] == [600.0, 700.0, 820.0, 1720.0]
    assert [p["train_return"] for p in run["points"]] == [2.0, None, 3.0, 4.0]
    assert len(run["sittings"]) == 3


@pytest.mark.parametrize(
    ("obs", "header", "cells"),
    [
        # the proprio curve from 10K on
        ("dmc_proprio", "released DreamerV3 (S, train return)", {20_000: "36", 30_000: "359"}),
        # the pixels curve starts at 30K; the proprio one must not appear in a pixels row
        ("dmc_vision", "released DreamerV3 (S, pixels, train return)", {20_000: "-", 30_000: "73"}),
    ],
)
def test_learn_table_puts_the_released_curve_of_its_observations_beside_a_row(
    tmp_path, obs, header, cells
):
    import learn

    args = learn.parse_args([
        "--label", "row", "--configs", "dreamer_v3", obs, "debug", "--env", "dmc:reacher-easy",
        "--steps", "30000", "--eval-every", "10000", "--out", str(tmp_path),
    ])  # fmt: skip
    points = [
        {"step": 20_000, "time": 60.0, "eval_return": 100.0, "train_return": 90.0},
        {"step": 30_000, "time": 120.0, "eval_return": 200.0, "train_return": 150.0},
    ]
    runs = [{"seed": 0, "logdir": str(tmp_path / "none"), "points": points, "stopped_at": 30_000,
             "updates": 5000}]  # fmt: skip
    table = learn.markdown(args, runs, "python benchmarks/learn.py ...")
    assert f"{header} |" in table
    assert f"| 20000 | 1 | 100.0 | 90.0 | 1.0 | {cells[20_000]} |" in table
    assert f"| 30000 | 1 | 200.0 | 150.0 | 2.0 | {cells[30_000]} |" in table
    assert "Partial row" not in table  # all seeds asked for, every run reached --steps


def test_released_curve_is_empty_without_one():
    import learn

    assert learn.released_curve("dmc:reacher-easy", "pixels")[1][40_000] == 86
    assert learn.released_curve("dmc:walker-walk", "pixels")[1] == {}
    assert learn.released_curve("dmc:reacher-easy", None) == ("", {})


def test_learn_table_puts_other_rows_beside_and_judges_against_a_floor(tmp_path, monkeypatch):
    import learn
    import results

    doc = tmp_path / "results.md"
    monkeypatch.setattr(results, "RESULTS", doc)
    floor = "\n".join([
        "## random on `dmc:reacher-easy` (random)", "",
        "| env steps | seeds | eval return | train return | wall clock (min) |",
        "|---|---|---|---|---|",
        "| 10000 | 3 | 50.0 ± 5.0 | 40.0 ± 1.0 | 0.1 ± 0.0 |",
        "| 20000 | 3 | 60.0 ± 5.0 | 40.0 ± 1.0 | 0.2 ± 0.0 |",
    ])  # fmt: skip
    results.write_section("learn-dmc-reacher-easy-random", floor, doc)
    argv = ["--label", "v1", "--configs", "dreamer_v1", "dmc_proprio", "debug", "--env",
            "dmc:reacher-easy", "--steps", "20000", "--eval-every", "10000", "--out",
            str(tmp_path), "--floor", "random", "--floor-from", "20000"]  # fmt: skip
    args = learn.parse_args(argv)
    runs = [
        {"seed": seed, "logdir": str(tmp_path / "none"), "stopped_at": 20_000, "updates": 1800,
         "points": [{"step": 10_000, "time": 60.0, "eval_return": ret[0], "train_return": 1.0},
                    {"step": 20_000, "time": 120.0, "eval_return": ret[1], "train_return": 1.0}]}
        for seed, ret in enumerate([(55.0, 200.0), (45.0, 220.0)])
    ]  # fmt: skip
    table = learn.markdown(args, runs, "python benchmarks/learn.py ...")
    assert "| eval return (random) |" in table
    assert "| 10000 | 2 | 50.0 ± 7.1 | 1.0 ± 0.0 | 1.0 ± 0.0 | 50.0 ± 5.0 |" in table
    # 20K: mean 210 - 60 = 150 above the floor, 2 sd = 28.3: cleared; 10K is before --floor-from
    assert "**yes**; 20000: yes (mean − random 150.0, 2 sd 28.3)." in table
    runs[1]["points"][1]["eval_return"] = 60.0  # mean 130, 2 sd 197.99: not cleared
    table = learn.markdown(args, runs, "python benchmarks/learn.py ...")
    assert "**no**; 20000: no (mean − random 70.0, 2 sd 198.0)." in table
    # an eval where a sitting stopped off the grid has no floor value: listed, not judged
    for run in runs:
        run["points"].append(
            {"step": 21_002, "time": 130.0, "eval_return": 0.0, "train_return": 1.0}
        )
    table = learn.markdown(args, runs, "python benchmarks/learn.py ...")
    assert "| 21002 | 2 | 0.0 ± 0.0 |" in table and "21002: " not in table
    assert "**no**; 20000: no (mean − random 70.0, 2 sd 198.0)." in table
    args = learn.parse_args([*argv[:-1], "30000"])  # no eval judged yet
    assert "not judged (no such eval yet)" in learn.markdown(args, runs, "python ...")
    # a row that is not in the file is named before any training starts
    with pytest.raises(SystemExit, match="no row 'v3' for dmc:reacher-easy"):
        learn.main([*argv[:-4], "--beside", "v3"])


def test_eval_variants_pairs_the_same_episodes_across_settings(planet_run, tmp_path, capsys):
    import eval_variants

    run = planet_run
    out = tmp_path / "variants.json"
    report = eval_variants.main([
        "--runs", run, "--episodes", "2", "--jobs", "1", "--json", str(out),
        "--variant", "base:", "--variant", "same:planet.horizon=3",
        "--variant", "long:planet.horizon=6,planet.candidates=12",
        "--variant", "noisy:mode=explore",
    ])  # fmt: skip
    assert json.loads(out.read_text()) == report
    results = {r["variant"]: r for r in report["results"]}
    assert all(len(r["returns"]) == 2 and r["step"] == 200 for r in results.values())
    # debug's horizon is 3: the same setting meets the same episodes with the same latent samples
    assert results["same"]["returns"] == results["base"]["returns"]
    text = capsys.readouterr().out
    assert "long = planet.horizon=6, planet.candidates=12" in text
    assert "noisy = as trained, explore policy" in text
    assert "| same |" not in text and "same " in text and "0.0 ± 0.0" in text  # paired difference
    again = eval_variants.main(["--report", str(out), "--note", "read back"])
    assert again["results"] == report["results"]
    rebuilt = capsys.readouterr().out
    assert rebuilt.startswith("read back") and "Rebuilt with --report" in rebuilt
    assert text.split("eval return per variant")[1] in rebuilt  # the same table
    for bad in ("nocolon", "x:planet.horizon", "x:mode=greedy"):
        with pytest.raises(SystemExit):
            eval_variants.main(["--runs", run, "--variant", bad])
        assert bad.split(":")[0] in capsys.readouterr().err
    for bad, message in (
        (["--runs", run, "--checkpoint", "999"], "no checkpoint '999'"),
        (["--runs", str(tmp_path)], "holds no config.yaml"),
    ):
        with pytest.raises(SystemExit):  # one line before any process starts
            eval_variants.main([*bad, "--variant", "base:"])
        assert message in capsys.readouterr().err


def test_plan_foresight_records_the_episodes_rssm_eval_runs(planet_run, tmp_path, capsys):
    import plan_foresight

    from rssm.run.evaluate import evaluate

    run = planet_run
    out = tmp_path / "foresight.json"
    report = plan_foresight.main([
        "--runs", run, "--episodes", "2", "--jobs", "1", "--samples", "3", "--seed", "7",
        "--json", str(out),
    ])  # fmt: skip
    assert json.loads(out.read_text()) == report
    (result,) = report["results"]
    # the diagnostics draw from forked generators: the same episodes as rssm eval's
    assert result["returns"] == evaluate(run, 2, seed=7, device="cpu")
    for record, total in zip(result["episodes"], result["returns"], strict=True):
        length = len(record["reward"])
        assert length > result["horizon"] and len(record["planned"]) == length
        assert len(record["seen"]) == length + 1  # the last observation's posterior too
        assert sum(record["reward"]) == pytest.approx(total)  # the env's rewards, one per action
        summary = plan_foresight.episode_summary(record, result["horizon"])
        assert summary["return"] == pytest.approx(total)
    text = capsys.readouterr().out
    assert "H-return predicted" in text and "by outcome" in text
    again = plan_foresight.main(["--report", str(out), "--note", "read back"])
    assert again["results"] == report["results"]
    rebuilt = capsys.readouterr().out
    assert rebuilt.startswith("read back") and text.split("per episode")[1] in rebuilt
    with pytest.raises(SystemExit):
        plan_foresight.main(["--runs", run, "--checkpoint", "999"])
    assert "the run keeps checkpoints of steps 200" in capsys.readouterr().err


def test_held_out_scores_replay_new_episodes_and_another_runs_replay(planet_run, tmp_path, capsys):
    import held_out

    out = tmp_path / "held.json"
    args = ["--episodes", "1", "--jobs", "1", "--horizon", "3", "--context", "2", "--stride", "7"]
    report = held_out.main(["--runs", planet_run, planet_run, "--cross", *args, "--json", str(out)])
    assert json.loads(out.read_text()) == report
    results = {(r["run_index"], r["name"]): r for r in report["results"]}
    assert set(results) == {(i, name) for i in (0, 1) for name in ("replay", "eval", "cross")}
    replay, new, cross = (results[0, name] for name in ("replay", "eval", "cross"))
    assert replay["source"] == "replay" and replay["step"] == 200
    assert new["source"] == "collected" and new["episodes"] == 1
    # the same run twice: its other run's replay is its own, read through another path
    assert cross["source"] == "directory" and cross["source_dir"].endswith("replay")
    assert cross["keys"] == replay["keys"] and cross["windows"] == replay["windows"]
    assert new["keys"]["reward"]["model"] != replay["keys"]["reward"]["model"]
    text = capsys.readouterr().out
    ratio = held_out.mean_error(new["keys"]["image"]) / held_out.mean_error(replay["keys"]["image"])
    copy = held_out.mean_error(new["keys"]["image"]) / (
        sum(new["keys"]["image"]["copy_last"]) / len(new["keys"]["image"]["copy_last"])
    )
    cells = text.split("0/eval")[1].splitlines()[0].split()
    assert cells[-3:] == [f"{held_out.mean_error(new['keys']['image']):.4g}", f"{ratio:.2f}",
                          f"{copy:.2f}"]  # fmt: skip
    summary = text.split("ratios (mean ± sd over runs)")[1]
    cross = next(line for line in summary.splitlines() if line.startswith("cross"))
    assert cross.split()[2:5] == ["1.00", "±", "0.00"]  # reward ÷ replay
    again = held_out.main(["--report", str(out), "--note", "read back"])
    assert again["results"] == report["results"]
    rebuilt = capsys.readouterr().out
    assert rebuilt.startswith("read back") and text.split("per run and source")[1] in rebuilt
    for bad, message in (
        (["--runs", planet_run, "--cross"], "give two --runs"),
        (["--runs", planet_run, "--stride", "0"], "must be at least 1"),
        (["--runs", planet_run, "--checkpoint", "999"], "the run keeps checkpoints of steps 200"),
    ):
        with pytest.raises(SystemExit):  # one line before any process starts
            held_out.main(bad)
        assert message in capsys.readouterr().err


def test_plan_foresight_summary_lines_predictions_up_with_rewards():
    import plan_foresight

    # reward[t] is earned by step t's action; seen[t + 1] predicts it; planned[t] predicts
    # reward[t:t + 2]
    record = {"reward": [0.0, 1.0, 1.0, 0.0], "seen": [5.0, 0.0, 1.0, 1.0, 0.0],
              "planned": [1.0, 2.0, 1.0, 0.0]}  # fmt: skip
    s = plan_foresight.episode_summary(record, 2)
    assert s["return"] == 2.0 and s["seen_actual"] == 2.0 and s["seen_predicted"] == 2.0
    assert s["achieved"] == pytest.approx((1 + 2 + 1) / 3) and s["planned"] == s["achieved"]
    assert s["difference"] == 0.0 and s["correlation"] == pytest.approx(1.0)


def test_plan_foresight_refuses_an_agent_without_a_planner():
    import plan_foresight

    class Actor:
        class capabilities:  # noqa: N801
            imagination = "actor"

    with pytest.raises(ValueError, match="needs a planner agent"):
        plan_foresight._Recorder(Actor(), 1)


def test_learn_report_into_another_section_keeps_the_rows_own(planet_run, tmp_path, monkeypatch):
    import learn
    import results

    doc = tmp_path / "results.md"
    monkeypatch.setattr(results, "RESULTS", doc)
    results.write_section("learn-builtin-pointmass-smoke", "the row as it was", doc)
    learn.main([
        "--label", "smoke", "--configs", "planet", "debug", "--env", "builtin:pointmass",
        "--steps", "200", "--eval-every", "200", "--seeds", "0", "--out",
        str(Path(planet_run).parent), "--report", "--results", "--section", "smoke-seed0",
    ])  # fmt: skip
    assert results.read_section("learn-builtin-pointmass-smoke", doc).strip() == "the row as it was"
    apart = results.read_section("smoke-seed0", doc)
    assert "## planet on `builtin:pointmass` (smoke, section smoke-seed0)" in apart
    assert "| 200 | 1 |" in apart and "--section smoke-seed0" in apart


def test_learn_refuses_fresh_with_report(tmp_path, capsys):
    import learn

    with pytest.raises(SystemExit):  # no eval schedule: a clear error, not a ZeroDivisionError
        learn.main(["--label", "x", "--env", "builtin:pointmass", "--steps", "9",
                    "--eval-every", "0"])  # fmt: skip
    assert "--eval-every=0 must be >= 1" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        learn.parse_args(["--label", "x", "--env", "builtin:pointmass", "--steps", "100",
                          "--eval-every", "100", "--fresh", "--report"])  # fmt: skip
    assert "--fresh deletes the runs that --report reads" in capsys.readouterr().err


def test_train_step_measures_a_full_update(tmp_path):
    import train_step

    out = tmp_path / "step.json"
    train_step.main([
        "--agents", "v3_xs", "--batch", "2", "--length", "8", "--horizon", "2",
        "--repeats", "1", "--warmup", "0", "--json", str(out),
    ])  # fmt: skip
    agent = json.loads(out.read_text())["agents"][0]
    assert agent["agent"] == "v3_xs" and agent["actor_grad"] == "dynamics"
    assert agent["median_s"] > 0 and agent["world_model_s"] > 0 and agent["actor_critic_s"] > 0
    assert agent["flops"] > 0
    # imagining from the last 2 of 8 steps costs fewer FLOPs than from all 8
    fewer = tmp_path / "fewer.json"
    train_step.main([
        "--agents", "v3_xs", "--batch", "2", "--length", "8", "--horizon", "2", "--imag-last",
        "2", "--repeats", "1", "--warmup", "0", "--json", str(fewer),
    ])  # fmt: skip
    report = json.loads(fewer.read_text())
    assert report["imag_last"] == 2 and report["agents"][0]["flops"] < agent["flops"]


def test_train_step_measures_a_proprio_update_without_a_cnn(tmp_path):
    import train_step

    args = ["--batch", "2", "--length", "8", "--horizon", "2", "--repeats", "1", "--warmup", "0"]
    pixels, proprio = tmp_path / "pixels.json", tmp_path / "proprio.json"
    train_step.main(["--agents", "v3_xxs", *args, "--json", str(pixels)])
    train_step.main(["--agents", "v3_xxs", *args, "--obs", "proprio", "--json", str(proprio)])
    report = json.loads(proprio.read_text())
    assert report["obs"] == "proprio" and report["agents"][0]["agent"] == "v3_xxs"
    # no convolutions: far fewer FLOPs and parameters than the same agent on 64x64 images
    image = json.loads(pixels.read_text())["agents"][0]
    assert report["agents"][0]["flops"] < image["flops"] / 2
    assert report["agents"][0]["params"] < image["params"]


def test_train_step_times_each_agent_under_each_precision(tmp_path, capsys):
    import train_step

    out = tmp_path / "prec.json"
    train_step.main([
        "--agents", "v3_xxs", "--obs", "proprio", "--batch", "2", "--length", "4", "--horizon",
        "2", "--repeats", "1", "--warmup", "0", "--precision", "float32,bfloat16", "--json",
        str(out),
    ])  # fmt: skip
    report = json.loads(out.read_text())
    assert report["precisions"] == ["float32", "bfloat16"]
    assert [(a["agent"], a["precision"]) for a in report["agents"]] == [
        ("v3_xxs", "float32"),
        ("v3_xxs", "bfloat16"),
    ]
    table = capsys.readouterr().out
    assert "bfloat16" in table and "float32" in table
    with pytest.raises(SystemExit):
        train_step.parse_args(["--precision", "float16"])
    assert "--precision 'float16': use float32, bfloat16" in capsys.readouterr().err


def test_planning_times_library_and_reference_side_by_side(tmp_path):
    import planning

    out = tmp_path / "planning.json"
    report = planning.main([
        "--candidates", "12", "--elites", "3", "--iterations", "2", "--horizon", "3",
        "--repeats", "2", "--no-compile", "--peak-seconds", "0.05", "--json", str(out),
    ])  # fmt: skip
    assert json.loads(out.read_text())["candidates"] == 12
    rows = {r["planner"]: r for r in report["planners"]}
    assert set(rows) == {"library", "reference"}  # --no-compile leaves the compiled row out
    # both planners do the same matmuls: 2 iterations x 12 candidates x 3 steps of the model
    assert rows["library"]["flops"] == pytest.approx(rows["reference"]["flops"], rel=0.05)
    assert rows["library"]["flops"] > 0 and report["matmul_flops"] > 0
    for r in rows.values():
        assert len(r["seconds"]) == 2 and r["median_s"] > 0 and r["first_call_s"] > 0
        assert r["speedup_vs_reference"] == pytest.approx(
            rows["reference"]["median_s"] / r["median_s"]
        )


def test_env_steps_reports_a_rate_per_env(tmp_path, capsys):
    import env_steps

    out = tmp_path / "env_steps.json"
    report = env_steps.main(
        ["--envs", "builtin:pointmass", "builtin:echo", "--steps", "20", "--repeats", "2",
         "--image-size", "16", "--json", str(out)]
    )  # fmt: skip
    assert set(report["envs"]) == {"builtin:pointmass", "builtin:echo"}
    assert all(len(rates) == 2 and min(rates) > 0 for rates in report["envs"].values())
    assert json.loads(out.read_text())["steps"] == 20
    assert "builtin:echo" in capsys.readouterr().out


def test_parity_maps_our_metrics_onto_the_reference_layout(tmp_path):
    import parity

    ours, ref = tmp_path / "ours", tmp_path / "ref"
    ours.mkdir(), ref.mkdir()
    our_rows = [
        {"step": 1000, "train/updates": 250, "train/state_loss": 3.0, "train/reward_loss": 2.0,
         "train/actor_loss": 9.0, "train/return_scale": 1.5, "train/value_mean": 0.5,
         "train/kl_loss": 3.5, "train/actor_mode_abs": 0.25},
        {"step": 2000, "train/updates": 500, "train/state_loss": 1.0, "train/reward_loss": 1.0,
         "train/actor_loss": 9.0, "train/return_scale": 2.5, "train/value_mean": 1.5,
         "train/kl_loss": 3.0, "train/actor_mode_abs": 0.75},
    ]  # fmt: skip
    (ours / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in our_rows))
    ref_rows = [
        {"step": 2000, "update_count": 480, "position_loss": 0.5, "velocity_loss": 0.25,
         "reward_loss": 0.75, "actor_loss": 7.0, "EMA_005": 1.0, "EMA_095": 1.5,
         "value_mean": 0.25, "kl_loss": 4.0, "actor_mode_abs": 0.875},
        {"step": 2000, "eval_return": 12.0},
    ]  # fmt: skip
    (ref / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ref_rows) + "{bad\n")
    text = parity.main(["--ours", str(ours), "--reference", str(ref), "--label", "t", "--x",
                        "steps", "--at", "2000", "--window", "2000"])  # fmt: skip
    # observation loss: ours is the mean of 3 and 1; the reference sums its per-key losses (the
    # actor_mode_abs keys on both sides are not observation losses)
    assert "| observation loss | 2 / 0.75 |" in text
    assert "| reward loss | 1.5 / 0.75 |" in text
    assert "| return scale | 2 / 1 |" in text  # max(1, EMA_095 - EMA_005)
    assert "| critic value (mean) | 1 / 0.25 |" in text
    assert "| eval return | - / 12 |" in text
    assert "| KL loss (after free nats) | 3.25 / 4 |" in text  # V1/PlaNet's clipped KL
    assert "| actor mode, mean abs | 0.5 / 0.875 |" in text  # near 1: bang-bang actions
    assert parity.series(parity.read_reference(ref), parity.METRICS["reward loss"][1],
                         "update_count") == [(2000, 480.0, 0.75)]  # fmt: skip
    # against updates: ours at 500 (the second row), the reference's row at 480
    by_updates = parity.main(["--ours", str(ours), "--reference", str(ref), "--label", "t",
                              "--at", "500", "--window", "100"])  # fmt: skip
    assert "| reward loss | 1 / 0.75 |" in by_updates and "500 updates: ours / ref" in by_updates
    # the other axis at each column, and no warning: 2000 env steps on both sides
    assert "| (env steps there) | 2000 / 2000 |" in by_updates
    assert "Different phases" not in by_updates
    assert "| (updates there) | 500 / 480 |" in text and "Different phases" not in text


def test_parity_warns_when_columns_compare_different_phases(tmp_path):
    """Equal update counts at very different env steps (a seed phase making 1,250 updates at
    once against one making 100) are different phases of training: the table says so."""
    import parity

    ours, ref = tmp_path / "ours", tmp_path / "ref"
    ours.mkdir(), ref.mkdir()
    our_rows = [{"step": 5000, "train/updates": 1250, "train/reward_loss": 1.0},
                {"step": 6000, "train/updates": 1500, "train/reward_loss": 0.5}]  # fmt: skip
    ref_rows = [{"step": 10000, "update_count": 1350, "reward_loss": 0.2},
                {"step": 11000, "update_count": 1600, "reward_loss": 0.1}]  # fmt: skip
    (ours / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in our_rows))
    (ref / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ref_rows))
    base = ["--ours", str(ours), "--reference", str(ref), "--label", "t"]
    text = parity.main([*base, "--at", "1500", "1600", "--window", "300"])
    assert "| (env steps there) | 6000 / 10000 | 6000 / 11000 |" in text
    assert "**Different phases**: at 1500, 1600 updates" in text
    # by env steps, the same runs are compared where both logged: at 11000 ours is at 1500
    # updates, the reference at 1600 (within 10 %): no warning
    text = parity.main([*base, "--x", "steps", "--at", "11000", "--window", "5000"])
    assert "| (updates there) | 1500 / 1600 |" in text and "Different phases" not in text
    assert parity.mismatched([], [], [1, 2], "updates") == []  # nothing logged: nothing to say


def test_threads_times_the_demo_alone_and_beside_a_competitor(tmp_path):
    import threads

    out = tmp_path / "threads.json"
    report = threads.main(["--threads", "1", "--steps", "60", "--competitor-threads", "1",
                           "--seed-episodes", "1", "--json", str(out)])  # fmt: skip
    (cell,) = report["cells"]
    assert cell["threads"] == 1 and cell["alone_s"] > 0 and cell["loaded_s"] > 0
    assert json.loads(out.read_text())["steps"] == 60


def test_collect_compares_workers_with_the_raw_env(tmp_path):
    import collect

    out = tmp_path / "collect.json"
    report = collect.main(["--env", "builtin:pointmass", "--obs", "proprio", "--workers", "1",
                           "--steps", "40", "--image-size", "16", "--json", str(out)])  # fmt: skip
    row = report["rows"][0]
    assert row["raw"] > 0 and row["local"] > 0 and row["workers"][1] > 0
    assert json.loads(out.read_text())["env"] == "builtin:pointmass"


def test_replay_storage_compares_ram_with_disk(tmp_path):
    import replay_storage

    out = tmp_path / "storage.json"
    report = replay_storage.main(["--capacity", "600", "--image-size", "16", "--batch", "2",
                                  "--length", "8", "--batches", "3", "--folder", str(tmp_path),
                                  "--json", str(out)])  # fmt: skip
    memory, disk = report["rows"]
    assert (memory["storage"], disk["storage"]) == ("memory", "disk")
    assert memory["batches_per_s"] > 0 and disk["batches_per_s"] > 0
    assert json.loads(out.read_text())["capacity"] == 600
    assert list(tmp_path.iterdir()) == [out]  # the buffer and its temporary folder are gone


def test_ddp_times_one_and_two_ranks_at_the_same_global_batch(tmp_path):
    import ddp

    out = tmp_path / "ddp.json"
    report = ddp.main(["--configs", "dreamer_v3", "debug", "--env", "builtin:pointmass",
                       "--ranks", "1", "2", "--updates", "2", "--warmup", "1", "--fill", "60",
                       "--json", str(out)])  # fmt: skip
    one, two = report["rows"]
    assert (one["ranks"], two["ranks"]) == (1, 2)
    assert one["per_rank_batch"] == 2 * two["per_rank_batch"] == one["global_batch"]
    assert one["updates_per_s"] > 0 and two["updates_per_s"] > 0
    assert json.loads(out.read_text())["env"] == "builtin:pointmass"


@pytest.mark.skipif(
    not (BENCHMARKS.parent / ".git").exists(), reason="needs the git checkout of the repository"
)
def test_revisions_times_a_base_revision_beside_this_checkout(tmp_path, capsys):
    import revisions

    out = tmp_path / "revisions.json"
    tiny = ["--batch", "2", "--length", "4", "--horizon", "2", "--repeats", "1", "--warmup", "0"]
    report = revisions.main(
        ["--base", "HEAD", "--agents", "v3_xxs", *tiny, "--rounds", "1", "--threads", "1",
         "--json", str(out)]
    )  # fmt: skip
    sides = report["agents"]["v3_xxs"]
    assert set(sides) == {"base", "head"}
    assert all(side["median_s"] > 0 for side in sides.values())
    assert json.loads(out.read_text())["rounds"] == 1
    printed = capsys.readouterr().out
    assert "ratio" in printed and report["cpu"] in printed  # the machine is named in the table
    # the temporary worktree is gone again
    worktrees = revisions.git("worktree", "list")
    assert str(tmp_path) not in worktrees and "/base " not in worktrees


@pytest.mark.parametrize("script", ["revisions", "train_step"])
def test_a_label_that_cannot_name_a_section_is_refused(script, capsys):
    module = importlib.import_module(script)
    argv = ["--base", "HEAD"] if script == "revisions" else []
    with pytest.raises(SystemExit):
        module.main([*argv, "--label", "two words"])
    assert "--label 'two words'" in capsys.readouterr().err


def test_labelled_appends_the_label_to_the_section():
    import results

    assert results.labelled("train-step-speed-proprio", "epyc") == "train-step-speed-proprio-epyc"
    assert results.labelled("train-step-speed", "") == "train-step-speed"


def test_revisions_names_a_revision_it_cannot_find(capsys):
    import revisions

    with pytest.raises(SystemExit, match="no-such-revision"):
        revisions.main(["--base", "no-such-revision"])


def test_learn_threads_reach_the_runs_and_their_row(tmp_path, capsys):
    # --threads is the run's own thread count (run.threads): train() sets that one, so a count
    # set only in the calling process would be replaced there and the row would misstate it.
    import learn

    base = ["--label", "x", "--configs", "planet", "debug", "--env", "builtin:pointmass",
            "--steps", "100", "--eval-every", "100", "--out", str(tmp_path)]  # fmt: skip
    assert learn.make_config(learn.parse_args([*base, "--threads", "2"]), 0).run.threads == 2
    assert learn.make_config(learn.parse_args(base), 0).run.threads is None
    same = learn.parse_args([*base, "--threads", "2", "--set", "run.threads=2"])
    assert learn.make_config(same, 0).run.threads == 2
    with pytest.raises(SystemExit):
        learn.parse_args([*base, "--threads", "2", "--set", "run.threads=1"])
    assert "--threads 2 and --set run.threads=1 disagree" in capsys.readouterr().err
    # the row states the count the runs used: 1 on the CPU unless told otherwise
    learn.main([*base, "--eval-episodes", "1", "--seeds", "0"])
    assert "1 torch thread(s) each" in capsys.readouterr().out
