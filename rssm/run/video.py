"""Open-loop prediction videos: rows truth / prediction / error, one column per example."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["open_loop_frames", "write_video"]


def open_loop_frames(
    context: np.ndarray, true: np.ndarray, pred: np.ndarray, examples: int = 4
) -> np.ndarray:
    """Frames that show real observations next to the model's open-loop prediction.

    Args:
        context: observed images ``[B, C, H, W, ch]`` uint8 (shown in all three rows).
        true: real future images ``[B, T, H, W, ch]`` uint8.
        pred: predicted future images ``[B, T, H, W, ch]`` uint8.
        examples: how many of the B sequences to show side by side.

    Returns:
        uint8 ``[C + T, 3 * H, examples * W, 3]``: rows truth, prediction and absolute error.
    """
    if true.shape != pred.shape:
        raise ValueError(f"open_loop_frames: true {true.shape} and pred {pred.shape} differ")
    n = min(examples, true.shape[0])
    truth = np.concatenate([context[:n], true[:n]], 1)
    guess = np.concatenate([context[:n], pred[:n]], 1)
    error = np.abs(truth.astype(np.int16) - guess.astype(np.int16)).astype(np.uint8)
    grid = np.concatenate([truth, guess, error], 2)  # [n, time, 3H, W, ch]
    if grid.shape[-1] == 1:
        grid = np.repeat(grid, 3, -1)
    return np.concatenate(list(grid), 2)  # side by side: [time, 3H, n*W, 3]


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 10) -> Path:
    """Writes ``frames`` [T, H, W, 3] uint8 atomically as MP4 (imageio-ffmpeg) or GIF (Pillow).

    The format follows the suffix of ``path``; an ``.mp4`` path falls back to ``.gif`` when no
    ffmpeg backend is installed. Returns the path written.
    """
    import imageio.v2 as imageio  # optional extra "video"

    path = Path(path)
    if path.suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            path = path.with_suffix(".gif")
    scale = max(1, 256 // frames.shape[1])  # small frames are hard to see: upscale by repetition
    frames = frames.repeat(scale, 1).repeat(scale, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        if path.suffix == ".gif":
            imageio.mimwrite(tmp, list(frames), duration=1000 / fps, loop=0)
        else:
            imageio.mimwrite(tmp, list(frames), fps=fps, macro_block_size=1)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
