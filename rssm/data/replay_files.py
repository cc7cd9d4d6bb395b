"""The episode-file half of :class:`~rssm.data.replay.Replay`: writing finished episodes,
loading episode folders, and the state that rebuilds a replay from its files (exact resume).

:class:`EpisodeFiles` is a base class of ``Replay`` and works on its slots and streams (the
storage and sampling half lives in :mod:`rssm.data.replay`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rssm.data.episodes import (
    CorruptEpisodeError,
    check_layouts,
    list_episodes,
    newest_that_fit,
    read_episode,
    write_episode,
)

__all__ = ["LOADED", "EpisodeFiles"]

LOADED = "loaded"  # stream key of episodes read from disk; user workers are ints >= 0
_UNSAVED = -2  # _rebuild: a slot restored from the state's unsaved steps, not from a file


class EpisodeFiles:
    """Episode files and exact resume for :class:`~rssm.data.replay.Replay` (see its docstring);
    the attributes below are the replay's, and so are the methods used here (``_clear``,
    ``_allocate``, ``_stream_id``, ``_extend``)."""

    capacity: int
    directory: Path | None
    _rng: np.random.Generator
    _layout: Any
    _data: dict[str, np.ndarray]
    _stream: np.ndarray
    _position: np.ndarray
    _next: np.ndarray
    _source: np.ndarray
    _head: int
    _size: int
    _ids: dict[Any, int]
    _lo: list[int]
    _hi: list[int]
    _last: list[int]
    _episodes: int
    _known: dict[str, None]
    _pending: dict[int, list[int]]
    _files: list[list[Any]]

    # ------------------------------------------------------------------ episode files
    def _track_episode(self, worker: int, slot: int, values: Mapping, is_last: bool) -> None:
        pending = self._pending.setdefault(worker, [])
        if "is_first" in values and bool(values["is_first"]):
            pending.clear()  # an unfinished episode was cut off: it is never written
        pending.append(slot)
        if not is_last:
            return
        slots = np.asarray(pending)
        pending.clear()
        stream = self._ids[worker]
        first = self._hi[stream] - len(slots)
        if first < self._lo[stream]:
            warnings.warn(
                f"an episode of worker {worker} ({len(slots)} steps) lost its first steps to "
                f"eviction before it finished and was not saved; raise the capacity "
                f"({self.capacity})",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        assert self.directory is not None
        written = write_episode(self.directory, {k: v[slots] for k, v in self._data.items()})
        self._known[written.episode_id] = None
        self._source[slots] = len(self._files)
        self._files.append([written.episode_id, worker, first, len(slots)])

    def load(
        self,
        directory: str | os.PathLike | None = None,
        *,
        ids: Iterable[str] | None = None,
        shapes: Mapping[str, tuple[int, ...]] | None = None,
    ) -> int:
        """Load episode files that this replay does not hold yet.

        Args:
            directory: Directory of ``.npz`` episodes; defaults to the replay's ``directory``.
            ids: Only load episodes with these ids (e.g. the ones known at a checkpoint).
            shapes: per-step shapes of some keys (e.g. the observation space's) that every
                file must have; a file that differs is named in the error.

        Returns:
            Number of episodes loaded.

        Raises:
            EpisodeLayoutError: An episode's keys, shapes or dtypes differ from the replay's (or
                from most episodes' when the replay is empty) or from ``shapes``; nothing is
                loaded then.
        """
        directory = self.directory if directory is None else Path(directory)
        if directory is None:
            raise ValueError("load() needs a directory: pass one or build Replay(directory=...)")
        files, unknown = list_episodes(directory)
        for path in unknown:
            warnings.warn(f"skipping {path}: not an episode file name", RuntimeWarning, 2)
        wanted = None if ids is None else set(ids)
        files = [
            f
            for f in files
            if f.episode_id not in self._known and (wanted is None or f.episode_id in wanted)
        ]
        layout, files = check_layouts(newest_that_fit(files, self.capacity), self._layout, shapes)
        own = self.directory is not None and directory.resolve() == self.directory.resolve()
        loaded = 0
        for file in files:
            try:
                episode = read_episode(file.path, layout)
            except CorruptEpisodeError as error:
                warnings.warn(f"skipping corrupt episode: {error}", RuntimeWarning, 2)
                continue
            if self._layout is None:
                self._allocate(layout)
            if "is_first" in episode:
                episode["is_first"][0] = True
            source = -1  # a file of another directory cannot rebuild this replay
            if own:
                start = self._hi[self._stream_id(LOADED)]
                length = len(next(iter(episode.values())))
                self._files.append([file.episode_id, LOADED, start, length])
                source = len(self._files) - 1
            self._extend(LOADED, episode, source)
            self._known[file.episode_id] = None
            loaded += 1
        return loaded

    # ------------------------------------------------------------------ exact resume
    def state_dict(self, *, data: bool = True) -> dict[str, Any]:
        """Everything needed to restore this replay exactly (streams, sampler state, ...).

        Args:
            data: include the held data (the arrays are views of the buffer: serialise the
                result before adding more steps). ``False`` leaves out the steps that are in
                episode files of ``directory`` and records instead which file and step each such
                slot holds (``source`` [size] int32 and ``files``); the steps in no file
                (unfinished episodes, ones cut off by a reset) are kept under ``unsaved``
                (copies). :meth:`load_state_dict` reads the rest back from ``directory``.

        Raises:
            ValueError: ``data=False`` for a replay without a ``directory``.
        """
        held = slice(0, self._size)
        state: dict[str, Any] = {
            "capacity": self.capacity,
            "layout": {k: (list(s), d.str) for k, (s, d) in (self._layout or {}).items()},
            "head": self._head,
            "size": self._size,
            "workers": list(self._ids),
            "lo": list(self._lo),
            "hi": list(self._hi),
            "last": list(self._last),
            "episodes": self._episodes,
            "episode_ids": list(self._known),
            "pending": {worker: list(slots) for worker, slots in self._pending.items()},
            "rng": self._rng.bit_generator.state,
        }
        source = self._source[held]
        used, inverse = np.unique(source, return_inverse=True)
        known = used >= 0  # -1 (in no file) sorts first
        state["files"] = [list(self._files[i]) for i in used[known]]
        state["source"] = (inverse - (len(used) - known.sum())).astype(np.int32)
        if data:
            state["data"] = {key: value[held] for key, value in self._data.items()}
            state.update(stream=self._stream[held], position=self._position[held])
            state["next"] = self._next[held]
        elif self.directory is None:
            raise ValueError(
                "state_dict(data=False) needs episode files to read the data back from: build "
                "Replay(directory=...) or keep data"
            )
        else:
            slots = np.flatnonzero(source < 0)
            state["unsaved"] = {
                "slots": slots.astype(np.int64),
                "data": {key: value[slots].copy() for key, value in self._data.items()},
                "stream": self._stream[slots].copy(),
                "position": self._position[slots].copy(),
            }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the capacity must equal this replay's.

        A state without data is rebuilt from the episode files in ``directory``, each step into
        the slot it held, so that sampling continues exactly as it would have.

        Raises:
            ValueError: another capacity; or (without data) no directory, or an episode file
                that is missing, corrupt or of another length; the replay is then left empty.
        """
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"state_dict capacity {state['capacity']} differs from this replay's "
                f"{self.capacity}; build Replay({state['capacity']}, ...) to restore it"
            )
        self._clear()
        size = state["size"]
        try:
            if state["layout"]:
                self._allocate(
                    {k: (tuple(s), np.dtype(d)) for k, (s, d) in state["layout"].items()}
                )
            self._ids = {worker: i for i, worker in enumerate(state["workers"])}
            self._lo, self._hi = list(state["lo"]), list(state["hi"])
            self._last = list(state["last"])
            self._files = [list(entry) for entry in state.get("files", [])]
            if size and "source" in state:
                self._source[:size] = np.asarray(state["source"], np.int32)
            if "data" in state:
                for key, value in state["data"].items():
                    self._data[key][:size] = value
                self._stream[:size] = state["stream"]
                self._position[:size] = state["position"]
                self._next[:size] = state["next"]
            elif size:
                self._rebuild(state["head"], size, state.get("unsaved"))
        except BaseException:
            self._clear()
            raise
        self._head, self._size = state["head"], size
        self._episodes = state["episodes"]
        self._known = dict.fromkeys(state["episode_ids"])
        self._pending = {worker: list(slots) for worker, slots in state["pending"].items()}
        self._rng.bit_generator.state = state["rng"]

    def _rebuild(self, head: int, size: int, unsaved: Mapping[str, Any] | None) -> None:
        """Fill the ``size`` held slots: those in ``unsaved`` from it, the others from the
        episode files named by ``_source``/``_files``; then derive the stream bookkeeping (a
        stream's held steps are the newest of its files, then its unsaved steps)."""
        if self.directory is None:
            raise ValueError("load_state_dict: a state without data needs Replay(directory=...)")
        assert self._layout is not None
        source = self._source[:size]
        if unsaved is not None and len(unsaved["slots"]):
            slots = np.asarray(unsaved["slots"], np.int64)
            for key, value in unsaved["data"].items():
                self._data[key][slots] = value
            self._stream[slots] = unsaved["stream"]
            self._position[slots] = unsaved["position"]
            if (source[slots] >= 0).any():
                raise ValueError("load_state_dict: an unsaved step is also in an episode file")
            source = source.copy()
            source[slots] = _UNSAVED
        if (source == -1).any():
            raise ValueError("load_state_dict: the state holds steps that are in no episode file")
        files = {file.episode_id: file for file in list_episodes(self.directory)[0]}
        order = (
            (head + np.arange(size)) % self.capacity if size == self.capacity else np.arange(size)
        )
        in_files = order[source[order] >= 0]
        group = in_files[np.argsort(source[in_files], kind="stable")]  # by file, oldest first
        bounds = np.flatnonzero(np.diff(source[group])) + 1
        for slots in np.split(group, bounds) if len(group) else []:
            episode_id, worker, start, length = self._files[source[slots[0]]]
            file = files.get(episode_id)
            if file is None or file.length != length:
                raise ValueError(
                    f"cannot rebuild the replay: episode {episode_id} ({length} steps) is not in "
                    f"{self.directory}; resume from a state with data or load() the directory"
                )
            check_layouts([file], self._layout)  # names the file of another layout
            episode = read_episode(file.path, self._layout)
            offsets = length - len(slots) + np.arange(len(slots))  # evicted steps come first
            if worker == LOADED and "is_first" in episode:
                episode["is_first"][0] = True  # as load() marked it
            for key, value in episode.items():
                self._data[key][slots] = value[offsets]
            self._stream[slots] = self._ids[worker]
            self._position[slots] = start + offsets
        by_stream = order[np.argsort(self._stream[order], kind="stable")]  # position order
        same = self._stream[by_stream[1:]] == self._stream[by_stream[:-1]]
        self._next[by_stream] = -1
        self._next[by_stream[:-1][same]] = by_stream[1:][same]
        held = np.bincount(self._stream[:size], minlength=len(self._hi))
        expected = np.asarray(self._hi) - np.asarray(self._lo)
        assert (held == expected).all(), ("streams hold other step counts", held, expected)
