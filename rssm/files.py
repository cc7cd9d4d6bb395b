"""Atomic file writes: the one way rssm writes a file that someone may read while it is written
or that a crash must not leave half-written (checkpoints, configs, episodes, metrics, videos,
figures, reports).

:func:`atomic_path` yields a hidden temporary path in the target's folder; when the block ends
normally the file is flushed to disk, given the usual permissions (``0o666`` minus the umask) and
renamed onto the target in one step. On any exception (Ctrl-C included) the temporary file is
removed and the target is left as it was, so a reader sees the old file or the new one, never a
part of one. Temporary names start with ``.<name>.`` and end with ``.tmp`` (or the given suffix),
and nothing in rssm ever reads them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a temporary path to write ``path``'s new contents to (see the module docstring).

    Args:
        path: the file to (re)place; its folder is created if needed.
        suffix: the temporary file's suffix, e.g. ``".mp4"`` for writers that pick the format
            from the name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as file:
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Writes ``data`` (text as UTF-8) to ``path`` atomically; returns ``path`` as a Path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path
