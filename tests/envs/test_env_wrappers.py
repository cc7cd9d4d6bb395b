"""Each wrapper of rssm.envs on the built-in envs (numpy only, fast)."""

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit

from rssm.envs import make_env
from rssm.envs.builtin import Echo, PointMass
from rssm.envs.wrappers import (
    ActionRepeat,
    GrayscaleImage,
    NoopStart,
    OneHot,
    OneHotAction,
    ResizeImage,
    grayscale,
    normalize_action,
    resize,
)


class Recorder(gymnasium.Env):
    """Records the raw actions it receives; optional skip_render counting."""

    def __init__(self, action_space, length=100, lazy=False):
        self.action_space = action_space
        self.observation_space = spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (1,))})
        self.actions, self.length, self.t, self.renders = [], length, 0, 0
        if lazy:
            self.skip_render = False

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.renders += 1
        return {"state": np.zeros(1, np.float32)}, {}

    def step(self, action):
        self.actions.append(action)
        self.t += 1
        last = self.t >= self.length
        if not getattr(self, "skip_render", False) or last:
            self.renders += 1
        return {"state": np.array([self.t], np.float32)}, 1.0, last, False, {}


# --- action repeat ---------------------------------------------------------------------------


def test_action_repeat_sums_rewards_and_advances_time():
    env = make_env("builtin:echo", action_repeat=3, length=10)
    env.reset()
    obs, reward, terminated, truncated, _ = env.step(np.array([0.5, 0.25], np.float32))
    assert obs["state"][0] == 3  # three inner steps
    assert reward == pytest.approx(3 * 0.75)
    assert obs["reward"] == pytest.approx(3 * 0.75)
    assert obs["reward"].dtype == np.float32
    assert not terminated and not truncated and not obs["is_last"]


def test_action_repeat_stops_at_episode_end():
    env = make_env("builtin:echo", action_repeat=3, length=10)
    env.reset()
    action = np.array([1.0, 0.0], np.float32)
    for _ in range(3):
        obs, *_ = env.step(action)
    assert obs["state"][0] == 9
    obs, reward, terminated, truncated, _ = env.step(action)  # only one inner step remains
    assert obs["state"][0] == 10
    assert reward == pytest.approx(1.0)
    assert terminated and not truncated
    assert obs["is_last"] and obs["is_terminal"]


def test_action_repeat_rejects_bad_repeat():
    with pytest.raises(ValueError, match="action_repeat"):
        ActionRepeat(Echo(), 0)


def test_action_repeat_renders_only_the_frames_it_returns():
    inner = Recorder(spaces.Box(-1, 1, (1,)), length=10, lazy=True)
    env = ActionRepeat(inner, 4)
    env.reset()
    env.step(np.zeros(1))
    assert inner.renders == 2  # reset + the last of four inner steps
    env.step(np.zeros(1))
    env.step(np.zeros(1))  # episode ends after 2 of the 4 inner steps: rendered anyway
    assert inner.t == 10 and inner.renders == 4
    assert inner.skip_render is False


# --- no-op starts ----------------------------------------------------------------------------


def test_noop_start_takes_a_random_number_of_noops():
    env = make_env("builtin:echo", noop_max=5, length=100, seed=0)
    counts = []
    for _ in range(40):
        obs, _ = env.reset()
        counts.append(int(obs["state"][0]))
        assert obs["is_first"] and obs["reward"] == 0
        np.testing.assert_array_equal(obs["state"][1:], 0.0)  # the no-op of a Box is zero
    assert set(counts) <= set(range(6))
    assert len(set(counts)) >= 4


def test_noop_start_is_seeded():
    def counts(seed):
        env = make_env("builtin:echo", noop_max=30, length=100, seed=seed)
        return [int(env.reset()[0]["state"][0]) for _ in range(10)]

    assert counts(3) == counts(3)
    assert counts(3) != counts(4)


def test_noop_start_uses_action_zero_for_discrete_and_survives_episode_end():
    inner = Recorder(spaces.Discrete(3), length=2)
    env = NoopStart(inner, noop_max=10)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        assert obs["state"][0] < 2  # reset again whenever the no-ops ended the episode
    assert inner.actions and set(inner.actions) == {0}


def test_noop_start_renders_once():
    inner = Recorder(spaces.Box(-1, 1, (1,)), length=1000, lazy=True)
    env = NoopStart(inner, noop_max=20)
    for seed in range(5):
        inner.renders = 0
        env.reset(seed=seed)
        assert inner.renders == (2 if inner.t else 1), inner.t


# --- resize and grayscale --------------------------------------------------------------------


def test_resize_downscale_is_area_average():
    env = PointMass(image_size=(64, 64))
    env.reset(seed=0)
    big = env.render()
    small = resize(big, (32, 32))
    expected = big.reshape(32, 2, 32, 2, 3).astype(np.float32).mean((1, 3))
    assert small.dtype == np.uint8 and small.shape == (32, 32, 3)
    assert np.abs(small.astype(np.float32) - expected).max() <= 0.5 + 1e-4


def test_resize_keeps_constants_and_odd_sizes():
    image = np.full((210, 160, 1), 77, np.uint8)
    for size in [(64, 64), (84, 84), (300, 200), (7, 13)]:
        out = resize(image, size)
        assert out.shape == (*size, 1)
        assert np.all(out == 77)


def test_resize_wrapper_on_dict_observation():
    env = ResizeImage(PointMass(image_size=(64, 64), obs="both"), (16, 24))
    assert env.observation_space["image"].shape == (16, 24, 3)
    assert env.observation_space["state"].shape == (6,)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (16, 24, 3) and obs["state"].shape == (6,)
    obs, *_ = env.step(np.zeros(2))
    assert env.observation_space.contains(obs)


def test_grayscale_wrapper_uses_luma_weights():
    raw = PointMass(image_size=(32, 32))
    env = GrayscaleImage(raw)
    assert env.observation_space["image"].shape == (32, 32, 1)
    obs, _ = env.reset(seed=0)
    rgb = raw.render().astype(np.float64)
    expected = np.round(rgb @ [0.299, 0.587, 0.114])
    assert obs["image"].dtype == np.uint8 and obs["image"].shape == (32, 32, 1)
    assert np.abs(obs["image"][..., 0] - expected).max() <= 1
    # The mass and the target stay distinguishable from the background and from each other.
    from rssm.envs.builtin import _BACKGROUND, _MASS_COLOUR, _TARGET_COLOUR

    greys = [
        round(float(c @ [0.299, 0.587, 0.114])) for c in (_BACKGROUND, _MASS_COLOUR, _TARGET_COLOUR)
    ]
    assert len(set(greys)) == 3
    assert set(greys) <= set(np.unique(obs["image"]).tolist())
    np.testing.assert_array_equal(grayscale(np.zeros((2, 2, 3), np.uint8)), 0)


def test_make_env_resize_and_grayscale_options():
    env = make_env("builtin:pointmass", image_size=(40, 48), grayscale=True, seed=0)
    obs, _ = env.reset()
    assert obs["image"].shape == (40, 48, 1)
    assert env.observation_space["image"].shape == (40, 48, 1)


# --- action normalisation and one-hot --------------------------------------------------------


def test_normalize_action_rescales_and_clips():
    inner = Recorder(spaces.Box(np.float32([0, -4]), np.float32([10, 4]), dtype=np.float32))
    env = normalize_action(inner)
    assert env.action_space == spaces.Box(-1, 1, (2,), np.float32)
    env.reset()
    cases = [([-1, -1], [0, -4]), ([1, 1], [10, 4]), ([0, 0.5], [5, 2]), ([3, -9], [10, -4])]
    for action, raw in cases:
        env.step(np.array(action, np.float32))
        np.testing.assert_allclose(inner.actions[-1], raw, atol=1e-5)


def test_normalize_action_clips_unit_boxes_and_refuses_unbounded_ones():
    unit = Recorder(spaces.Box(-1, 1, (2,)))
    env = normalize_action(unit)
    env.reset()
    env.step(np.array([2.0, 0.3], np.float32))
    np.testing.assert_allclose(unit.actions[-1], [1.0, 0.3])
    for low, high in [(-np.inf, np.inf), ([-1.0, -np.inf], [1.0, 2.0])]:
        unbounded = Recorder(spaces.Box(np.array(low), np.array(high), dtype=np.float32))
        with pytest.raises(ValueError, match="infinite bounds.*give the env finite low/high"):
            normalize_action(unbounded)


def test_one_hot_action():
    inner = Recorder(spaces.Discrete(4, start=2))
    env = OneHotAction(inner)
    assert isinstance(env.action_space, OneHot) and env.action_space.shape == (4,)
    env.reset()
    env.step(np.array([0, 0, 1, 0], np.float32))
    env.step(np.array([0.1, 0.7, 0.1, 0.1], np.float32))  # argmax of a float vector
    env.step(3)
    assert inner.actions == [4, 3, 5]
    with pytest.raises(ValueError, match="one-hot"):
        env.step(np.zeros(3))
    sample = env.action_space.sample()
    assert sample.dtype == np.float32 and sample.sum() == 1 and set(sample) <= {0.0, 1.0}


def test_pointmass_discrete_one_hot_moves_the_mass():
    env = make_env("builtin:pointmass-discrete", obs="state", seed=0)
    assert env.action_space.shape == (5,)
    obs, _ = env.reset()
    up = np.eye(5, dtype=np.float32)[1]
    for _ in range(3):
        obs, *_ = env.step(up)
    vx, vy = obs["state"][2:4]
    assert vy > 0 and vx == 0


# --- time limit ------------------------------------------------------------------------------


def _run(env, action):
    env.reset()
    steps = 0
    while True:
        obs, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if terminated or truncated:
            return steps, obs, terminated, truncated


def test_default_time_limit_of_pointmass_is_a_truncation():
    env = make_env("builtin:pointmass", obs="state")
    steps, obs, terminated, truncated = _run(env, np.zeros(2, np.float32))
    assert steps == 100 and truncated and not terminated
    assert obs["is_last"] and not obs["is_terminal"]


def test_time_limit_counts_raw_steps_before_action_repeat():
    env = make_env("builtin:pointmass", obs="state", time_limit=7, action_repeat=2)
    steps, obs, _, truncated = _run(env, np.zeros(2, np.float32))
    assert steps == 4 and truncated and obs["is_last"] and not obs["is_terminal"]


def test_time_limit_before_termination_truncates_echo():
    env = make_env("builtin:echo", length=10, time_limit=5)
    steps, obs, terminated, truncated = _run(env, np.zeros(2, np.float32))
    assert steps == 5 and truncated and not terminated and not obs["is_terminal"]
    env = make_env("builtin:echo", length=10)
    steps, obs, terminated, truncated = _run(env, np.zeros(2, np.float32))
    assert steps == 10 and terminated and obs["is_terminal"] and obs["is_last"]


def test_time_limit_is_gymnasiums_wrapper():
    env = make_env("builtin:pointmass", time_limit=3)
    inner = env
    while not isinstance(inner, TimeLimit):
        inner = inner.env
    assert inner._max_episode_steps == 3
