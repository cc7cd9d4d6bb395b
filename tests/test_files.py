"""One atomic write (rssm.files): the target is the old file or the new one, never a part."""

import os

import pytest

from rssm.files import atomic_path, atomic_write


def test_atomic_write_replaces_the_file_with_the_usual_permissions(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write(path, "one")
    atomic_write(path, b"two")
    assert path.read_text() == "two" and os.listdir(path.parent) == ["a.txt"]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_failing_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "a.mp4"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_path(path, suffix=".mp4") as tmp:
        assert tmp.name.startswith(".a.mp4.") and tmp.suffix == ".mp4"
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.mp4"]
