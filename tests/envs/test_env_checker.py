"""The environment checker at the driver's boundary: observations outside their space, NaNs, a
changed action space and exceptions inside the env become one clear error naming the env, the key
and the step; a training run checkpoints what it has first (issue 13)."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from rssm.cli import main
from rssm.data import Driver, EnvError, RandomPolicy
from rssm.envs import env_spec, make_env
from rssm.models.encoder import MultiEncoder
from rssm.run.checkpoint import load_checkpoint

ENV_ID = "HostileForTests-v0"
BAD_STEP = 5  # the env step (within an episode) at which the env misbehaves


class Hostile(gymnasium.Env):
    """A 3-dim state env of 12-step episodes that misbehaves at step ``BAD_STEP`` of episode
    ``bad_episode`` in one way (``mode``)."""

    def __init__(self, mode: str = "none", bad_episode: int = 0):
        self.mode, self.bad_episode = mode, bad_episode
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.episode, self.t = -1, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.t += 1
        obs, reward = np.full(3, 0.1 * self.t, np.float32), 1.0
        if self.episode == self.bad_episode and self.t == BAD_STEP:
            if self.mode == "nan_obs":
                obs[1] = np.nan
            elif self.mode == "inf_reward":
                reward = float("inf")
            elif self.mode == "raise":
                raise RuntimeError("the simulator exploded")
            elif self.mode == "shape":
                obs = np.zeros(4, np.float32)
            elif self.mode == "action_space":
                self.action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        return obs, reward, False, self.t >= 12, {}


gymnasium.register(ENV_ID, entry_point=Hostile)


def drive(mode: str, nonfinite: str = "error", episodes: int = 2) -> list[float]:
    env = make_env(f"gym:{ENV_ID}", seed=0, mode=mode)
    driver = Driver([env], seed=0, name=f"gym:{ENV_ID}", nonfinite=nonfinite)
    rewards: list[float] = []
    driver.on_step(lambda transition, worker: rewards.append(float(transition["reward"])))
    driver(RandomPolicy(2, seed=0), episodes=episodes)
    return rewards


def test_a_well_behaved_env_passes_the_checker():
    rewards = drive("none")
    assert len(rewards) == 2 * 13 and sum(rewards) == 2 * 12


@pytest.mark.parametrize(
    ("mode", "fragments"),
    [
        ("nan_obs", ["'state' holds NaN or inf", "env.nonfinite: warn"]),
        ("inf_reward", ["'reward' holds NaN or inf"]),
        ("shape", ["'state' is float32[4]", "says float32[3]"]),
        ("action_space", ["action space changed", "Box(-1.0, 1.0, (3,), float32)"]),
        ("raise", ["env.step raised RuntimeError: the simulator exploded"]),
    ],
)
def test_a_misbehaving_env_is_one_error_naming_env_key_and_step(mode, fragments):
    with pytest.raises(EnvError) as caught:
        drive(mode)
    text = str(caught.value)
    assert f"env 'gym:{ENV_ID}'" in text and "episode 0" in text, text
    assert f"at step {BAD_STEP} of episode 0" in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    assert "\n" not in text


def test_nonfinite_warn_replaces_the_values_by_zero_once_warned():
    with pytest.warns(RuntimeWarning, match="'reward' holds NaN or inf.*replaced by 0") as record:
        rewards = drive("inf_reward", nonfinite="warn", episodes=1)
    assert len([w for w in record if "holds NaN" in str(w.message)]) == 1
    assert rewards[BAD_STEP] == 0.0 and np.isfinite(rewards).all()
    assert sum(rewards) == 12 - 1


def test_env_nonfinite_is_checked_in_the_config(capsys):
    code = main(["train", "--configs", "planet", "debug", "--env.nonfinite", "ignore"])
    err = capsys.readouterr().err
    assert code == 2 and "env.nonfinite' must be 'error' or 'warn'" in err, err


def test_an_env_raising_mid_run_checkpoints_and_ends_in_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [
        "train", "--configs", "planet", "debug", "--env", f"gym:{ENV_ID}",
        "--env.options", "{mode: raise, bad_episode: 2}", "--run.steps", "60",
        "--run.seed_episodes", "1", "--run.eval_every", "0", "--run.video_every", "0",
        "--run.train_every", "10", "--run.train_steps", "1", "--run.tensorboard", "false",
        "--logdir", "run",
    ]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("rssm train: error: env 'gym:HostileForTests-v0' at step 5 of episode 2")
    assert "RuntimeError: the simulator exploded" in err and "--resume goes on" in err, err
    run = Path("run")
    log = (run / "error.log").read_text()
    assert "the simulator exploded" in log and "Traceback" in log and "Hostile" in log
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["counters"]["agent_steps"] == 2 * 13 + BAD_STEP, state["counters"]
    assert len(list((run / "replay").glob("*.npz"))) == 2, "both finished episodes are kept"


class Robot(gymnasium.Env):
    """A Dict observation: a camera image, a proprio vector and a discrete mode flag."""

    def __init__(self, extra: str = "none"):
        entries = {
            "camera": spaces.Box(0, 255, (32, 48, 3), np.uint8),
            "joints": spaces.Box(-1.0, 1.0, (4,), np.float32),
            "mode": spaces.Discrete(3),
        }
        if extra == "text":
            entries["note"] = spaces.Text(8)
        self.observation_space = spaces.Dict(entries)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


gymnasium.register("RobotForTests-v0", entry_point=Robot)


def test_a_dict_observation_sends_images_to_the_cnn_and_vectors_to_the_mlp():
    env = make_env("gym:RobotForTests-v0", seed=0, image_size=16)
    space = env.observation_space
    assert space["camera"].shape == (16, 16, 3) and space["camera"].dtype == np.uint8
    assert space["state"].shape == (4 + 3,) and space["state"].dtype == np.float32
    obs, _ = env.reset(seed=0)
    assert obs["camera"].shape == (16, 16, 3) and obs["state"].shape == (7,)
    assert obs["state"][4:].sum() == 1.0, "the discrete entry is one-hot"
    spec = env_spec(env)
    with pytest.warns(UserWarning, match=r"\['camera'\] match neither cnn_keys='image'"):
        MultiEncoder(spec.obs_space, cnn_keys="image", mlp_keys="state", cnn_depth=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder = MultiEncoder(spec.obs_space, cnn_keys="camera", mlp_keys="state", cnn_depth=4)
    assert list(encoder.cnn_shapes) == ["camera"] and list(encoder.mlp_shapes) == ["state"]


def test_a_dict_entry_that_is_neither_image_nor_vector_is_named():
    with pytest.raises(ValueError, match=r"entry 'note' has space Text.*neither an image"):
        make_env("gym:RobotForTests-v0", extra="text")
