"""Evaluating a trained run: returns of its agent on fresh episodes, optionally as a video.

``rssm eval --run DIR [--episodes N] [--checkpoint STEP] [--video PATH] [--KEY VALUE ...]`` calls
:func:`evaluate_run` on the run that :func:`~rssm.run.runs.load_run` restores; :func:`evaluate`
does both. Every way a run directory can be unusable (missing, no ``config.yaml``, no or a damaged
``checkpoint.pt``, a checkpoint written for another config) is an error with a one-line message
that names the file and the problem; evaluation writes nothing into the run directory.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import gymnasium
import numpy as np
import torch

from rssm.data import Driver
from rssm.files import atomic_path
from rssm.run.run_config import torch_threads
from rssm.run.runs import LoadedRun, load_run
from rssm.run.video import upscale_factor

__all__ = ["VIDEO_FPS", "VIDEO_SUFFIXES", "evaluate", "evaluate_run", "video_backend"]

Mode = Literal["eval", "explore"]
VIDEO_SUFFIXES = (".mp4", ".gif")
VIDEO_FPS = 10
_INSTALL = 'pip install "rssm[video]"'


def evaluate(
    run_dir: str | os.PathLike,
    episodes: int = 1,
    *,
    device: str | None = None,
    seed: int | None = None,
    video: str | os.PathLike | None = None,
    mode: Mode = "eval",
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    checkpoint: str | os.PathLike | int | None = None,
) -> list[float]:
    """Returns of ``episodes`` episodes of a trained run's agent, from fresh resets.

    Args:
        run_dir: a directory written by :func:`rssm.run.train.train` (``config.yaml``,
            ``checkpoint.pt``); nothing in it is modified.
        episodes: how many episodes to run (>= 1).
        device: torch device; None uses the run's ``run.device``.
        overrides: dotted config overrides for the evaluation (e.g. ``{"planet.horizon": 12}``);
            see :func:`~rssm.run.runs.load_run`.
        checkpoint: the checkpoint to evaluate (a step, a file name or a path); None: the newest.
        seed: seed of the evaluation env and of torch's generator during the episodes (the
            latent samples; restored afterwards), so an evaluation repeats; None uses the run's
            evaluation seed (the one its training-time evaluations used).
        video: write the frames of all evaluated episodes, one after the other, to this
            ``.mp4`` (imageio-ffmpeg) or ``.gif`` file, atomically (a hidden temporary file
            beside it, then a rename). Frames are the env's ``image`` observation (``[H, W, C]``
            uint8, upscaled by an integer factor to at least 128 px), or ``env.render()`` for an
            env without one that renders ``rgb_array``. ``VIDEO_FPS`` frames per second.
        mode: the agent's policy mode: ``"eval"`` (no exploration noise) or ``"explore"``.

    Returns:
        The undiscounted return of each episode, in the order they finished.

    Raises:
        FileNotFoundError: ``run_dir`` does not exist or holds no ``config.yaml``; or
            :class:`~rssm.run.checkpoint.CheckpointNotFoundError` (also a
            :class:`~rssm.run.checkpoint.CheckpointError`): no ``checkpoint.pt`` yet.
        CheckpointError: the checkpoint is corrupt or truncated, not an rssm agent checkpoint,
            or was written for another config (naming the differing parameters and config keys).
        ValueError: bad arguments, an unreadable ``config.yaml``, a video suffix other than
            ``.mp4``/``.gif``, or a video of an env without images that cannot render.
        ImportError: a video without imageio (or ``.mp4`` without imageio-ffmpeg): names
            ``pip install "rssm[video]"``.
    """
    _check_arguments(episodes, mode)
    if video is not None:
        video_backend(Path(video))  # a bad path fails before the checkpoint loads
    # config.yaml and the checkpoint's weights
    run = load_run(run_dir, device, overrides=overrides, checkpoint=checkpoint)
    return evaluate_run(run, episodes, seed=seed, video=video, mode=mode)


def evaluate_run(
    run: LoadedRun,
    episodes: int = 1,
    *,
    seed: int | None = None,
    video: str | os.PathLike | None = None,
    mode: Mode = "eval",
    on_step: Callable[[dict[str, Any], int], None] | None = None,
) -> list[float]:
    """Returns of ``episodes`` episodes of a run restored by :func:`~rssm.run.runs.load_run`;
    the arguments are :func:`evaluate`'s, and ``on_step(transition, worker)`` (if given) sees
    every transition as :meth:`rssm.data.Driver.on_step` passes it, the reset rows included."""
    # rssm.run.train re-exports evaluate, so its names are looked up here, not at import.
    from rssm.run import train as train_lib

    _check_arguments(episodes, mode)
    video_path, imageio = (None, None) if video is None else video_backend(Path(video))
    config, agent = run.config, run.agent
    seed = config.seed + train_lib.EVAL_SEED if seed is None else seed
    envs = train_lib.make_envs(config, 1, seed)
    driver = Driver(envs, seed=seed)
    returns: list[float] = []
    driver.on_episode(lambda stats, worker: returns.append(float(stats["return"])))
    if on_step is not None:
        driver.on_step(on_step)
    try:
        recorder: contextlib.AbstractContextManager = contextlib.nullcontext()
        if video_path is not None:
            frame = _frame_source(envs[0], config.env.name, video_path)
            writer = recorder = _VideoWriter(video_path, imageio)
            driver.on_step(lambda transition, worker: writer.add(frame(transition)))
        with recorder, _torch_rng(seed, config.run.device), torch_threads(config.run):
            driver(functools.partial(agent.policy, mode=mode), episodes=episodes)
    finally:
        driver.close()
    return returns[:episodes]


@contextlib.contextmanager
def _torch_rng(seed: int, device: str) -> Iterator[None]:
    """Seeds torch's generator of ``device`` (the world model's latent samples draw from it) so
    that an evaluation repeats, and restores the caller's generator state afterwards."""
    kind = torch.device(device).type
    if kind == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield
    else:
        with torch.random.fork_rng(device_type=kind):
            torch.manual_seed(seed)
            yield


def _check_arguments(episodes: Any, mode: Any) -> None:
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"evaluate: episodes={episodes!r} must be an int >= 1")
    if mode not in ("eval", "explore"):
        raise ValueError(f"evaluate: mode={mode!r}; use 'eval' or 'explore'")


def video_backend(path: Path) -> tuple[Path, ModuleType]:
    """Checks the video path and imports its writer before any work is done."""
    if path.suffix not in VIDEO_SUFFIXES:
        raise ValueError(
            f"video path {str(path)!r} must end in {' or '.join(VIDEO_SUFFIXES)} "
            f"(got {path.suffix or 'no suffix'!r})"
        )
    if path.is_dir():
        raise ValueError(f"video path {str(path)!r} is a directory; name a file in it")
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise ImportError(f"writing the video {path} needs imageio: {_INSTALL}") from None
    if path.suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ImportError(
                f"writing the .mp4 video {path} needs imageio-ffmpeg: {_INSTALL}, or write a .gif"
            ) from None
    return path, imageio


def _frame_source(
    env: gymnasium.Env, name: str, path: Path
) -> Callable[[dict[str, Any]], np.ndarray]:
    """A function of a driver transition that returns the frame to record, ``[H, W, C]``."""
    if "image" in env.observation_space.spaces:
        return lambda transition: transition["image"]
    if env.render_mode == "rgb_array":
        return lambda transition: env.render()  # the driver calls back before stepping the env
    raise ValueError(
        f"cannot write the video {path}: env {name!r} has no 'image' observation and does not "
        f"render frames (render_mode={env.render_mode!r}, not 'rgb_array'); evaluate without "
        "a video, or train with image observations (e.g. the env option obs: both)"
    )


class _VideoWriter:
    """Streams frames to ``path`` (no episode is held in memory): a hidden temporary file beside
    ``path`` that replaces it when the ``with`` block ends without an error, and is removed
    otherwise."""

    def __init__(self, path: Path, imageio: ModuleType, fps: int = VIDEO_FPS) -> None:
        self.path, self.fps, self.imageio = path, fps, imageio
        self.frames = 0
        self._scale = 0
        self._tmp: Path | None = None
        self._atomic: Any = None
        self._writer: Any = None

    def __enter__(self) -> _VideoWriter:
        self._atomic = atomic_path(self.path, suffix=self.path.suffix)
        self._tmp = self._atomic.__enter__()
        if self.path.suffix == ".gif":
            self._writer = self.imageio.get_writer(
                self._tmp, format="GIF", mode="I", duration=1000 / self.fps, loop=0
            )
        else:  # macro_block_size=1: keep the size; _upscale makes it even for yuv420p
            self._writer = self.imageio.get_writer(
                self._tmp, format="FFMPEG", fps=self.fps, macro_block_size=1
            )
        return self

    def add(self, frame: np.ndarray) -> None:
        """Appends ``frame`` (uint8 ``[H, W, C]``, C in 1, 3, 4), upscaled, as RGB."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"video frames must be uint8 [H, W, 1|3|4], got {frame.dtype} {frame.shape}"
            )
        height, width = frame.shape[:2]
        if not self._scale:
            self._scale = upscale_factor(height, width)  # the rule of every video
        s = self._scale
        # One copy: broadcast each pixel to an s x s block and gray to three channels.
        block = np.broadcast_to(frame[:, None, :, None, :3], (height, s, width, s, 3))
        self._writer.append_data(block.reshape(height * s, width * s, 3))
        self.frames += 1

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: Any) -> None:
        assert self._tmp is not None, "_VideoWriter used outside a with block"
        try:
            self._writer.close()
            if kind is None and not self.frames:
                raise ValueError(f"no frames to write to the video {self.path}")
        except BaseException as failure:  # the temporary file goes, the target stays
            self._atomic.__exit__(type(failure), failure, failure.__traceback__)
            raise
        self._atomic.__exit__(kind, error, traceback)  # renamed onto the target on success
