"""Sequence replay: per-worker streams of transitions in one preallocated ring buffer."""

from __future__ import annotations

import os
import warnings
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rssm.data.episodes import (
    Layout,
)
from rssm.data.replay_files import EpisodeFiles
from rssm.data.storage import STORAGES, allocate_on_disk, check_disk, release_disk

# Per-slot bookkeeping: stream id (int32), position in the stream (int64), next slot (int64) and
# source episode (int32: the episode file that holds the step, -1 for none yet).
_META_BYTES = 4 + 8 + 8 + 4
_DEFAULT_KEYS = {
    "reward": ((), np.dtype(np.float32)),
    "is_first": ((), np.dtype(bool)),
    "is_last": ((), np.dtype(bool)),
    "is_terminal": ((), np.dtype(bool)),
}


def format_bytes(num_bytes: int | float) -> str:
    """Human-readable size with binary units, e.g. ``format_bytes(12 * 2**30) == '12.0 GiB'``."""
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor; no torch import needed here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class Replay(EpisodeFiles):
    """Sequence replay over per-worker streams of transitions, with optional episode files.

    Every ``add(step, worker)`` appends one transition (a dict of arrays, see DESIGN.md §3) to
    that worker's stream. All streams share one ring buffer of ``capacity`` steps, preallocated per
    key on the first add (shapes and dtypes of that step; uint8 images stay uint8, every key keeps
    its dtype). When full, the oldest step overall is evicted; since a worker's steps arrive in
    order, each stream always holds a contiguous suffix of what was added to it.

    ``sample(B, T)`` returns ``[B, T, ...]`` arrays whose rows are ``T`` consecutive steps of one
    stream; steps of different workers never mix. Starts are uniform (with replacement) over every
    held step that has ``T - 1`` held successors in its stream. **Sequences may cross episode
    boundaries** inside a stream: the first step of the new episode then carries ``is_first=True``
    and consumers (the RSSM) must reset there. This keeps every step usable as a start and avoids
    padding; the price is that ``is_first`` may appear anywhere in a sequence, not only at ``t=0``.

    With ``directory``, each finished episode (from its first step, or its ``is_first`` step, up to
    the step with ``is_last``) is written as one ``.npz`` file, atomically (see
    :mod:`rssm.data.episodes`). An episode whose first steps were evicted before it finished is not
    written (a warning says so; raise the capacity). :meth:`load` reads episode files into a stream
    of their own, newest episodes that fit the capacity first in chronological order; the first step
    of each loaded episode is marked ``is_first``. Episode ids that this replay saved or loaded are
    never loaded again, so reloading a directory or one's own saves never duplicates steps.
    Corrupt or truncated files are **skipped with a warning** naming the file (a crash while writing
    cannot leave one thanks to the atomic write, so a corrupt file means outside damage; losing one
    episode beats refusing to resume). A directory with another observation layout raises
    ``ValueError`` before anything is loaded.

    With ``storage="disk"`` the per-key arrays are memory-mapped files in ``buffer`` (one file
    per key, their blocks reserved when allocated), so the capacity may exceed RAM: the operating
    system keeps the recently used pages in memory. Sampling, eviction, episode files and exact
    resume are the same; the buffer files are a cache of the episode files (a resume rebuilds
    them), deleted by :meth:`close`.

    Args:
        capacity: Steps held in total across workers.
        seed: Seed of the sampling generator.
        directory: Where finished episodes are written; also the default for :meth:`load`.
        preload: Load the episodes already in ``directory`` on construction.
        storage: ``"memory"`` (numpy arrays in RAM) or ``"disk"`` (memory-mapped files).
        buffer: The folder of the buffer files with ``storage="disk"`` (created if missing).
    """

    def __init__(
        self,
        capacity: int,
        *,
        seed: int = 0,
        directory: str | os.PathLike | None = None,
        preload: bool = False,
        storage: str = "memory",
        buffer: str | os.PathLike | None = None,
    ) -> None:
        if int(capacity) < 1:
            raise ValueError(f"capacity must be a positive number of steps, got {capacity}")
        if preload and directory is None:
            raise ValueError("preload=True needs a directory to load episodes from")
        if storage not in STORAGES:
            raise ValueError(f"replay storage {storage!r}: choose one of {', '.join(STORAGES)}")
        if storage == "disk" and buffer is None:
            raise ValueError('storage="disk" needs buffer=<folder> for the memory-mapped files')
        self.capacity = int(capacity)
        self.directory = None if directory is None else Path(directory)
        self.storage = storage
        self.buffer = None if buffer is None else Path(buffer)
        self._rng = np.random.default_rng(seed)
        self._clear()
        if preload:
            self.load()

    def _clear(self) -> None:
        """The empty state of a new replay (the sampling generator is kept)."""
        self._layout: Layout | None = None
        self._data: dict[str, np.ndarray] = {}
        self._stream = np.zeros(0, np.int32)  # slot -> stream id
        self._position = np.zeros(0, np.int64)  # slot -> index of the step in its stream
        self._next = np.zeros(0, np.int64)  # slot -> slot of the stream's next step, or -1
        self._source = np.zeros(0, np.int32)  # slot -> index into _files, or -1
        self._head = 0
        self._size = 0
        self._ids: dict[Hashable, int] = {}  # worker key -> stream id
        self._lo: list[int] = []  # per stream: position of its oldest held step
        self._hi: list[int] = []  # per stream: steps ever added (position of the next step)
        self._last: list[int] = []  # per stream: slot of its newest step
        self._episodes = 0
        self._known: dict[str, None] = {}  # episode ids saved or loaded, in order
        self._pending: dict[int, list[int]] = {}  # worker -> slots of its unfinished episode
        # Episode files behind held steps: [episode id, worker key, stream position of the
        # file's first step, file length]; _source indexes it.
        self._files: list[list[Any]] = []

    # ------------------------------------------------------------------ sizes and estimates
    def __len__(self) -> int:
        return self._size

    @property
    def episodes(self) -> int:
        """Finished episodes whose last step is held (partly evicted ones included)."""
        return self._episodes

    @property
    def nbytes(self) -> int:
        """Bytes allocated for storage and per-step bookkeeping (fixed once allocated)."""
        meta = self._stream.nbytes + self._position.nbytes + self._next.nbytes
        return sum(value.nbytes for value in self._data.values()) + meta + self._source.nbytes

    @property
    def episode_ids(self) -> list[str]:
        """Ids of the episode files this replay wrote or loaded, in order (evicted ones too)."""
        return list(self._known)

    @property
    def persisted(self) -> bool:
        """Whether every held step is in an episode file of ``directory`` (so no unfinished
        episode is held): then ``state_dict(data=False)`` can describe the replay."""
        return self.directory is not None and bool((self._source[: self._size] >= 0).all())

    def stats(self) -> dict[str, int]:
        """Steps held, capacity, finished episodes held, worker streams and bytes allocated."""
        return {
            "steps": self._size,
            "capacity": self.capacity,
            "episodes": self._episodes,
            "streams": len(self._ids),
            "bytes": self.nbytes,
        }

    @classmethod
    def estimate_bytes(cls, obs_space_or_shapes: Any, action_dim: int, capacity: int) -> int:
        """RAM that a replay of ``capacity`` steps allocates, computed before allocating anything.

        Args:
            obs_space_or_shapes: A ``gymnasium.spaces.Dict`` or a mapping key -> ``(shape, dtype)``
                (or key -> space). ``reward``, ``is_first``, ``is_last`` and ``is_terminal`` are
                added with the contract's dtypes when missing.
            action_dim: Size ``A`` of the float32 ``action`` vector stored with each step.
            capacity: Steps held.

        Returns:
            Bytes, matching :attr:`nbytes` of a replay filled with such steps.
        """
        layout = cls._layout_from_spec(obs_space_or_shapes, action_dim)
        return int(capacity) * (_step_bytes(layout) + _META_BYTES)

    @classmethod
    def check_fits(
        cls,
        obs_space_or_shapes: Any,
        action_dim: int,
        capacity: int,
        storage: str = "memory",
        buffer: str | os.PathLike | None = None,
    ) -> int:
        """Raises a ValueError naming ``replay.capacity`` when a replay of ``capacity`` steps
        would need more bytes than this machine's RAM, or (``storage="disk"``) more than the
        free space on the disk of ``buffer`` (checked before anything is allocated or
        written); returns the estimate."""
        need = cls.estimate_bytes(obs_space_or_shapes, action_dim, capacity)
        if storage == "disk":
            assert buffer is not None
            check_disk(buffer, need - capacity * _META_BYTES)  # bookkeeping stays in RAM
            return need
        physical = _physical_memory()
        if physical is not None and need > physical:
            step = max(1, need // max(1, int(capacity)))
            fits = int(0.5 * physical) // step
            raise ValueError(
                f"replay.capacity={capacity} needs about {format_bytes(need)} of memory "
                f"({format_bytes(step)} per step), more than this machine's "
                f"{format_bytes(physical)} of RAM; lower replay.capacity (e.g. to {fits}, half "
                "the RAM), or keep the replay on disk with replay.storage=disk"
            )
        return need

    @staticmethod
    def _layout_from_spec(spec: Any, action_dim: int) -> Layout:
        spaces = getattr(spec, "spaces", spec)
        if not isinstance(spaces, Mapping):
            raise TypeError(
                "obs_space_or_shapes must be a gymnasium.spaces.Dict or a mapping key -> "
                f"(shape, dtype), got {type(spec).__name__}"
            )
        layout: Layout = {}
        for key, value in spaces.items():
            shape, dtype = (value.shape, value.dtype) if hasattr(value, "dtype") else value
            if dtype is None:
                raise ValueError(f"observation key {key!r} has no fixed dtype ({value!r})")
            layout[key] = (tuple(shape), np.dtype(dtype))
        for key, entry in _DEFAULT_KEYS.items():
            layout.setdefault(key, entry)
        layout.setdefault("action", ((int(action_dim),), np.dtype(np.float32)))
        return layout

    # ------------------------------------------------------------------ adding
    def add(self, step: Mapping[str, Any], worker: int = 0) -> None:
        """Append one transition to ``worker``'s stream.

        Args:
            step: key -> array-like of one step (numpy, torch or Python scalars). The keys, shapes
                and dtype kinds must equal those of the first step ever added (or loaded).
            worker: Stream id, an int >= 0 (the driver's env index).
        """
        if isinstance(worker, bool) or not isinstance(worker, int | np.integer) or worker < 0:
            raise ValueError(f"worker must be an int >= 0, got {worker!r}")
        worker = int(worker)
        values = {key: _to_numpy(value) for key, value in step.items()}
        if self._layout is None:
            self._allocate({key: (value.shape, value.dtype) for key, value in values.items()})
        self._check_step(values)
        stream = self._stream_id(worker)
        slot = self._head
        if self._size == self.capacity:  # evict the oldest step (scalar form of _evict)
            self._lo[self._stream[slot]] += 1
            if "is_last" in self._data and self._data["is_last"][slot]:
                self._episodes -= 1
        if self._hi[stream] > self._lo[stream]:
            self._next[self._last[stream]] = slot
        for key, value in values.items():
            self._data[key][slot] = value
        self._stream[slot] = stream
        self._position[slot] = self._hi[stream]
        self._next[slot] = -1
        self._source[slot] = -1  # in no file until its episode is written
        self._hi[stream] += 1
        self._last[stream] = slot
        self._head = (slot + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        is_last = bool(values["is_last"]) if "is_last" in values else False
        self._episodes += is_last
        if self.directory is not None:
            self._track_episode(worker, slot, values, is_last)

    def _allocate(self, layout: Layout) -> None:
        layout = {key: (tuple(shape), np.dtype(dtype)) for key, (shape, dtype) in layout.items()}
        total = self.capacity * (_step_bytes(layout) + _META_BYTES)
        physical = _physical_memory()
        if physical is not None and total > physical:
            warnings.warn(
                f"replay of {self.capacity} steps needs {format_bytes(total)} but this machine has "
                f"{format_bytes(physical)} of RAM; lower the capacity",
                ResourceWarning,
                stacklevel=3,
            )
        self._layout = layout
        if self.storage == "disk":
            assert self.buffer is not None
            self._data = allocate_on_disk(self.buffer, layout, self.capacity)
        else:
            self._data = {key: np.empty((self.capacity, *s), d) for key, (s, d) in layout.items()}
        self._stream = np.zeros(self.capacity, np.int32)
        self._position = np.zeros(self.capacity, np.int64)
        self._next = np.full(self.capacity, -1, np.int64)
        self._source = np.full(self.capacity, -1, np.int32)

    def reserve(self, obs_space_or_shapes: Any, action_dim: int) -> None:
        """Allocates the storage now for steps of this observation space (instead of on the
        first add), so that a disk-backed buffer that does not fit its disk, or a folder that
        cannot be written, is an error before anything runs."""
        if self._layout is None:
            self._allocate(self._layout_from_spec(obs_space_or_shapes, action_dim))

    def close(self) -> None:
        """Releases the storage; a disk-backed buffer's files are deleted (the episode files
        stay). The replay is empty afterwards."""
        self._clear()
        if self.storage == "disk" and self.buffer is not None:
            release_disk(self.buffer)

    def _check_step(self, values: Mapping[str, np.ndarray]) -> None:
        assert self._layout is not None
        if values.keys() != self._layout.keys():
            missing = sorted(set(self._layout) - set(values))
            extra = sorted(set(values) - set(self._layout))
            raise ValueError(
                f"step keys differ from the replay's: missing {missing}, unexpected {extra}; "
                "every step must carry the keys of the first one"
            )
        for key, value in values.items():
            shape, dtype = self._layout[key]
            if value.shape != shape or not np.can_cast(value.dtype, dtype, "same_kind"):
                raise ValueError(
                    f"step key {key!r} has shape {value.shape} dtype {value.dtype}, the replay "
                    f"stores shape {shape} dtype {dtype}; convert it before adding"
                )

    def _stream_id(self, key: Hashable) -> int:
        stream = self._ids.get(key)
        if stream is None:
            stream = self._ids[key] = len(self._ids)
            self._lo.append(0)
            self._hi.append(0)
            self._last.append(-1)
        return stream

    def _evict(self, slots: np.ndarray) -> None:
        """Forget the held ``slots`` (each the oldest of its stream) before they are overwritten."""
        counts = np.bincount(self._stream[slots], minlength=len(self._lo))
        for stream in np.flatnonzero(counts):
            self._lo[stream] += int(counts[stream])
        if "is_last" in self._data:
            self._episodes -= int(self._data["is_last"][slots].sum())

    def _extend(self, key: Hashable, episode: Mapping[str, np.ndarray], source: int) -> None:
        """Append a whole episode ``key -> [L, ...]`` to stream ``key`` (vectorised ``add``);
        its steps come from ``_files[source]``."""
        stream = self._stream_id(key)
        length = len(next(iter(episode.values())))
        skipped = max(0, length - self.capacity)  # only the newest steps can be held
        if skipped:
            episode = {k: v[skipped:] for k, v in episode.items()}
            length = self.capacity
        slots = (self._head + np.arange(length)) % self.capacity
        evicted = max(0, self._size + length - self.capacity)
        if evicted:
            self._evict(slots[length - evicted :])
        if skipped:  # everything was evicted above, so the stream holds nothing: lo == hi
            self._lo[stream] = self._hi[stream] = self._hi[stream] + skipped
        if self._hi[stream] > self._lo[stream]:
            self._next[self._last[stream]] = slots[0]
        for k, value in episode.items():
            self._data[k][slots] = value
        self._stream[slots] = stream
        self._position[slots] = self._hi[stream] + np.arange(length)
        self._next[slots[:-1]] = slots[1:]
        self._next[slots[-1]] = -1
        self._source[slots] = source
        self._hi[stream] += length
        self._last[stream] = int(slots[-1])
        self._head = int(slots[-1] + 1) % self.capacity
        self._size = min(self._size + length, self.capacity)
        if "is_last" in episode:
            self._episodes += int(episode["is_last"].sum())

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int, length: int) -> dict[str, np.ndarray]:
        """Sample ``batch_size`` sequences of ``length`` consecutive steps of one worker each.

        Returns:
            key -> array ``[B, T, ...]`` in the stored dtype (images uint8).

        Raises:
            ValueError: No worker stream holds ``length`` consecutive steps yet.
        """
        if batch_size < 1 or length < 1:
            raise ValueError(f"batch_size and length must be >= 1, got {batch_size}, {length}")
        lo, hi = np.asarray(self._lo, np.int64), np.asarray(self._hi, np.int64)
        total = int(np.maximum(hi - lo - length + 1, 0).sum())
        if total == 0:
            longest = int((hi - lo).max()) if len(hi) else 0
            raise ValueError(
                f"cannot sample sequences of length {length}: the longest worker stream holds "
                f"{longest} steps ({self._size} steps in total); collect more steps first or "
                "sample shorter sequences"
            )
        index = np.empty((batch_size, length), np.int64)
        index[:, 0] = self._sample_starts(batch_size, length, hi, total)
        for t in range(1, length):
            index[:, t] = self._next[index[:, t - 1]]
        assert (index >= 0).all(), "a sampled sequence ran past its stream's newest step"
        return {key: np.asarray(value[index]) for key, value in self._data.items()}

    def _sample_starts(self, batch_size: int, length: int, hi: np.ndarray, total: int):
        """Uniform draws among held slots with ``length - 1`` held successors in their stream."""
        held = self._size  # held slots are always [0, size): slots are only ever overwritten
        if total < held // 2:  # few valid starts: list them (O(size)) instead of rejecting
            valid = np.flatnonzero(self._position[:held] + length <= hi[self._stream[:held]])
            assert len(valid) == total, (len(valid), total)
            return valid[self._rng.integers(0, total, size=batch_size)]
        starts, need = [], batch_size
        while need > 0:  # rejection sampling; acceptance >= 1/2, so ~2 rounds at most
            draw = self._rng.integers(0, held, size=2 * need)
            draw = draw[self._position[draw] + length <= hi[self._stream[draw]]][:need]
            starts.append(draw)
            need -= len(draw)
        return np.concatenate(starts)


def _step_bytes(layout: Layout) -> int:
    return sum(
        int(np.prod(shape, dtype=np.int64)) * dtype.itemsize for shape, dtype in layout.values()
    )


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
