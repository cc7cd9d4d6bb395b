"""Replay episode files: atomic save, load round trip, no duplicates, layout and corrupt files."""

import numpy as np
import pytest

from rssm.data import Replay
from rssm.data.episodes import EpisodeLayoutError, list_episodes

KEYS = ("image", "state", "reward", "is_first", "is_last", "is_terminal", "action")


def make_step(worker, index, *, first=False, last=False, state_dim=2):
    state = np.zeros(state_dim, np.float32)
    state[:2] = worker, index
    return {
        "image": np.full((4, 4, 3), index % 256, np.uint8),
        "state": state,
        "reward": np.float32(index),
        "is_first": np.bool_(first),
        "is_last": np.bool_(last),
        "is_terminal": np.bool_(last),
        "action": np.array([index], np.float32),
    }


def add_episode(replay, worker, start, length, **kwargs):
    for t in range(length):
        step = make_step(worker, start + t, first=t == 0, last=t == length - 1, **kwargs)
        replay.add(step, worker=worker)


def held_rows(replay):
    """Set of (worker, index) pairs held, read from the buffer."""
    state = replay.state_dict()["data"]["state"]
    return {(int(w), int(i)) for w, i in state[:, :2]}


def saved_replay(directory):
    """Two workers, interleaved: episodes (w0: 0-4), (w1: 100-106), (w0: 5-10); w1 unfinished."""
    replay = Replay(1000, directory=directory)
    for t in range(7):
        if t < 5:
            replay.add(make_step(0, t, first=t == 0, last=t == 4), worker=0)
        replay.add(make_step(1, 100 + t, first=t == 0, last=t == 6), worker=1)
    add_episode(replay, 0, 5, 6)
    add_episode(replay, 1, 200, 3)
    replay.add(make_step(1, 203, first=True), worker=1)  # cut off: never saved
    return replay


def test_finished_episodes_are_saved_and_load_back_equal(tmp_path):
    saved_replay(tmp_path)
    files, _ = list_episodes(tmp_path)
    assert [f.length for f in files] == [5, 7, 6, 3]
    with np.load(files[1].path) as data:
        assert set(data.files) == set(KEYS)
        for t in range(7):
            expected = make_step(1, 100 + t, first=t == 0, last=t == 6)
            for key in KEYS:
                np.testing.assert_array_equal(data[key][t], expected[key], err_msg=key)
    loaded = Replay(1000)
    assert loaded.load(tmp_path) == 4
    assert len(loaded) == 21 and loaded.episodes == 4
    expected_rows = {(0, i) for i in range(11)} | {(1, i) for i in range(100, 107)}
    assert held_rows(loaded) == expected_rows | {(1, i) for i in range(200, 203)}
    batch = loaded.sample(64, 4)
    index = batch["state"][:, :, 1].astype(int)
    np.testing.assert_array_equal(batch["is_first"], np.isin(index, [0, 5, 100, 200]))
    np.testing.assert_array_equal(batch["image"][:, :, 0, 0, 0], index % 256)
    assert batch["image"].dtype == np.uint8


def test_reloading_never_duplicates(tmp_path):
    own = saved_replay(tmp_path)
    before = len(own)
    assert own.load() == 0, "a replay reloaded its own saves"
    assert len(own) == before
    other = Replay(1000, directory=tmp_path, preload=True)
    assert len(other) == 21
    assert other.load(tmp_path) == 0 and len(other) == 21
    add_episode(own, 0, 50, 4)  # a new episode appears on disk
    assert other.load() == 1 and len(other) == 25


def test_load_keeps_newest_episodes_that_fit_and_filters_ids(tmp_path):
    saved_replay(tmp_path)
    files, _ = list_episodes(tmp_path)
    small = Replay(9)
    small.load(tmp_path)
    assert (1, 202) in held_rows(small) and len(small) == 9
    chosen = Replay(100)
    assert chosen.load(tmp_path, ids=[files[0].episode_id]) == 1
    assert held_rows(chosen) == {(0, i) for i in range(5)}


def test_write_is_atomic_and_temp_files_are_ignored(tmp_path, monkeypatch):
    (tmp_path / ".20250101T000000000000-0123.tmp").write_bytes(b"half written")
    (tmp_path / "notes.txt").write_text("not an episode")
    replay = Replay(100, directory=tmp_path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        add_episode(replay, 0, 0, 3)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".20250101T000000000000-0123.tmp",
        "notes.txt",
    ], "a failed write left a file behind"
    assert Replay(100).load(tmp_path) == 0


def test_other_layout_raises_and_changes_nothing(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    add_episode(Replay(100, directory=bad), 0, 0, 4)  # the older, matching episode
    add_episode(Replay(100, directory=bad), 0, 10, 4, state_dim=3)
    add_episode(Replay(100, directory=good), 0, 20, 4)
    replay = Replay(100, directory=good, preload=True)
    before = replay.state_dict()
    with pytest.raises(ValueError, match=r"'state' has shape \(3,\).*shape \(2,\)"):
        replay.load(bad)
    after = replay.state_dict()
    assert len(replay) == 4 and held_rows(replay) == {(0, i) for i in range(20, 24)}
    assert after["episode_ids"] == before["episode_ids"]
    for key in before["data"]:
        np.testing.assert_array_equal(after["data"][key], before["data"][key])
    empty = Replay(100)
    with pytest.raises(ValueError, match="'state'"):
        empty.load(bad)
    assert len(empty) == 0


def test_corrupt_files_are_skipped_with_a_warning(tmp_path):
    saved_replay(tmp_path)
    files, _ = list_episodes(tmp_path)
    truncated, garbage, flipped = (files[i].path for i in (1, 2, 3))
    truncated.write_bytes(truncated.read_bytes()[:200])
    garbage.write_bytes(b"\x00" * 64)
    # Intact headers, damaged image data (step 200's pixels): caught by the zip CRC on reading.
    raw = bytearray(flipped.read_bytes())
    at = raw.index(bytes([200]) * 48)
    raw[at + 7] ^= 0xFF
    flipped.write_bytes(bytes(raw))
    replay = Replay(1000)
    with pytest.warns(RuntimeWarning) as record:
        loaded = replay.load(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    for path in (truncated, garbage, flipped):
        assert path.name in messages
    assert loaded == 1
    assert held_rows(replay) == {(0, i) for i in range(5)}


def test_episode_evicted_before_it_ends_is_not_saved(tmp_path):
    replay = Replay(4, directory=tmp_path)
    with pytest.warns(RuntimeWarning, match="not saved"):
        add_episode(replay, 0, 0, 6)
    assert list_episodes(tmp_path)[0] == []
    add_episode(replay, 0, 10, 3)
    assert [f.length for f in list_episodes(tmp_path)[0]] == [3]


def test_empty_replay_names_the_odd_file_out_and_checks_given_shapes(tmp_path):
    # The odd file is the oldest, so it is read first: the layout most files share wins.
    add_episode(Replay(100, directory=tmp_path), 0, 0, 4, state_dim=3)
    add_episode(Replay(100, directory=tmp_path), 0, 10, 4)
    add_episode(Replay(100, directory=tmp_path), 0, 20, 4)
    odd = list_episodes(tmp_path)[0][0].path.name
    with pytest.raises(EpisodeLayoutError, match=odd + r".*'state' has shape \(3,\)"):
        Replay(100).load(tmp_path)
    # Given shapes decide even a tie of one file against one.
    for path in list_episodes(tmp_path)[0][2:]:
        path.path.unlink()
    with pytest.raises(EpisodeLayoutError, match=odd + r".*'state' has shape \(3,\), expected"):
        Replay(100).load(tmp_path, shapes={"state": (2,), "image": (4, 4, 3)})
    assert Replay(100).load(tmp_path, ids=[list_episodes(tmp_path)[0][1].episode_id],
                            shapes={"state": (2,)}) == 1  # fmt: skip
