"""Where a replay keeps its steps: numpy arrays in RAM, or memory-mapped files on disk.

A disk buffer is one file per key (``<index>-<key>.buffer``, ``capacity x step`` bytes) in its
folder. Its blocks are reserved when it is allocated (``posix_fallocate``), so a disk that fills
up later cannot turn a write into a crash (SIGBUS) inside numpy; a disk without room, or a folder
that cannot be written, is a clear error at allocation. The files only cache what the episode
files hold (a resume rebuilds them), so they need no atomic writes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["STORAGES", "allocate_on_disk", "check_disk", "release_disk"]

STORAGES = ("memory", "disk")
_SUFFIX = ".buffer"


def _file_name(index: int, key: str) -> str:
    return f"{index}-{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}{_SUFFIX}"


def _existing_parent(folder: Path) -> Path:
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_disk(folder: str | os.PathLike, need: int, what: str = "replay.capacity") -> None:
    """Raises a ValueError when the disk of ``folder`` (or its nearest existing parent) has less
    than ``need`` bytes free, or the folder cannot be written."""
    from rssm.data.replay import format_bytes

    folder = Path(folder)
    parent = _existing_parent(folder)
    if not os.access(parent, os.W_OK):
        raise ValueError(
            f"the disk-backed replay cannot write its buffer in {str(folder)!r} ({parent} is "
            "read-only); set replay.buffer to a writable folder"
        )
    free = shutil.disk_usage(parent).free
    held = sum(p.stat().st_size for p in folder.glob(f"*{_SUFFIX}")) if folder.is_dir() else 0
    if need > free + held:
        raise ValueError(
            f"{what} needs a disk buffer of about {format_bytes(need)} in {str(folder)!r}, more "
            f"than the {format_bytes(free + held)} free on its disk; lower {what} or point "
            "replay.buffer at a larger disk"
        )


def allocate_on_disk(
    folder: Path, layout: Mapping[str, tuple[tuple[int, ...], np.dtype]], capacity: int
) -> dict[str, np.ndarray]:
    """``key -> np.memmap [capacity, *shape]`` over files in ``folder``, their blocks reserved.

    Raises:
        ValueError: the folder cannot be written or the disk has no room (naming both).
    """
    need = sum(capacity * int(np.prod(s, dtype=np.int64)) * d.itemsize for s, d in layout.values())
    check_disk(folder, need)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for index, (key, (shape, dtype)) in enumerate(layout.items()):
            path = folder / _file_name(index, key)
            size = capacity * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            with open(path, "ab+") as file:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(file.fileno(), 0, max(size, 1))
                else:  # macOS: no reservation, only the size
                    file.truncate(max(size, 1))
            arrays[key] = np.memmap(path, dtype=dtype, mode="r+", shape=(capacity, *shape))
    except OSError as error:
        raise ValueError(
            f"the disk-backed replay could not allocate its buffer in {str(folder)!r}: "
            f"{error.strerror or error}; free space there or set replay.buffer to another folder"
        ) from None
    return arrays


def release_disk(folder: Path) -> None:
    """Deletes the buffer files, and the folder when that leaves it empty (a file still mapped
    keeps its blocks until its last view is gone)."""
    for path in folder.glob(f"*{_SUFFIX}"):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # other files in it are someone else's
        folder.rmdir()
