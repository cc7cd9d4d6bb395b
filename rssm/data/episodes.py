"""Episode files on disk: one finished episode per ``.npz`` file.

A file holds one array per key, each of shape ``[L, ...]`` for an episode of ``L`` steps (the
reset observation included). Files are named ``{timestamp}-{id}-{length}.npz``: the UTC timestamp
(microseconds) makes names sort in the order they were written, ``id`` is a uuid4 hex string that
identifies the episode across save and load, and ``length`` lets a loader pick the newest episodes
that fit a capacity without opening them.

Files are written atomically: the data goes to a temporary name in the same directory that does not
end in ``.npz`` (so no loader ever sees it), is flushed to disk and then renamed with
:func:`os.replace`. A crash leaves at most a ``*.tmp`` file behind, never a half-written episode.
"""

from __future__ import annotations

import datetime
import os
import re
import uuid
import warnings
import zipfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rssm.files import atomic_path

Layout = dict[str, tuple[tuple[int, ...], np.dtype]]
"""Per-step layout of a transition: key -> (shape of one step, dtype)."""

_NAME = re.compile(r"^(?P<time>\d{8}T\d{12})-(?P<id>[0-9a-f]{32})-(?P<length>\d+)$")


class EpisodeFile(NamedTuple):
    """An episode file found in a directory (parsed from its name only)."""

    path: Path
    episode_id: str
    length: int


class CorruptEpisodeError(ValueError):
    """An episode file cannot be read (truncated, not a zip, inconsistent lengths)."""


class EpisodeLayoutError(ValueError):
    """An episode file is readable but holds other keys, shapes or dtypes than expected."""


def episode_filename(episode_id: str, length: int) -> str:
    """File name for an episode written now: ``{timestamp}-{id}-{length}.npz``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"{now:%Y%m%dT%H%M%S%f}-{episode_id}-{length}.npz"


def new_episode_id() -> str:
    """A fresh random episode id (32 hex characters)."""
    return uuid.uuid4().hex


def write_episode(directory: str | os.PathLike, episode: Mapping[str, np.ndarray]) -> EpisodeFile:
    """Write one episode atomically and return its file.

    Args:
        directory: Target directory (created if missing).
        episode: key -> array ``[L, ...]``; every array has the same leading length ``L``.

    Returns:
        The written file, its id and length.
    """
    lengths = {key: len(value) for key, value in episode.items()}
    length = next(iter(lengths.values()))
    assert all(n == length for n in lengths.values()), lengths
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    episode_id = new_episode_id()
    path = directory / episode_filename(episode_id, length)
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, **episode)
    return EpisodeFile(path, episode_id, length)


def list_episodes(directory: str | os.PathLike) -> tuple[list[EpisodeFile], list[Path]]:
    """Episode files in ``directory``, oldest first, and the ``.npz`` names that do not parse.

    Temporary files (``*.tmp``) and other files are never listed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return [], []
    found, unknown = [], []
    for path in sorted(directory.glob("*.npz")):
        match = _NAME.match(path.stem)
        if match is None:
            unknown.append(path)
        else:
            found.append(EpisodeFile(path, match["id"], int(match["length"])))
    return found, unknown


def read_layout(path: Path) -> tuple[Layout, int]:
    """Read the per-step layout and the length of an episode file from its array headers only.

    Raises:
        CorruptEpisodeError: The file is not a readable ``.npz`` or its arrays differ in length.
    """
    layout: Layout = {}
    lengths = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if not name.endswith(".npy"):
                    continue
                with archive.open(name) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                if len(shape) == 0:
                    raise CorruptEpisodeError(f"{path}: array {name!r} has no time axis")
                key = name[: -len(".npy")]
                layout[key] = (tuple(shape[1:]), np.dtype(dtype))
                lengths[key] = shape[0]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        if isinstance(error, CorruptEpisodeError):
            raise
        raise CorruptEpisodeError(f"{path}: cannot read episode file ({error})") from error
    if not layout:
        raise CorruptEpisodeError(f"{path}: episode file holds no arrays")
    if len(set(lengths.values())) != 1:
        raise CorruptEpisodeError(f"{path}: arrays differ in length: {lengths}")
    return layout, next(iter(lengths.values()))


def read_episode(path: Path, layout: Layout) -> dict[str, np.ndarray]:
    """Read an episode's arrays ``[L, ...]``, checking them against the expected ``layout``.

    Raises:
        CorruptEpisodeError: The data cannot be read or does not match the header-level layout.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            episode = {key: data[key] for key in layout}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise CorruptEpisodeError(f"{path}: cannot read episode data ({error})") from error
    for key, (shape, dtype) in layout.items():
        value = episode[key]
        if value.shape[1:] != shape or value.dtype != dtype:
            raise CorruptEpisodeError(
                f"{path}: key {key!r} has shape {value.shape[1:]} {value.dtype}, "
                f"its header said {shape} {dtype}"
            )
    return episode


def layout_mismatch(expected: Layout, found: Layout) -> str | None:
    """Describe how ``found`` differs from ``expected``, or ``None`` when they are equal."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        return f"keys differ: missing {missing}, unexpected {extra}"
    for key, (shape, dtype) in expected.items():
        other_shape, other_dtype = found[key]
        if shape != other_shape or dtype != other_dtype:
            return (
                f"key {key!r} has shape {other_shape} dtype {other_dtype}, "
                f"the replay holds shape {shape} dtype {dtype}"
            )
    return None


def newest_that_fit(files: list[EpisodeFile], capacity: int) -> list[EpisodeFile]:
    """The newest ``files`` (oldest first) whose lengths reach ``capacity`` steps, no older ones."""
    kept, steps = [], 0
    for file in reversed(files):
        if steps >= capacity:
            break
        kept.append(file)
        steps += file.length
    return kept[::-1]


def check_layouts(
    files: list[EpisodeFile],
    layout: Layout | None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> tuple[Layout, list[EpisodeFile]]:
    """Check every file's header against ``layout``; when it is ``None``, against the layout
    that most files share (the first file's on a tie), so that the error names the odd file out.
    ``shapes`` gives some keys' per-step shapes up front (e.g. the observation space's), which
    every file must have as well.

    Returns:
        The layout and the readable files; unreadable ones are skipped with a ``RuntimeWarning``.

    Raises:
        EpisodeLayoutError: A file has other keys, shapes or dtypes; it names the file, the key
            and both layouts.
    """
    found: list[tuple[EpisodeFile, Layout]] = []
    for file in files:
        try:
            found.append((file, read_layout(file.path)[0]))
        except CorruptEpisodeError as error:
            warnings.warn(f"skipping corrupt episode: {error}", RuntimeWarning, stacklevel=3)
    if layout is None and found:
        votes = Counter(_layout_key(each) for _, each in found)
        best = max(votes.values())
        layout = next(each for _, each in found if votes[_layout_key(each)] == best)
    for file, each in found:
        problem = _shape_mismatch(shapes or {}, each) or layout_mismatch(layout, each)
        if problem is not None:
            raise EpisodeLayoutError(
                f"episode file {file.path} does not match this replay: {problem}. Nothing "
                "was loaded; load that directory into a replay of the same observation layout"
            )
    return layout or {}, [file for file, _ in found]


def _shape_mismatch(shapes: Mapping[str, tuple[int, ...]], found: Layout) -> str | None:
    for key, shape in shapes.items():
        if key not in found:
            return f"key {key!r} is missing"
        if tuple(found[key][0]) != tuple(shape):
            return f"key {key!r} has shape {tuple(found[key][0])}, expected {tuple(shape)}"
    return None


def _layout_key(layout: Layout) -> tuple:
    return tuple(sorted((k, tuple(s), np.dtype(d).str) for k, (s, d) in layout.items()))
