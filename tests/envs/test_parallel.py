"""Environments in worker processes (env.parallel: process): the same transitions as local envs,
errors and hangs reported by name, and a training run that resumes exactly."""

from __future__ import annotations

import functools
import time
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from rssm.config import load_presets, merge
from rssm.data import Driver, EnvError, RandomPolicy
from rssm.envs import make_env
from rssm.envs.parallel import ProcessEnv, WorkerError
from rssm.run.checkpoint import load_checkpoint
from rssm.run.train import Config, train


class Faulty(gymnasium.Env):
    """Raises (``mode="raise"``) or hangs (``mode="hang"``) at its third step."""

    def __init__(self, mode: str):
        self.mode = mode
        self.observation_space = spaces.Dict({"state": spaces.Box(-1, 1, (2,), np.float32)})
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return {"state": np.zeros(2, np.float32)}, {}

    def step(self, action):
        self.t += 1
        if self.t == 3 and self.mode == "raise":
            raise RuntimeError("the simulator exploded")
        if self.t == 3 and self.mode == "hang":
            time.sleep(60)
        return {"state": np.zeros(2, np.float32)}, 0.0, False, False, {}


def make_faulty(mode: str) -> gymnasium.Env:
    return Faulty(mode)


class Shrinking(gymnasium.Env):
    """Declares a 4x4x3 image but returns a 2x2x3 one from its second step."""

    observation_space = spaces.Dict({"image": spaces.Box(0, 255, (4, 4, 3), np.uint8),
                                     "state": spaces.Box(-1, 1, (2,), np.float32)})  # fmt: skip
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return {"image": np.full((4, 4, 3), 7, np.uint8), "state": np.ones(2, np.float32)}, {}

    def step(self, action):
        self.t += 1
        size = 4 if self.t < 2 else 2
        image = np.full((size, size, 3), self.t, np.uint8)
        return {"image": image, "state": np.ones(2, np.float32)}, 0.0, False, False, {}


def make_shrinking() -> gymnasium.Env:
    return Shrinking()


def transitions(envs, steps=60):
    driver = Driver(envs, seed=3)
    seen = []
    driver.on_step(lambda t, worker: seen.append((worker, {k: np.copy(v) for k, v in t.items()})))
    driver(RandomPolicy(2, seed=0), steps=steps)
    driver.close()
    return seen


def test_worker_envs_give_the_transitions_of_local_ones():
    make = functools.partial(make_env, "builtin:pointmass", image_size=16, time_limit=20)
    local = transitions([make(seed=i) for i in range(2)])
    workers = transitions(
        [ProcessEnv(functools.partial(make, seed=i), "builtin:pointmass") for i in range(2)]
    )
    assert len(local) == len(workers) == 60
    for (w1, a), (w2, b) in zip(local, workers, strict=True):
        assert w1 == w2 and a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_raising_worker_is_one_error_naming_the_env_with_its_traceback_as_a_note():
    env = ProcessEnv(functools.partial(make_faulty, "raise"), "faulty")
    driver = Driver([env], seed=0, name="faulty")
    with pytest.raises(EnvError) as caught:
        driver(RandomPolicy(1, seed=0), steps=10)
    text = str(caught.value)
    assert "env 'faulty' at step 3 of episode 0" in text, text
    assert "RuntimeError in its worker: the simulator exploded" in text and "\n" not in text
    notes = "".join(getattr(caught.value.__cause__, "__notes__", []))
    assert "Traceback" in notes and "the simulator exploded" in notes
    driver.close()


def test_a_hung_worker_is_reported_not_waited_on():
    env = ProcessEnv(functools.partial(make_faulty, "hang"), "sleepy", timeout=2.0)
    driver = Driver([env], seed=0, name="sleepy")
    start = time.monotonic()
    with pytest.raises(EnvError, match=r"did not answer step within 2 s \(a hung env\?\)"):
        driver(RandomPolicy(1, seed=0), steps=10)
    assert time.monotonic() - start < 30
    driver.close()


def test_worker_errors_at_start_and_a_bad_timeout():
    with pytest.raises(WorkerError, match=r"start raised ValueError in its worker: .*nope"):
        ProcessEnv(functools.partial(make_env, "builtin:nope"), "builtin:nope")
    with pytest.raises(ValueError, match="timeout must be > 0"):
        ProcessEnv(functools.partial(make_faulty, "raise"), "x", timeout=0)
    with pytest.raises(ValueError, match="env.parallel' must be 'none' or 'process'"):
        merge(load_presets(Config, ["planet", "debug"]), {"env": {"parallel": "threads"}})


def test_a_run_with_worker_envs_resumes_exactly(tmp_path):
    def config(name, steps):
        changes = {
            "logdir": str(tmp_path / name),
            "env": {"num_envs": 2, "parallel": "process"},
            "run": {"steps": steps, "checkpoint_every": 60, "eval_every": 0, "video_every": 0,
                    "tensorboard": False},
        }  # fmt: skip
        return merge(load_presets(Config, ["planet", "debug"]), changes)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = train(config("whole", 160))
        train(config("part", 90))  # stops inside episodes (they end at 102)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # exact: no restart warning
            part = train(config("part", 160), resume=True)
    a, b = load_checkpoint(whole / "checkpoint.pt"), load_checkpoint(part / "checkpoint.pt")
    assert a["counters"] == b["counters"]
    for key, value in a["agent"]["model"].items():
        assert np.array_equal(value.numpy(), b["agent"]["model"][key].numpy()), key


def test_images_come_through_shared_memory_and_a_wrong_shape_through_the_pipe():
    env = ProcessEnv(make_shrinking, "shrinking")
    try:
        assert list(env._blocks) == ["image"]  # the uint8 entry; the vector is pickled
        obs, _ = env.reset(seed=0)
        assert obs["image"].shape == (4, 4, 3) and (obs["image"] == 7).all()
        first = env.step(np.zeros(1, np.float32))[0]["image"]
        assert (first == 1).all()
        second = env.step(np.zeros(1, np.float32))[0]["image"]
        assert second.shape == (2, 2, 3) and (second == 2).all()  # for the checker to name
        assert (first == 1).all()  # a copy: the next step did not overwrite it
    finally:
        env.close()
    assert env._blocks == {}
