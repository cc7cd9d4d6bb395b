"""The observation-dict contract (DESIGN.md §3) for every installed suite, and determinism."""

import numpy as np
import pytest

from rssm.envs import env_spec, make_env

FLAGS = ("reward", "is_first", "is_last", "is_terminal")


def check_obs(env, obs, first):
    spec = env_spec(env)
    assert set(obs) == set(spec.obs_space.spaces) | set(FLAGS), sorted(obs)
    for key, space in spec.obs_space.spaces.items():
        assert obs[key].shape == space.shape, (key, obs[key].shape, space.shape)
        assert obs[key].dtype == space.dtype, (key, obs[key].dtype)
    if "image" in obs:
        assert obs["image"].dtype == np.uint8 and obs["image"].ndim == 3
    if "state" in obs:
        assert obs["state"].dtype == np.float32 and obs["state"].ndim == 1
    assert obs["reward"].dtype == np.float32 and obs["reward"].shape == ()
    for flag in FLAGS[1:]:
        assert obs[flag].dtype == bool and obs[flag].shape == (), flag
    assert bool(obs["is_first"]) == first
    assert env.observation_space.contains(obs)


def check_contract(env, max_steps=1000, expect_terminal=None):
    """Runs one episode to its end; returns (steps, last obs)."""
    spec = env_spec(env)
    assert spec.action_dim == env.action_space.shape[0]
    obs, info = env.reset()
    assert isinstance(info, dict)
    check_obs(env, obs, first=True)
    assert obs["reward"] == 0 and not obs["is_last"] and not obs["is_terminal"]
    for step in range(1, max_steps + 1):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, _ = env.step(action)
        check_obs(env, obs, first=False)
        assert obs["reward"] == np.float32(reward)
        assert bool(obs["is_last"]) == bool(terminated or truncated)
        assert bool(obs["is_terminal"]) == bool(terminated)
        if obs["is_last"]:
            if expect_terminal is not None:
                assert bool(obs["is_terminal"]) == expect_terminal
            return step, obs
    raise AssertionError(f"no episode end within {max_steps} steps")


def test_builtin_pointmass_contract():
    for obs in ("pixels", "state", "both"):
        env = make_env("builtin:pointmass", obs=obs, time_limit=20, seed=0)
        steps, _ = check_contract(env, expect_terminal=False)
        assert steps == 20
    spec = env_spec(make_env("builtin:pointmass", obs="both"))
    assert spec.action_dim == 2 and not spec.discrete
    assert spec.obs_space["image"].shape == (64, 64, 3) and spec.obs_space["state"].shape == (6,)


def test_builtin_pointmass_discrete_contract():
    env = make_env("builtin:pointmass-discrete", num_actions=9, time_limit=10, seed=0)
    check_contract(env, expect_terminal=False)
    spec = env_spec(env)
    assert spec.discrete and spec.action_dim == 9


def test_builtin_echo_contract():
    env = make_env("builtin:echo", length=6, action_dim=3)
    steps, _ = check_contract(env, expect_terminal=True)
    assert steps == 6
    assert env_spec(env).obs_space["state"].shape == (4,)


def test_echo_time_alignment():
    """Rows of DESIGN.md §3: r_t = sum(a_{t-1}) and o_t echoes a_{t-1}; a reset row has zeros."""
    env = make_env("builtin:echo", length=4, action_dim=2)
    obs, _ = env.reset()
    rows = [obs]
    actions = [np.array([0.1 * t, -0.2], np.float32) for t in range(4)]
    for action in actions:
        obs, *_ = env.step(action)
        rows.append(obs)
    for t, row in enumerate(rows):
        assert row["state"][0] == t
        if t == 0:
            assert row["is_first"] and row["reward"] == 0
            np.testing.assert_array_equal(row["state"][1:], 0)
        else:
            np.testing.assert_allclose(row["state"][1:], actions[t - 1])
            assert row["reward"] == pytest.approx(actions[t - 1].sum())
    assert [bool(r["is_terminal"]) for r in rows] == [False] * 4 + [True]


def _episode(env, steps, reset_seed=None):
    obs, _ = env.reset(seed=reset_seed)
    frames = [obs]
    for t in range(steps):
        obs, *_ = env.step(np.array([np.sin(t), np.cos(t)], np.float32))
        frames.append(obs)
    return frames


def _same(a, b):
    return all(np.array_equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)


def test_pointmass_is_deterministic_under_a_seed():
    a = _episode(make_env("builtin:pointmass", obs="both", seed=5), 30)
    b = _episode(make_env("builtin:pointmass", obs="both", seed=5), 30)
    c = _episode(make_env("builtin:pointmass", obs="both", seed=6), 30)
    assert _same(a, b) and not _same(a, c)
    env = make_env("builtin:pointmass", obs="both", seed=5)
    _episode(env, 3)
    assert _same(_episode(env, 30, reset_seed=5), a)  # reset(seed=...) replays the episode


def test_second_episode_is_deterministic_too():
    envs = [make_env("builtin:pointmass", obs="state", seed=1, noop_max=5) for _ in range(2)]
    first = [_episode(env, 5) for env in envs]
    second = [_episode(env, 5) for env in envs]
    assert _same(*first) and _same(*second) and not _same(first[0], second[0])


def test_gym_cartpole_vector_contract():
    env = make_env("gym:CartPole-v1", seed=0)
    spec = env_spec(env)
    assert spec.discrete and spec.action_dim == 2
    assert spec.obs_space["state"].shape == (4,)
    _, obs = check_contract(env, max_steps=600)
    assert obs["is_terminal"]  # a random policy lets the pole fall long before 500 steps


def test_gym_time_limit_is_a_truncation():
    env = make_env("gym:Pendulum-v1", time_limit=7, action_repeat=2, seed=0)
    steps, _ = check_contract(env, expect_terminal=False)
    assert steps == 4
    assert env_spec(env).obs_space["state"].shape == (3,)


def test_gym_pendulum_pixels_contract():
    pytest.importorskip("pygame")
    env = make_env("gym:Pendulum-v1", obs="pixels", time_limit=5, seed=0)
    check_contract(env, expect_terminal=False)
    assert set(env_spec(env).obs_space.spaces) == {"image"}
    env = make_env("gym:Pendulum-v1", obs="both", image_size=32, grayscale=True, time_limit=3)
    check_contract(env)
    assert env_spec(env).obs_space["image"].shape == (32, 32, 1)


def test_gym_pixels_render_once_per_agent_step(monkeypatch):
    pytest.importorskip("pygame")
    from rssm.envs.gym import GymDict

    env = make_env("gym:Pendulum-v1", obs="pixels", action_repeat=4, time_limit=10, seed=0)
    calls = []
    convert = GymDict._convert

    def counting(self, obs, fresh):
        calls.append(fresh)
        return convert(self, obs, fresh)

    monkeypatch.setattr(GymDict, "_convert", counting)
    env.reset()
    env.step(env.action_space.sample())
    assert calls == [True, False, False, False, True]


def test_gym_car_racing_discrete():
    pytest.importorskip("Box2D")
    pytest.importorskip("pygame")  # CarRacing draws its observations with pygame
    env = make_env("gym:CarRacing-v3", continuous=False, time_limit=5, seed=0)
    spec = env_spec(env)
    assert spec.discrete and spec.action_dim == 5
    assert spec.obs_space["image"].shape == (64, 64, 3)
    check_contract(env, expect_terminal=False)


@pytest.mark.dmc
@pytest.mark.parametrize("obs", ["pixels", "proprio", "both"])
def test_dmc_cartpole_swingup_contract(obs):
    pytest.importorskip("dm_control")
    env = make_env("dmc:cartpole-swingup", obs=obs, time_limit=6, action_repeat=2, seed=0)
    steps, _ = check_contract(env, expect_terminal=False)
    assert steps == 3
    spec = env_spec(env)
    assert spec.action_dim == 1 and not spec.discrete
    assert ("image" in spec.obs_space.spaces) == (obs != "proprio")
    assert ("state" in spec.obs_space.spaces) == (obs != "pixels")
    if obs != "pixels":
        assert spec.obs_space["state"].shape == (5,)  # position 3 + velocity 2
    if obs != "proprio":
        assert spec.obs_space["image"].shape == (64, 64, 3)


@pytest.mark.dmc
def test_dmc_native_time_limit_is_not_terminal():
    pytest.importorskip("dm_control")
    env = make_env("dmc:cartpole-swingup", obs="proprio", action_repeat=4, seed=0)
    steps, obs = check_contract(env, max_steps=300, expect_terminal=False)
    assert steps == 250  # dm_control's 1000 steps / action repeat 4


@pytest.mark.dmc
def test_dmc_is_deterministic_and_options_work():
    pytest.importorskip("dm_control")
    a = _dmc_states(seed=2)
    assert np.array_equal(a, _dmc_states(seed=2)) and not np.array_equal(a, _dmc_states(seed=3))
    env = make_env("dmc:cartpole-swingup", image_size=(32, 48), camera=1, fast_render=True, seed=0)
    obs, _ = env.reset()
    assert obs["image"].shape == (32, 48, 3) and obs["image"].std() > 0


def _dmc_states(seed):
    env = make_env("dmc:cartpole-swingup", obs="proprio", seed=seed)
    obs, _ = env.reset()
    states = [obs["state"]]
    for _ in range(5):
        states.append(env.step(np.ones(1, np.float32))[0]["state"])
    return np.stack(states)


@pytest.mark.dmc
def test_dmc_renders_once_per_agent_step(monkeypatch):
    pytest.importorskip("dm_control")
    from rssm.envs.dmc import DMCEnv

    env = make_env("dmc:cartpole-swingup", action_repeat=4, seed=0)
    env.reset()
    renders = []
    original = DMCEnv.render
    monkeypatch.setattr(DMCEnv, "render", lambda self: renders.append(1) or original(self))
    for _ in range(3):
        env.step(np.zeros(1, np.float32))
    assert len(renders) == 3


def test_atari_pong_contract():
    pytest.importorskip("ale_py")
    env = make_env("atari:pong", action_repeat=4, noop_max=10, time_limit=40, seed=0)
    steps, _ = check_contract(env, expect_terminal=False)
    assert 8 <= steps <= 10  # the up to 10 no-ops count toward the 40 raw steps
    spec = env_spec(env)
    assert spec.discrete and spec.action_dim == 6
    assert spec.obs_space["image"].shape == (64, 64, 3)
    env = make_env("atari:pong", grayscale=True, image_size=84, sticky=False, time_limit=4)
    check_contract(env)
    assert env_spec(env).obs_space["image"].shape == (84, 84, 1)
