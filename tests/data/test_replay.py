"""Replay: capacity, eviction, streams, boundaries, dtypes, sampling, memory estimate, resume."""

import tracemalloc

import gymnasium
import numpy as np
import pytest
import torch

from rssm.data import Replay, format_bytes


def make_step(worker, index, *, first=False, last=False, image_size=4):
    """A transition whose ``state`` encodes (worker, index) so tests can trace every row."""
    return {
        "image": np.full((image_size, image_size, 3), index % 256, np.uint8),
        "state": np.array([worker, index], np.float32),
        "reward": np.float32(index),
        "is_first": np.bool_(first),
        "is_last": np.bool_(last),
        "is_terminal": np.bool_(False),
        "action": np.array([index, -index], np.float32),
    }


def fill(replay, worker, count, start=0, episode_length=None):
    for index in range(start, start + count):
        pos = index % episode_length if episode_length else None
        first = pos == 0 if episode_length else False
        last = pos == episode_length - 1 if episode_length else False
        replay.add(make_step(worker, index, first=first, last=last), worker=worker)


def test_capacity_and_oldest_first_eviction():
    replay = Replay(10, seed=0)
    fill(replay, 0, 15)
    assert len(replay) == 10
    batch = replay.sample(200, 1)
    assert set(batch["state"][:, 0, 1].astype(int)) == set(range(5, 15))
    only = replay.sample(3, 10)  # a single valid start: the 10 newest steps in order
    np.testing.assert_array_equal(only["state"][:, :, 1], np.tile(np.arange(5, 15), (3, 1)))


def test_eviction_is_global_oldest_across_workers():
    replay = Replay(8, seed=0)
    fill(replay, 0, 6)
    fill(replay, 1, 6)  # evicts worker 0's steps 0..3
    assert len(replay) == 8
    long = replay.sample(100, 3)
    assert (long["state"][:, :, 0] == 1).all(), "worker 0 holds only 2 steps"
    short = replay.sample(300, 2)
    held0 = short["state"][short["state"][:, 0, 0] == 0][:, :, 1]
    np.testing.assert_array_equal(np.unique(held0, axis=0), [[4, 5]])


def test_worker_streams_never_mix():
    replay = Replay(1000, seed=1)
    for index in range(120):
        for worker in range(3):
            replay.add(make_step(worker, index), worker=worker)
    state = replay.sample(256, 7)["state"]
    assert (state[:, :, 0] == state[:, :1, 0]).all(), "a sequence mixed workers"
    assert (np.diff(state[:, :, 1], axis=1) == 1).all(), "steps are not consecutive"
    assert len(np.unique(state[:, 0, 0])) == 3


def test_sequences_cross_episode_boundaries_with_is_first():
    replay = Replay(100, seed=0)
    fill(replay, 0, 40, episode_length=4)
    batch = replay.sample(200, 6)
    index = batch["state"][:, :, 1].astype(int)
    np.testing.assert_array_equal(batch["is_first"], index % 4 == 0)
    np.testing.assert_array_equal(batch["is_last"], index % 4 == 3)
    assert batch["is_first"][:, 1:].any(), "no sequence crossed a boundary"
    assert replay.episodes == 10


def test_not_enough_steps_raises():
    replay = Replay(100)
    with pytest.raises(ValueError, match="length 4"):
        replay.sample(2, 4)
    fill(replay, 0, 3)
    fill(replay, 1, 3)
    with pytest.raises(ValueError, match="longest worker stream holds 3"):
        replay.sample(2, 4)
    assert replay.sample(2, 3)["state"].shape == (2, 3, 2)


def test_dtypes_and_shapes_are_preserved():
    replay = Replay(50)
    fill(replay, 0, 20)
    batch = replay.sample(4, 8)
    step = make_step(0, 0)
    assert set(batch) == set(step)
    for key, value in step.items():
        assert batch[key].dtype == value.dtype, key
        assert batch[key].shape == (4, 8, *value.shape), key
    assert replay._data["image"].dtype == np.uint8


def test_add_accepts_torch_and_rejects_bad_steps():
    replay = Replay(10)
    step = {key: torch.as_tensor(value) for key, value in make_step(0, 1).items()}
    replay.add(step)
    assert replay.sample(1, 1)["state"].dtype == np.float32
    bad = make_step(0, 2)
    del bad["reward"]
    with pytest.raises(ValueError, match=r"missing \['reward'\]"):
        replay.add(bad)
    bad = make_step(0, 2)
    bad["state"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="'state' has shape \\(3,\\)"):
        replay.add(bad)
    bad = make_step(0, 2)
    bad["image"] = bad["image"].astype(np.float32)
    with pytest.raises(ValueError, match="'image'"):
        replay.add(bad)
    with pytest.raises(ValueError, match="worker"):
        replay.add(make_step(0, 2), worker=-1)
    assert len(replay) == 1


def test_seeded_sampling_is_reproducible():
    def sampled(seed):
        replay = Replay(100, seed=seed)
        fill(replay, 0, 60)
        fill(replay, 1, 30)
        return [replay.sample(8, 5)["state"] for _ in range(3)]

    for a, b in zip(sampled(3), sampled(3), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any((a != b).any() for a, b in zip(sampled(3), sampled(4), strict=True))


def _chi_square(counts, expected):
    return float((((counts - expected) ** 2) / expected).sum())


@pytest.mark.parametrize("workers", [1, 10])
def test_starts_are_uniform(workers):
    # One long stream takes the rejection path; ten short ones take the listing path.
    replay = Replay(1000, seed=0)
    length, per_worker = (11, 50) if workers == 1 else (5, 6)
    for worker in range(workers):
        fill(replay, worker, per_worker)
    starts = np.concatenate([replay.sample(5000, length)["state"][:, 0] for _ in range(8)])
    valid = per_worker - length + 1
    code = starts[:, 0].astype(int) * valid + starts[:, 1].astype(int)
    counts = np.bincount(code, minlength=workers * valid)
    assert len(counts) == workers * valid, "a start without enough successors was drawn"
    cells = workers * valid
    # chi-square with cells-1 dof: mean cells-1, sd sqrt(2(cells-1)); allow 5 sd.
    bound = (cells - 1) + 5 * np.sqrt(2 * (cells - 1))
    assert _chi_square(counts, len(code) / cells) < bound, counts


def test_uneven_streams_are_weighted_by_valid_starts():
    replay = Replay(100, seed=2)
    fill(replay, 0, 30)  # 26 starts of length 5
    fill(replay, 1, 10)  # 6 starts
    workers = replay.sample(20000, 5)["state"][:, 0, 0]
    assert abs((workers == 1).mean() - 6 / 32) < 0.015


def test_ram_estimate_matches_allocation():
    shapes = {"image": ((32, 32, 3), np.uint8), "state": ((5,), np.float32)}
    space = gymnasium.spaces.Dict(
        {
            "image": gymnasium.spaces.Box(0, 255, (32, 32, 3), np.uint8),
            "state": gymnasium.spaces.Box(-np.inf, np.inf, (5,), np.float32),
        }
    )
    capacity = 2000
    estimate = Replay.estimate_bytes(shapes, 3, capacity)
    assert estimate == Replay.estimate_bytes(space, 3, capacity)
    step = {
        "image": np.ones((32, 32, 3), np.uint8),
        "state": np.ones(5, np.float32),
        "reward": np.float32(0),
        "is_first": np.bool_(False),
        "is_last": np.bool_(False),
        "is_terminal": np.bool_(False),
        "action": np.zeros(3, np.float32),
    }
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        replay = Replay(capacity)
        for _ in range(capacity + 10):
            replay.add(step)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert replay.nbytes == estimate
    assert abs(used - estimate) / estimate < 0.03, (used, estimate)
    assert replay.stats()["bytes"] == estimate
    assert format_bytes(12 * 2**30) == "12.0 GiB"
    assert format_bytes(512) == "512 B"


def test_state_dict_round_trip_resumes_exactly():
    replay = Replay(50, seed=5)
    fill(replay, 0, 40, episode_length=7)
    fill(replay, 1, 25, episode_length=7)
    state = replay.state_dict()
    restored = Replay(50, seed=99)
    restored.load_state_dict(state)
    assert len(restored) == len(replay) and restored.episodes == replay.episodes
    for _ in range(3):
        a, b = replay.sample(8, 6), restored.sample(8, 6)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    fill(replay, 1, 10, start=25)
    fill(restored, 1, 10, start=25)
    np.testing.assert_array_equal(replay.sample(16, 9)["state"], restored.sample(16, 9)["state"])
    with pytest.raises(ValueError, match="capacity 50"):
        Replay(40).load_state_dict(state)
