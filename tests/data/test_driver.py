"""Driver: counts, resets after is_last, transition alignment, determinism, replay wiring."""

import gymnasium
import numpy as np
import pytest
import torch

from rssm.data import Driver, RandomPolicy, Replay


class CountEnv(gymnasium.Env):
    """Episodes of ``length`` steps; ``state`` = [t, first action entry received, reset noise]."""

    def __init__(self, length=4, action_dim=2, discrete=False, contract_keys=True):
        self.length = length
        self.contract_keys = contract_keys
        self.observation_space = gymnasium.spaces.Dict(
            {"state": gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)}
        )
        if discrete:
            self.action_space = gymnasium.spaces.Discrete(action_dim)
        else:
            self.action_space = gymnasium.spaces.Box(-1, 1, (action_dim,), np.float32)
        self.t = None
        self.resets = 0
        self.received = []

    def _obs(self, received, first, last):
        obs = {"state": np.array([self.t, received, self.noise], np.float32)}
        if self.contract_keys:
            obs.update(
                reward=np.float32(self.t),
                is_first=np.bool_(first),
                is_last=np.bool_(last),
                is_terminal=np.bool_(last),
            )
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.noise = 0, float(self.np_random.uniform())
        self.resets += 1
        return self._obs(0.0, True, False), {}

    def step(self, action):
        assert self.t is not None and self.t < self.length, "stepped after is_last"
        self.received.append(action)
        self.t += 1
        done = self.t == self.length
        first = action if np.isscalar(action) else action[0]
        return self._obs(float(first), False, done), float(self.t), done, False, {}


def echo_policy(carry, obs):
    """Deterministic in the observation: action = [state_t / 10, noise]; counts calls in carry."""
    assert not torch.is_grad_enabled(), "policy must run under torch.no_grad()"
    state = torch.as_tensor(obs["state"])
    action = torch.stack([state[:, 0] / 10, state[:, 2]], dim=1)
    return (carry or 0) + 1, action


def record(driver):
    rows = {}
    driver.on_step(lambda transition, worker: rows.setdefault(worker, []).append(transition))
    return rows


def test_counts_and_episode_stats():
    envs = [CountEnv(length=4) for _ in range(3)]
    driver = Driver(envs, seed=0)
    rows, episodes = record(driver), []
    driver.on_episode(lambda stats, worker: episodes.append((worker, stats)))
    carry = driver(echo_policy, steps=10)
    assert carry == 4 and sum(map(len, rows.values())) == 12  # lockstep rounds up to 3 * 4
    assert driver.total_steps == 12 and driver.steps_per_second > 0
    driver(echo_policy, episodes=3)
    assert len(episodes) == 3 and driver.total_episodes == 3
    for _, stats in episodes:
        assert stats == {"return": 1 + 2 + 3 + 4, "length": 4}
    assert sorted(worker for worker, _ in episodes) == [0, 1, 2]


def test_resets_after_is_last_and_alignment():
    envs = [CountEnv(length=3), CountEnv(length=5)]
    driver = Driver(envs, seed=0)
    rows = record(driver)
    driver(echo_policy, steps=2 * 13)
    for worker, env in enumerate(envs):
        transitions = rows[worker]
        t = np.array([row["state"][0] for row in transitions])
        period = env.length + 1  # reset observation + length steps
        np.testing.assert_array_equal(t, np.arange(13) % period)
        first = np.array([row["is_first"] for row in transitions])
        last = np.array([row["is_last"] for row in transitions])
        np.testing.assert_array_equal(first, t == 0)
        np.testing.assert_array_equal(last, t == env.length)
        assert env.resets == 1 + (13 - 1) // period
        for prev, row in zip(transitions, transitions[1:], strict=False):
            expected = np.array([row["state"][0] / 10, row["state"][2]], np.float32)
            np.testing.assert_allclose(row["action"], expected)  # chosen after seeing row
            assert row["action"].dtype == np.float32 and row["action"].shape == (2,)
            if not row["is_first"]:  # the env received the previous row's action
                assert row["state"][1] == pytest.approx(prev["action"][0])
        assert set(transitions[0]) == {
            "state", "reward", "is_first", "is_last", "is_terminal", "action"
        }  # fmt: skip


def test_alternating_calls_continue_where_they_stopped():
    def collect(chunks):
        driver = Driver([CountEnv(length=3), CountEnv(length=4)], seed=7)
        rows = record(driver)
        policy = RandomPolicy(2, seed=1)
        for steps in chunks:
            driver(policy, steps=steps)
        return np.stack([np.concatenate([r["state"], r["action"]]) for r in rows[1]])

    np.testing.assert_array_equal(collect([2] * 10), collect([20]))


def test_determinism_under_seed():
    def run(seed):
        driver = Driver([CountEnv(length=3) for _ in range(2)], seed=seed)
        rows = record(driver)
        driver(RandomPolicy(2, seed=0), steps=16)
        return np.stack([row["state"] for row in rows[0] + rows[1]])

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))
    noise = run(3)[:, 2]
    assert len(np.unique(noise)) > 2, "each reset should get its own derived seed"


def test_contract_keys_are_filled_and_discrete_actions_are_indices():
    env = CountEnv(length=2, action_dim=3, discrete=True, contract_keys=False)
    driver = Driver([env], seed=0)
    rows = record(driver)
    driver(RandomPolicy(3, discrete=True, seed=0), steps=6)
    actions = np.stack([row["action"] for row in rows[0]])
    assert (actions.sum(1) == 1).all() and set(np.unique(actions)) == {0.0, 1.0}
    acted = [row for row in rows[0] if not row["is_last"]]
    assert env.received == [int(row["action"].argmax()) for row in acted]
    np.testing.assert_array_equal([row["is_last"] for row in rows[0]], [0, 0, 1] * 2)
    np.testing.assert_array_equal([row["reward"] for row in rows[0]], [0, 1, 2] * 2)
    assert [bool(row["is_terminal"]) for row in rows[0]] == [False, False, True] * 2


def test_bad_policy_output_and_observation():
    driver = Driver([CountEnv(), CountEnv()], seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        driver(lambda carry, obs: (carry, np.zeros(2)), steps=1)

    class ArrayEnv(CountEnv):
        def reset(self, *, seed=None, options=None):
            return np.zeros(3, np.float32), {}

    with pytest.raises(TypeError, match="dict"):
        Driver([ArrayEnv()])(echo_policy, steps=1)


def test_driver_feeds_replay():
    driver = Driver([CountEnv(length=5) for _ in range(3)], seed=0)
    replay = Replay(1000, seed=0)
    driver.on_step(replay.add)
    driver(RandomPolicy(2, seed=0), steps=60)
    assert len(replay) == 60
    batch = replay.sample(32, 8)
    np.testing.assert_array_equal(batch["is_first"], batch["state"][..., 0] == 0)
    later = batch["state"][:, 1:, 1]
    acted = ~batch["is_first"][:, 1:]
    np.testing.assert_allclose(later[acted], batch["action"][:, :-1, 0][acted])


def test_restored_driver_continues_with_the_same_episodes():
    def run(driver, steps):
        seen = []
        driver.on_step(lambda transition, worker: seen.append((worker, *transition["state"])))
        driver(echo_policy, steps=steps)
        return seen

    lengths = [3, 4]
    original = Driver([CountEnv(n) for n in lengths], seed=7)
    run(original, 2 * 20)  # 20 rounds: both just finished an episode of 4 and 5 transitions
    assert original.between_episodes
    state = original.state_dict()
    restored = Driver([CountEnv(n) for n in lengths], seed=7)
    assert restored.between_episodes, "a new driver starts every env"
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    assert run(restored, 16) == run(original, 16)  # same reset seeds, same episodes
    assert not original.between_episodes and original.total_steps == 56
    with pytest.raises(ValueError, match="has 2 envs"):
        Driver([CountEnv()], seed=7).load_state_dict(state)
