"""Open-loop prediction videos: labeled rows truth / model / error, one column per example, and
the one upscaling rule of every video the library writes (each observation scaled by an integer
factor to at least :data:`MIN_VIDEO_SIZE` pixels)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rssm.files import atomic_path

__all__ = [
    "MIN_VIDEO_SIZE",
    "label_rows",
    "open_loop_frames",
    "upscale",
    "upscale_factor",
    "write_video",
]

MIN_VIDEO_SIZE = 128  # every observation in a video is upscaled to at least this many pixels
ROW_LABELS = ("truth", "model", "error")


def upscale_factor(height: int, width: int, min_size: int = MIN_VIDEO_SIZE) -> int:
    """The integer factor that brings the smaller side of an ``height x width`` observation to at
    least ``min_size`` pixels; even when the result would be odd-sized (H.264's yuv420p)."""
    scale = max(1, -(-min_size // min(height, width)))
    if scale % 2 and (height % 2 or width % 2):
        scale += 1
    return scale


def upscale(images: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of ``images [..., H, W, C]`` by an integer ``scale``."""
    if scale == 1:
        return images
    return images.repeat(scale, -3).repeat(scale, -2)


def label_rows(frames: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
    """A label strip left of ``frames [T, H, W, 3]`` whose height splits into ``len(labels)``
    equal rows, each named by its label (Pillow's built-in font; frames are returned unlabeled
    when Pillow is missing)."""
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        return frames
    height = frames.shape[1]
    row = height // len(labels)
    strip = Image.new("RGB", (48, height), (0, 0, 0))
    draw = ImageDraw.Draw(strip)
    for i, label in enumerate(labels):
        draw.text((3, i * row + max(0, row // 2 - 6)), label, fill=(255, 255, 255))
    column = np.broadcast_to(np.asarray(strip)[None], (frames.shape[0], height, 48, 3))
    return np.concatenate([column, frames], 2)


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
        uint8 ``[C + T, 3 * s * H, 48 + examples * s * W, 3]``: a label strip, then rows truth,
        model (prediction) and absolute error, each observation upscaled by
        ``s = upscale_factor(H, W)``.
    """
    if true.shape != pred.shape:
        raise ValueError(f"open_loop_frames: true {true.shape} and pred {pred.shape} differ")
    n = min(examples, true.shape[0])
    truth = np.concatenate([context[:n], true[:n]], 1)
    guess = np.concatenate([context[:n], pred[:n]], 1)
    error = np.abs(truth.astype(np.int16) - guess.astype(np.int16)).astype(np.uint8)
    scale = upscale_factor(*truth.shape[2:4])
    grid = upscale(np.concatenate([truth, guess, error], 2), scale)  # [n, time, 3sH, sW, ch]
    if grid.shape[-1] == 1:
        grid = np.repeat(grid, 3, -1)
    return label_rows(np.concatenate(list(grid), 2), ROW_LABELS)  # [time, 3sH, 48 + n*sW, 3]


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 10) -> Path:
    """Writes ``frames`` [T, H, W, 3] uint8 (already upscaled, see :func:`upscale`) atomically
    as MP4 (imageio-ffmpeg) or GIF (Pillow).

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
    if frames.shape[1] % 2 or frames.shape[2] % 2:  # yuv420p needs even sides
        frames = np.pad(
            frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0))
        )
    with atomic_path(path, suffix=path.suffix) as tmp:
        if path.suffix == ".gif":
            imageio.mimwrite(tmp, list(frames), duration=1000 / fps, loop=0)
        else:
            imageio.mimwrite(tmp, list(frames), fps=fps, macro_block_size=1)
    return path
