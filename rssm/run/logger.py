"""Metrics logging: one JSON line per ``write`` in ``metrics.jsonl``, plus TensorBoard if installed.

``metrics.jsonl`` is the source of truth (plots and tests read it with :func:`read_metrics`);
TensorBoard is a convenience and an optional dependency (extra ``log``).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rssm.files import atomic_write

__all__ = ["METRICS_FILE", "Logger", "read_metrics", "truncate_metrics"]

METRICS_FILE = "metrics.jsonl"
_RESERVED = ("step", "time")


def _number(name: str, value: Any) -> int | float | torch.Tensor:
    """A python number, or a detached one-element tensor converted later in one batch."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"scalar {name!r}: expected one element, got shape {tuple(value.shape)}"
            )
        return value.detach()
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"scalar {name!r}: expected one element, got shape {value.shape}")
        value = value.reshape(()).item()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, (int, float)):
        raise TypeError(
            f"scalar {name!r}: value must be a number, a numpy scalar or a one-element tensor, "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def _to_python(values: dict[str, int | float | torch.Tensor]) -> dict[str, int | float]:
    """Converts tensors with one device-to-host copy per (device, dtype) group, not per value."""
    out: dict[str, int | float] = {}
    groups: dict[tuple[torch.device, torch.dtype], list[str]] = defaultdict(list)
    for name, value in values.items():
        if isinstance(value, torch.Tensor):
            groups[value.device, value.dtype].append(name)
        else:
            out[name] = value
    for names in groups.values():
        stacked = torch.stack([values[name].reshape(()) for name in names]).tolist()
        out.update(zip(names, stacked, strict=True))
    return {name: out[name] for name in values}  # keep the caller's order


def _json_value(value: int | float) -> int | float | None:
    return value if isinstance(value, int) or math.isfinite(value) else None


def _drop_partial_line(path: Path) -> None:
    """Truncates a last line without its newline (a crash mid-write), so appends stay valid."""
    with open(path, "rb+") as file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return
        file.seek(size - 1)
        if file.read(1) == b"\n":
            return
        end = size
        while end > 0:  # search backwards in chunks for the last complete line
            start = max(0, end - 65536)
            file.seek(start)
            chunk = file.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                file.truncate(start + newline + 1)
                break
            end = start
        else:
            file.truncate(0)
    warnings.warn(f"{path}: dropped a partial last line (a crash mid-write)", stacklevel=3)


def _open_logdir(logdir: Path) -> None:
    try:
        logdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise type(error)(
            error.errno, f"Logger: cannot create log directory {logdir}: {error.strerror}"
        ) from error
    if not os.access(logdir, os.W_OK | os.X_OK):
        raise PermissionError(
            f"Logger: log directory {logdir} is not writable; fix its permissions or choose "
            "another log directory"
        )


class Logger:
    """Buffers scalars, images and videos; ``write(step)`` emits them all at one step.

    Each ``write`` appends one line ``{"step": ..., "time": ..., name: value, ...}`` to
    ``logdir/metrics.jsonl`` and flushes it, so a crash loses at most the line being written;
    ``time`` is wall seconds since this logger was created. Non-finite values become ``null`` in
    JSON (the file stays valid JSON lines) and go to TensorBoard as they are. A scalar set twice
    before a ``write`` keeps its last value.

    Args:
        logdir: run directory, created if needed. An unwritable directory raises here.
        tensorboard: also write TensorBoard events (``torch.utils.tensorboard``); when tensorboard
            is not installed, warns once and keeps JSONL only.
        jsonl: append to ``logdir/metrics.jsonl``.
        purge_step: a resumed run's first step after its checkpoint: TensorBoard hides the
            events of this and later steps that earlier processes wrote (a resume trims
            metrics.jsonl the same way), so no step shows twice.

    Raises:
        PermissionError, OSError: the directory cannot be created or written; the message names it.
    """

    def __init__(
        self,
        logdir: str | os.PathLike,
        *,
        tensorboard: bool = True,
        jsonl: bool = True,
        purge_step: int | None = None,
    ):
        self.logdir = Path(logdir)
        _open_logdir(self.logdir)
        self._start = time.monotonic()
        self._scalars: dict[str, int | float | torch.Tensor] = {}
        self._media: list[tuple[str, str, np.ndarray, int]] = []  # kind, name, array, fps
        self._warned: set[str] = set()
        self._closed = False
        self._file = None
        self._writer = None
        if jsonl:
            path = self.logdir / METRICS_FILE
            if path.exists():
                _drop_partial_line(path)
            self._file = open(path, "a", buffering=1, encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional extra "log"
            except ImportError:
                self._warn("tensorboard", "tensorboard is not installed: logging to JSONL only")
            else:
                self._writer = SummaryWriter(log_dir=str(self.logdir), purge_step=purge_step)

    # ------------------------------------------------------------------------------ buffering

    def scalar(self, name: str, value: Any) -> None:
        """Buffers a python number, numpy scalar or one-element tensor (converted at ``write``)."""
        if not isinstance(name, str) or name in _RESERVED:
            raise ValueError(f"scalar: name must be a string other than {_RESERVED}, got {name!r}")
        self._scalars[name] = _number(name, value)

    def scalars(self, values: dict[str, Any], prefix: str = "") -> None:
        """Buffers many scalars; ``prefix`` (e.g. ``"train/"``) is prepended to every name."""
        for name, value in values.items():
            self.scalar(prefix + name, value)

    def image(self, name: str, image: np.ndarray | torch.Tensor) -> None:
        """Buffers an image: uint8 ``[H, W, C]`` with C in {1, 3, 4}, or ``[H, W]``."""
        array = _uint8(name, image)
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"image {name!r}: expected [H, W, C] with C in 1, 3, 4, got {array.shape}"
            )
        self._media.append(("image", name, array, 0))

    def video(self, name: str, frames: np.ndarray | torch.Tensor, fps: int = 20) -> None:
        """Buffers a video: uint8 ``[T, H, W, C]`` with C in {1, 3}."""
        array = _uint8(name, frames)
        if array.ndim != 4 or array.shape[-1] not in (1, 3):
            raise ValueError(
                f"video {name!r}: expected [T, H, W, C] with C in 1, 3, got {array.shape}"
            )
        self._media.append(("video", name, array, int(fps)))

    # -------------------------------------------------------------------------------- writing

    def write(self, step: int) -> dict[str, int | float]:
        """Writes everything buffered at ``step`` and clears the buffer.

        Returns:
            The scalars written, as python numbers (non-finite kept as float NaN/inf).
        """
        if self._closed:
            raise RuntimeError(f"Logger for {self.logdir} is closed; create a new one")
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"write: step must be an int, got {type(step).__name__} {step!r}")
        step = int(step)
        scalars, self._scalars = _to_python(self._scalars), {}
        media, self._media = self._media, []
        if self._file is not None and scalars:
            row = {"step": step, "time": round(time.monotonic() - self._start, 3)}
            row.update((name, _json_value(value)) for name, value in scalars.items())
            self._file.write(json.dumps(row, allow_nan=False) + "\n")
            self._file.flush()
        if self._writer is not None:
            for name, value in scalars.items():
                self._writer.add_scalar(name, value, step)
        for kind, name, array, fps in media:
            self._write_media(kind, name, array, fps, step)
        if self._writer is not None and (scalars or media):
            self._writer.flush()
        return scalars

    def _write_media(self, kind: str, name: str, array: np.ndarray, fps: int, step: int) -> None:
        if self._writer is not None and kind == "image":
            self._writer.add_image(name, array, step, dataformats="HWC")
            return
        if self._writer is not None and _has_moviepy():
            video = torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))[None]
            self._writer.add_video(name, video, step, fps=fps)  # [N, T, C, H, W] uint8
            return
        try:
            import imageio.v2 as imageio  # optional extra "video"
        except ImportError:
            self._warn(kind, f"{kind}s skipped: install tensorboard (and moviepy) or imageio")
            return
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        if kind == "image":
            path = self.logdir / "images" / f"{safe}_{step:09d}.png"
            path.parent.mkdir(exist_ok=True)
            imageio.imwrite(path, array if array.shape[-1] != 1 else array[..., 0])
        else:
            from rssm.run.video import write_video

            frames = np.repeat(array, 3, -1) if array.shape[-1] == 1 else array
            write_video(self.logdir / "videos" / f"{safe}_{step:09d}.mp4", frames, fps=fps)

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"Logger: {message}", stacklevel=3)

    # ------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Flushes and closes the files; anything buffered but not written is dropped."""
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Logger({str(self.logdir)!r})"


def _uint8(name: str, value: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray) or value.dtype != np.uint8:
        raise TypeError(
            f"{name!r}: expected a uint8 array or tensor, got "
            f"{getattr(value, 'dtype', type(value).__name__)}; convert with .astype(np.uint8)"
        )
    return value


_MOVIEPY: bool | None = None


def _has_moviepy() -> bool:
    """Whether TensorBoard's ``add_video`` can work (it imports ``moviepy.editor``, moviepy < 2)."""
    global _MOVIEPY
    if _MOVIEPY is None:
        try:
            import moviepy.editor  # noqa: F401
        except ImportError:
            _MOVIEPY = False
        else:
            _MOVIEPY = True
    return _MOVIEPY


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads ``metrics.jsonl`` (or a run directory holding one) into a list of dicts.

    A truncated last line (a crash mid-write) is skipped silently; non-finite values come back
    as ``None``.

    Raises:
        FileNotFoundError: no metrics file.
        ValueError: a line other than the last is not valid JSON (the file is corrupt).
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    with open(path, encoding="utf-8") as file:
        lines = file.read().split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):  # no newline after it: a partial line from a crash
                break
            raise ValueError(f"{path}:{number} is not valid JSON ({error.msg})") from None
    return rows


def truncate_metrics(path: str | os.PathLike, step: int) -> int:
    """Drops the rows of ``metrics.jsonl`` (or of a run directory's) written after ``step``.

    A resumed run calls it with its checkpoint's step, so that the rows it writes again are not
    duplicated. Rows with ``"step" <= step`` are kept byte for byte; a partial last line (a crash
    mid-write) is dropped too. The file is replaced atomically (a temporary file beside it,
    fsync, rename) and only when something is dropped; a missing file is left missing.

    Returns:
        The number of lines dropped.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.exists():
        return 0
    lines = path.read_bytes().split(b"\n")
    partial = lines.pop()  # after the last newline: b"" or a partial line
    kept = [line for line in lines if _row_step(line) <= step]
    dropped = len(lines) - len(kept) + bool(partial)
    if dropped:
        atomic_write(path, b"".join(line + b"\n" for line in kept))
    return dropped


def _row_step(line: bytes) -> float:
    """The ``step`` of a metrics line; -inf (kept) for a line without one or not JSON."""
    try:
        step = json.loads(line).get("step")
    except (ValueError, AttributeError):
        return -math.inf
    return step if isinstance(step, (int, float)) else -math.inf


def wall_clock(rows: list[dict[str, Any]], sitting_starts: Sequence[int] = ()) -> list[float]:
    """Seconds of wall clock from the run's start to each row of ``metrics.jsonl``, over sittings.

    Every sitting (``rssm train`` and each ``--resume``) starts a logger whose ``time`` restarts
    at 0, so a row's ``time`` alone is the time since its own sitting began. A row opens a new
    sitting where its ``time`` goes back, or where its ``step`` passes the env step at which a
    recorded sitting started (``sitting_starts``, from ``sittings.jsonl``: this also catches a
    sitting whose first row comes later than the previous sitting's last); the new sitting's
    times are offset by the time the previous sitting's last row reached. Time spent between the
    last row of a sitting and its stop (and between sittings) is not counted.
    """
    # rows at the step where the first sitting began (env step 0 of a fresh run) belong to it
    first = rows[0].get("step") if rows else None
    starts = {s for s in sitting_starts if first is None or s > first}
    times: list[float] = []
    offset, last_seconds, last_step = 0.0, None, None
    for row in rows:
        seconds, step = float(row.get("time") or 0.0), row.get("step")
        if last_seconds is not None and (
            seconds < last_seconds
            or (
                step is not None
                and last_step is not None
                and any(last_step <= s < step for s in starts)
            )
        ):
            offset = times[-1]
        times.append(offset + seconds)
        last_seconds, last_step = seconds, step
    return times
