"""The built-in point mass: dynamics, reward, rendering (its speed: benchmarks/env_steps.py)."""

import numpy as np
import pytest

from rssm.envs import make_env
from rssm.envs.builtin import PointMass


def test_velocity_follows_force_and_friction():
    env = PointMass(obs="state", accel=1.0)  # slow enough that no wall is reached
    env.reset(seed=0)
    env._pos = np.zeros(2)  # start in the middle so no wall interferes
    for _ in range(5):
        state = env.step(np.array([1.0, 0.0]))[0]["state"]
    vx, vy = state[2:4]
    top_speed = env.accel / env.friction
    assert 0 < vx < top_speed and vy == 0  # accelerating toward the top speed
    for _ in range(5):
        state = env.step(np.zeros(2))[0]["state"]
    assert 0 < state[2] < vx  # friction decays the velocity
    assert state[2] == pytest.approx(vx * 0.9**5, rel=1e-5)


def test_walls_stop_the_mass():
    env = PointMass(obs="state")
    env.reset(seed=0)
    for _ in range(100):
        state = env.step(np.array([-1.0, 1.0]))[0]["state"]
    bound = 1 - env.mass_radius
    np.testing.assert_allclose(state[:2], [-bound, bound])
    np.testing.assert_array_equal(state[2:4], 0.0)


def test_reward_is_one_on_the_target_and_falls_with_distance():
    env = PointMass(obs="state")
    env.reset(seed=0)
    env._target = np.zeros(2)
    rewards = []
    for x in (0.0, 0.5, 1.0):
        env._pos, env._vel = np.array([x, 0.0]), np.zeros(2)
        rewards.append(env.step(np.zeros(2))[1])
    assert rewards[0] == 1.0 and 1 > rewards[1] > rewards[2] > 0


def test_image_shows_mass_and_target_where_the_state_says():
    env = PointMass(obs="both", image_size=(64, 64))
    obs, _ = env.reset(seed=3)
    image, state = obs["image"], obs["state"]
    for colour, centre in [((235, 70, 50), state[:2]), ((60, 200, 90), state[4:6])]:
        rows, cols = np.nonzero(np.all(image == colour, axis=-1))
        assert len(rows) > 10
        x = (cols.mean() + 0.5) / 64 * 2 - 1
        y = 1 - (rows.mean() + 0.5) / 64 * 2
        # The mass is drawn on top, so a covered target's centroid moves a little.
        np.testing.assert_allclose([x, y], centre, atol=0.1)


def test_other_image_sizes_render_natively():
    for size in [(32, 32), (96, 96), (48, 80)]:
        obs, _ = make_env("builtin:pointmass", image_size=size, seed=0).reset()
        assert obs["image"].shape == (*size, 3)
