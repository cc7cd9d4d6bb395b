import json
import math
import os

import numpy as np
import pytest
import torch

import rssm.run.logger as logger_module
from rssm.run.logger import Logger, read_metrics, wall_clock


def lines(logdir):
    return (logdir / "metrics.jsonl").read_text().splitlines()


def test_jsonl_lines_and_values(tmp_path):
    with Logger(tmp_path, tensorboard=False) as logger:
        logger.scalar("loss", 1.5)
        logger.scalars({"a": 2, "b": np.float32(0.25), "c": np.int64(7)}, prefix="train/")
        written = logger.write(10)
        logger.scalar("loss", 0.5)
        logger.scalar("loss", 0.75)  # last value wins
        logger.write(20)
        logger.write(30)  # nothing buffered: no line
    assert written == {"loss": 1.5, "train/a": 2, "train/b": 0.25, "train/c": 7}
    rows = [json.loads(line) for line in lines(tmp_path)]
    assert len(rows) == 2
    assert rows[0]["step"] == 10 and rows[1]["step"] == 20
    assert rows[0]["train/c"] == 7 and isinstance(rows[0]["train/c"], int)
    assert rows[0]["train/b"] == 0.25 and rows[1] == {
        "step": 20,
        "time": rows[1]["time"],
        "loss": 0.75,
    }
    assert 0 <= rows[0]["time"] <= rows[1]["time"] < 60
    assert read_metrics(tmp_path) == rows == read_metrics(tmp_path / "metrics.jsonl")


def test_tensors_converted(tmp_path):
    x = torch.tensor(3.0, requires_grad=True)
    with Logger(tmp_path, tensorboard=False) as logger:
        logger.scalars(
            {
                "grad": x * 2,  # requires grad: detached
                "f64": torch.tensor(0.1, dtype=torch.float64),
                "int": torch.tensor(5),
                "one": torch.ones(1, 1),
                "arr": np.array([2.5]),
            }
        )
        written = logger.write(1)
    assert written == {"grad": 6.0, "f64": 0.1, "int": 5, "one": 1.0, "arr": 2.5}
    row = read_metrics(tmp_path)[0]
    assert row["int"] == 5 and isinstance(row["int"], int) and row["f64"] == 0.1
    assert list(row) == ["step", "time", "grad", "f64", "int", "one", "arr"]  # insertion order


def test_bad_values_raise(tmp_path):
    with Logger(tmp_path, tensorboard=False) as logger:
        with pytest.raises(ValueError, match="'vec'"):
            logger.scalar("vec", torch.zeros(3))
        with pytest.raises(TypeError, match="'text'"):
            logger.scalar("text", "1.0")
        with pytest.raises(ValueError, match="step"):
            logger.scalar("step", 1)
        with pytest.raises(TypeError, match="step"):
            logger.write(1.5)
    with pytest.raises(RuntimeError, match="closed"):
        logger.write(2)


def test_non_finite_become_null_and_file_stays_valid_json(tmp_path):
    with Logger(tmp_path, tensorboard=False) as logger:
        logger.scalars(
            {"nan": math.nan, "inf": torch.tensor(math.inf), "ninf": np.float64(-np.inf)}
        )
        logger.scalar("ok", 1.0)
        written = logger.write(5)
    assert math.isnan(written["nan"]) and written["inf"] == math.inf  # returned as they are
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    row = json.loads(text, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert row["nan"] is None and row["inf"] is None and row["ninf"] is None and row["ok"] == 1.0


def test_truncated_last_line_skipped_and_repaired_on_append(tmp_path):
    with Logger(tmp_path, tensorboard=False) as logger:
        for step in range(3):
            logger.scalar("x", step)
            logger.write(step)
    path = tmp_path / "metrics.jsonl"
    with open(path, "a") as file:
        file.write('{"step": 3, "x": 3.1')  # crash mid-write
    assert [row["step"] for row in read_metrics(path)] == [0, 1, 2]
    with pytest.warns(UserWarning, match="partial"):
        logger = Logger(tmp_path, tensorboard=False)  # a resumed run appends after valid lines
    logger.scalar("x", 4)
    logger.write(4)
    logger.close()
    assert [row["step"] for row in read_metrics(path)] == [0, 1, 2, 4]
    assert all(json.loads(line) for line in lines(tmp_path))


def test_corrupt_middle_line_raises(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 1\n{"step": 2}\n')
    with pytest.raises(ValueError, match=":2"):
        read_metrics(path)


def test_tensorboard_event_file(tmp_path):
    pytest.importorskip("tensorboard")
    with Logger(tmp_path) as logger:
        logger.scalar("loss", 0.5)
        logger.scalar("nan", math.nan)
        logger.image("obs", np.zeros((8, 8, 3), np.uint8))
        logger.write(1)
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tmp_path))
    accumulator.Reload()
    assert [event.value for event in accumulator.Scalars("loss")] == [0.5]
    assert math.isnan(accumulator.Scalars("nan")[0].value)
    assert "obs" in accumulator.Tags()["images"]


def test_missing_tensorboard_warns_and_keeps_jsonl(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch.utils.tensorboard", None)
    with pytest.warns(UserWarning, match="tensorboard is not installed"):
        logger = Logger(tmp_path)
    logger.scalar("x", 1)
    logger.write(0)
    logger.close()
    assert read_metrics(tmp_path)[0]["x"] == 1
    assert not list(tmp_path.glob("events.out.tfevents.*"))


@pytest.mark.parametrize("tensorboard", [False, True])
def test_image_and_video_do_not_crash(tmp_path, tensorboard, monkeypatch):
    if tensorboard:
        pytest.importorskip("tensorboard")
    monkeypatch.setattr(logger_module, "_MOVIEPY", False)  # exercise the file fallback
    rng = np.random.default_rng(0)
    with Logger(tmp_path, tensorboard=tensorboard) as logger:
        logger.image("obs", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        logger.image("gray", torch.zeros(16, 16, dtype=torch.uint8))
        logger.video("dream/open_loop", rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8))
        logger.video("gray", np.zeros((4, 16, 16, 1), np.uint8), fps=10)
        logger.write(7)
        with pytest.raises(TypeError, match="uint8"):
            logger.image("float", np.zeros((4, 4, 3), np.float32))
        with pytest.raises(ValueError, match="T, H, W, C"):
            logger.video("bad", np.zeros((16, 16, 3), np.uint8))
    if importlib_has("imageio"):
        videos = sorted(p.name for p in (tmp_path / "videos").iterdir())
        assert len(videos) == 2 and videos[0].startswith("dream_open_loop_000000007.")
        images = list((tmp_path / "images").glob("*.png")) if not tensorboard else []
        assert len(images) == (0 if tensorboard else 2)


def importlib_has(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_unwritable_logdir_raises_at_construction(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: chmod does not restrict writes")
        with pytest.raises(PermissionError, match="locked"):
            Logger(locked, tensorboard=False)
        with pytest.raises(PermissionError, match="locked"):
            Logger(locked / "run", tensorboard=False)
    finally:
        os.chmod(locked, 0o700)


def test_logdir_under_a_file_raises_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="cannot create log directory .*file/run"):
        Logger(blocker / "run", tensorboard=False)


def test_wall_clock_adds_up_the_sittings_of_a_resumed_run():
    # Each sitting's logger restarts its time at 0; the second sitting is found where time goes
    # back, the third (its first row later than the second's last) only by its recorded start.
    rows = [
        {"step": 10, "time": 100.0},
        {"step": 20, "time": 200.0},  # sitting 1 stops here
        {"step": 30, "time": 50.0},
        {"step": 40, "time": 60.0},  # sitting 2 stops here
        {"step": 50, "time": 500.0},
        {"step": 60, "time": 600.0},
    ]
    assert wall_clock(rows, sitting_starts=[20, 40]) == [100, 200, 250, 260, 760, 860]
    # without sittings.jsonl only the time going back shows a resume
    assert wall_clock(rows) == [100, 200, 250, 260, 760, 860][:4] + [700, 800]
    # a row at the step a sitting started from still belongs to the sitting before it
    assert wall_clock(rows, sitting_starts=[0, 20, 20, 40]) == [100, 200, 250, 260, 760, 860]
    # a row logged at env step 0 by a fresh run's first sitting does not open a new one
    fresh = [{"step": 0, "time": 5.0}, {"step": 10, "time": 100.0}, {"step": 20, "time": 200.0}]
    assert wall_clock(fresh, sitting_starts=[0]) == [5, 100, 200]
    assert wall_clock([]) == []
    assert wall_clock([{"step": 5}, {"step": 6, "time": 3.0}]) == [0.0, 3.0]
