"""Checkpoints written atomically: a temporary file in the same directory, fsync, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Saves ``payload`` (tensors, numbers, strings, lists and dicts) to ``path`` atomically.

    A crash mid-write leaves the previous file at ``path`` untouched; the partial temporary file
    has a hidden name that loaders never pick up.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save({"format_version": FORMAT_VERSION, **payload}, file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Loads a checkpoint written by :func:`save_checkpoint` (``weights_only``: runs no code).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is truncated, corrupt, or not an rssm checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds for damaged files
        raise ValueError(
            f"checkpoint {path} is corrupt or truncated ({error.__class__.__name__})"
        ) from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise ValueError(f"{path} is not an rssm checkpoint (no format_version)")
    return payload
