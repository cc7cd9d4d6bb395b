"""Replay without its data: ``state_dict(data=False)`` rebuilt slot by slot from episode files."""

import shutil

import numpy as np
import pytest

from rssm.data import Replay
from rssm.data.episodes import list_episodes


def make_step(worker, index, *, first=False, last=False):
    return {
        "image": np.full((4, 4, 3), index % 256, np.uint8),
        "state": np.array([worker, index], np.float32),
        "reward": np.float32(index),
        "is_first": np.bool_(first),
        "is_last": np.bool_(last),
        "is_terminal": np.bool_(False),
        "action": np.array([index], np.float32),
    }


def lockstep(replay, lengths, rounds, start=0):
    """Workers step together; worker ``w`` has episodes of ``lengths[w]`` steps; returns the
    next index. Every worker ends an episode at the last round when ``rounds`` is a multiple of
    every length."""
    for t in range(start, start + rounds):
        for worker, length in enumerate(lengths):
            pos = t % length
            step = make_step(worker, t, first=pos == 0, last=pos == length - 1)
            replay.add(step, worker=worker)
    return start + rounds


def assert_same(a, b, draws=4):
    assert len(a) == len(b) and a.episodes == b.episodes
    for length in (1, 3, 6):
        for _ in range(draws):
            x, y = a.sample(7, length), b.sample(7, length)
            for key in x:
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def assert_same_state(a, b):
    """Same samples, and slot by slot the same data and stream bookkeeping."""
    assert_same(a, b)
    full, restored = a.state_dict(), b.state_dict()
    for key in ("stream", "position", "next"):
        np.testing.assert_array_equal(full[key], restored[key], err_msg=key)
    for key in full["data"]:
        np.testing.assert_array_equal(full["data"][key], restored["data"][key], err_msg=key)


@pytest.mark.parametrize("capacity", [500, 50, 37])  # no eviction, wrapped, wrapped mid-episode
def test_rebuilt_replay_samples_and_continues_like_the_original(tmp_path, capacity):
    replay = Replay(capacity, seed=3, directory=tmp_path)
    end = lockstep(replay, [4, 6, 3], 24)
    assert replay.persisted
    state = replay.state_dict(data=False)
    assert "data" not in state and state["source"].dtype == np.int32
    rebuilt = Replay(capacity, seed=99, directory=tmp_path)
    rebuilt.load_state_dict(state)
    assert rebuilt.persisted
    assert_same_state(replay, rebuilt)
    lockstep(replay, [4, 6, 3], 12, start=end)  # new steps go into the same streams
    lockstep(rebuilt, [4, 6, 3], 12, start=end)
    assert_same(replay, rebuilt)
    on_disk = {f.episode_id for f in list_episodes(tmp_path)[0]}
    assert set(rebuilt.state_dict()["episode_ids"]) <= on_disk


def test_loaded_episodes_are_rebuilt_in_their_stream(tmp_path):
    lockstep(Replay(100, directory=tmp_path / "old"), [5], 15)
    replay = Replay(40, seed=1, directory=tmp_path / "old", preload=True)  # 3 loaded episodes
    lockstep(replay, [5, 5], 15)  # evicts part of the loaded stream
    rebuilt = Replay(40, seed=1, directory=tmp_path / "old")
    rebuilt.load_state_dict(replay.state_dict(data=False))
    assert_same(replay, rebuilt)
    first = rebuilt.state_dict()["data"]["is_first"]
    np.testing.assert_array_equal(first, replay.state_dict()["data"]["is_first"])
    elsewhere = Replay(40, directory=tmp_path / "new")
    elsewhere.load(tmp_path / "old")
    assert len(elsewhere) and not elsewhere.persisted, "its files are not in its directory"


@pytest.mark.parametrize("capacity", [500, 37])
def test_unfinished_episodes_travel_in_the_state_and_are_written_when_they_end(tmp_path, capacity):
    replay = Replay(capacity, seed=5, directory=tmp_path / "a")
    end = lockstep(replay, [4, 6, 5], 23)  # every worker is inside an episode
    replay.add(make_step(0, 99, first=True), worker=0)  # cuts worker 0's episode off
    assert not replay.persisted
    state = replay.state_dict(data=False)
    unsaved = state["unsaved"]
    assert 0 < len(unsaved["slots"]) < len(replay) and "data" not in state
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    rebuilt = Replay(capacity, seed=99, directory=tmp_path / "b")
    rebuilt.load_state_dict(state)
    assert_same_state(replay, rebuilt)
    lockstep(replay, [4, 6, 5], 30, start=end)  # the unfinished episodes end and are written
    lockstep(rebuilt, [4, 6, 5], 30, start=end)
    assert_same(replay, rebuilt)
    written = [[f.path for f in list_episodes(tmp_path / d)[0]] for d in ("a", "b")]
    assert len(written[0]) == len(written[1]) > len(state["episode_ids"])
    for path_a, path_b in zip(*written, strict=True):  # in the order they were written
        a, b = np.load(path_a), np.load(path_b)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{path_a.name} {key}")


def test_a_state_without_data_needs_a_directory():
    replay = Replay(100)
    lockstep(replay, [4], 6)
    assert not replay.persisted, "without a directory nothing is persisted"
    with pytest.raises(ValueError, match="needs episode files"):
        replay.state_dict(data=False)


def test_a_missing_file_is_an_error_and_leaves_the_replay_empty(tmp_path):
    replay = Replay(100, directory=tmp_path)
    lockstep(replay, [4], 8)
    state = replay.state_dict(data=False)
    list_episodes(tmp_path)[0][1].path.unlink()
    rebuilt = Replay(100, directory=tmp_path)
    with pytest.raises(ValueError, match="is not in"):
        rebuilt.load_state_dict(state)
    assert len(rebuilt) == 0 and not rebuilt.state_dict()["episode_ids"]
