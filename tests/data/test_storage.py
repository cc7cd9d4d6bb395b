"""The disk-backed replay (replay.storage=disk): memory-mapped buffer files with the sampling,
eviction, episode files and exact resume of the in-RAM replay; clear errors for a disk without
room or a folder that cannot be written; a training run with it equals one in RAM."""

from __future__ import annotations

import errno
import os
import shutil

import numpy as np
import pytest
import torch

from rssm.config import load_presets, merge
from rssm.data import Replay
from rssm.data import storage as storage_module
from rssm.run.train import Config, train


def fill(replay: Replay, steps: int = 1500, episode: int = 100) -> None:
    for t in range(steps):
        worker = t % 2
        replay.add(
            {
                "image": np.full((8, 8, 3), t % 251, np.uint8),
                "reward": np.float32(t),
                "is_first": (t // 2) % episode == 0,
                "is_last": (t // 2) % episode == episode - 1,
                "is_terminal": False,
                "action": np.full(2, t, np.float32),
            },
            worker,
        )


def pair(tmp_path, capacity: int = 1000):
    memory = Replay(capacity, seed=3, directory=tmp_path / "eps-memory")
    disk = Replay(capacity, seed=3, directory=tmp_path / "eps-disk", storage="disk",
                  buffer=tmp_path / "buffer")  # fmt: skip
    return memory, disk


def test_disk_replay_samples_what_the_memory_replay_samples(tmp_path):
    memory, disk = pair(tmp_path)
    fill(memory)
    fill(disk)  # 1500 steps into 1000: eviction happened
    assert isinstance(disk._data["image"], np.memmap)
    for _ in range(3):
        a, b = memory.sample(4, 16), disk.sample(4, 16)
        assert a.keys() == b.keys()
        for key in a:
            assert type(b[key]) is np.ndarray and b[key].dtype == a[key].dtype
            np.testing.assert_array_equal(a[key], b[key])
    assert memory.episode_ids != [] and len(memory.episode_ids) == len(disk.episode_ids)


def test_disk_replay_resumes_exactly_into_either_storage(tmp_path):
    memory, disk = pair(tmp_path)
    fill(disk)
    state = disk.state_dict(data=False)
    into_memory = Replay(1000, seed=0, directory=tmp_path / "eps-disk")
    into_disk = Replay(1000, seed=0, directory=tmp_path / "eps-disk", storage="disk",
                       buffer=tmp_path / "other")  # fmt: skip
    into_memory.load_state_dict(state)
    into_disk.load_state_dict(state)
    expected = disk.sample(5, 12)
    for restored in (into_memory, into_disk):
        got = restored.sample(5, 12)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])


def test_close_deletes_the_buffer_files_and_keeps_the_episodes(tmp_path):
    _, disk = pair(tmp_path)
    fill(disk, 400)
    files = sorted(p.name for p in (tmp_path / "buffer").iterdir())
    assert files == ["0-image.buffer", "1-reward.buffer", "2-is_first.buffer",
                     "3-is_last.buffer", "4-is_terminal.buffer", "5-action.buffer"]  # fmt: skip
    assert (tmp_path / "buffer" / "0-image.buffer").stat().st_size == 1000 * 8 * 8 * 3
    disk.close()
    assert not (tmp_path / "buffer").exists()
    assert len(list((tmp_path / "eps-disk").glob("*.npz"))) == 4  # 2 workers x 2 episodes
    assert len(disk) == 0


def test_a_disk_without_room_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    space = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: space._replace(free=10 * 2**20))
    shapes = {"image": ((64, 64, 3), np.uint8)}
    with pytest.raises(ValueError, match=r"replay.capacity needs a disk buffer of about 11.5 GiB"
                       r".*10.0 MiB free.*replay.buffer"):  # fmt: skip
        Replay.check_fits(shapes, 6, 1_000_000, "disk", tmp_path / "buffer")
    assert not (tmp_path / "buffer").exists()
    Replay.check_fits(shapes, 6, 100, "disk", tmp_path / "buffer")  # 1.2 MiB fits


def test_a_disk_that_fills_up_at_allocation_is_a_clear_error(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(storage_module.os, "posix_fallocate", full, raising=False)
    _, disk = pair(tmp_path)
    with pytest.raises(ValueError, match=r"could not allocate its buffer .*No space left"):
        fill(disk, 1)


def test_a_buffer_folder_that_cannot_be_made_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    disk = Replay(10, storage="disk", buffer=tmp_path / "file" / "buffer")
    with pytest.raises(ValueError, match=r"could not allocate its buffer in .*file/buffer"):
        fill(disk, 1)
    with pytest.raises(ValueError, match=r'storage="disk" needs buffer'):
        Replay(10, storage="disk")
    with pytest.raises(ValueError, match=r"replay storage 'tape': choose one of memory, disk"):
        Replay(10, storage="tape")


def run(tmp_path, name: str, **replay) -> dict:
    config = load_presets(Config, ["dreamer_v3", "debug"])
    config = merge(config, {"logdir": str(tmp_path / name), "replay": replay,
                            "run": {"steps": 150, "tensorboard": False, "threads": 1}})  # fmt: skip
    train(config)
    return torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)["agent"]["model"]


def test_a_training_run_on_the_disk_replay_equals_one_in_ram(tmp_path):
    in_ram = run(tmp_path, "memory")
    on_disk = run(tmp_path, "disk", storage="disk", buffer=str(tmp_path / "buf"))
    assert not (tmp_path / "buf").exists()  # deleted at the end of the run
    for key in in_ram:
        assert torch.equal(in_ram[key], on_disk[key]), key
