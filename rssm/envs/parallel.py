"""Environments in worker processes: :class:`ProcessEnv` runs one env in its own process, so that
the driver steps several of them at once while the policy runs batched in the main process.

A ``ProcessEnv`` is a gymnasium env to its user (``reset``, ``step``, ``close``, the spaces); the
:class:`~rssm.data.Driver` also uses its split form, ``step_async(action)`` then ``step_wait()``,
to send every env its action before waiting for any of them. Workers are started with the
``spawn`` method (no state shared with the parent: safe with torch's threads) from a picklable
``make`` function, e.g. ``functools.partial(rssm.envs.make_env, "dmc:walker-walk", ...)``; an env
registered by your own code must then be named ``gym:<module>:<id>`` so that the worker imports the
module that registers it.

Images travel through shared memory: for every ``uint8`` entry of a ``Dict`` observation space
the parent allocates a block (``multiprocessing.shared_memory``) that the worker writes each
observation into, so only the small entries (vectors, reward, flags, info) are pickled through
the pipe. An observation whose image does not fit its declared space goes through the pipe as it
is, for the driver's checker to name.

Errors: an exception inside the worker comes back as a :class:`WorkerError` naming the env, the
call and the exception (one line), with the worker's traceback as a note (``add_note``: shown in
full tracebacks and in a run's ``error.log``); a worker that does not answer within ``timeout``
seconds is reported and stopped instead of waited on forever.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import gymnasium
import numpy as np

__all__ = ["ProcessEnv", "WorkerError"]


class WorkerError(RuntimeError):
    """An env's worker process raised, died or did not answer in time."""


_SHARED = "__shared__"  # an observation entry that is in its shared-memory block


def _shared_keys(space: gymnasium.Space) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The image entries of a Dict observation space: the ones sent through shared memory."""
    spaces = getattr(space, "spaces", None)
    if not isinstance(spaces, Mapping):
        return {}
    return {
        key: (tuple(sub.shape), np.dtype(sub.dtype))
        for key, sub in spaces.items()
        if isinstance(sub, gymnasium.spaces.Box) and np.dtype(sub.dtype) == np.uint8
    }


def _views(blocks: Mapping[str, SharedMemory], layout: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {
        key: np.ndarray(layout[key][0], layout[key][1], buffer=block.buf)
        for key, block in blocks.items()
    }


def _put(result: Any, command: str, views: Mapping[str, np.ndarray]) -> Any:
    """The worker's side: the images of a reset/step result written to their blocks."""
    if not views or command not in ("step", "reset") or not isinstance(result[0], dict):
        return result
    obs = dict(result[0])
    for key, view in views.items():
        value = obs.get(key)
        if (
            isinstance(value, np.ndarray)
            and value.shape == view.shape
            and value.dtype == view.dtype
        ):
            view[...] = value
            obs[key] = _SHARED
    return (obs, *result[1:])


def _take(result: Any, command: str, views: Mapping[str, np.ndarray]) -> Any:
    """The parent's side: the images of a reset/step result copied out of their blocks."""
    if not views or command not in ("step", "reset") or not isinstance(result[0], dict):
        return result
    obs = {
        key: views[key].copy() if isinstance(value, str) and value == _SHARED else value
        for key, value in result[0].items()
    }
    return (obs, *result[1:])


def _worker(make: Callable[[], gymnasium.Env], conn: Connection) -> None:
    try:
        env = make()
        conn.send(("ok", (env.observation_space, env.action_space)))
    except BaseException as error:  # the parent reports it
        conn.send(("error", (type(error).__name__, str(error), traceback.format_exc())))
        conn.close()
        return
    blocks: dict[str, SharedMemory] = {}
    views: dict[str, np.ndarray] = {}
    try:
        while True:
            command, data = conn.recv()
            try:
                if command == "step":
                    result: Any = _put(env.step(data), command, views)
                elif command == "reset":
                    result = _put(env.reset(**data), command, views)
                elif command == "share":  # the parent's blocks for the image entries
                    blocks = {key: SharedMemory(name) for key, name in data.items()}
                    views = _views(blocks, _shared_keys(env.observation_space))
                    result = None
                elif command == "action_space":
                    result = env.unwrapped.action_space
                elif command == "close":
                    env.close()
                    conn.send(("ok", None))
                    return
                else:
                    raise ValueError(f"unknown command {command!r}")
            except Exception as error:
                conn.send(("error", (type(error).__name__, str(error), traceback.format_exc())))
                continue
            conn.send(("ok", result))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass  # the parent went away or was interrupted: end quietly
    finally:
        views.clear()
        for block in blocks.values():
            block.close()  # the parent unlinks them
        conn.close()


class ProcessEnv(gymnasium.Env):
    """One environment in a worker process (see the module docstring).

    Args:
        make: picklable function that builds the env in the worker.
        name: what errors call the env (e.g. ``"dmc:walker-walk"``).
        timeout: seconds to wait for the worker's answer to one call.
        start_timeout: seconds to wait for the worker to start and build its env (a fresh
            interpreter imports the suite: seconds on a busy machine).
    """

    def __init__(
        self,
        make: Callable[[], gymnasium.Env],
        name: str = "env",
        timeout: float = 60.0,
        start_timeout: float = 300.0,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"ProcessEnv: timeout must be > 0 seconds, got {timeout!r}")
        self.name, self.timeout = name, float(timeout)
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_worker, args=(make, child), daemon=True)
        self._process.start()
        child.close()
        self._pending: str | None = None
        self._closed = False
        self._pending = "start"
        self._blocks: dict[str, SharedMemory] = {}
        self._views: dict[str, np.ndarray] = {}
        spaces = self._receive("start", max(self.timeout, start_timeout))
        self.observation_space, self.action_space = spaces
        layout = _shared_keys(self.observation_space)
        if layout:
            self._blocks = {
                key: SharedMemory(create=True, size=max(1, int(np.prod(shape)) * dtype.itemsize))
                for key, (shape, dtype) in layout.items()
            }
            self._send("share", {key: block.name for key, block in self._blocks.items()})
            self._receive("share")
            self._views = _views(self._blocks, layout)

    # ------------------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._send("reset", {"seed": seed, "options": options})
        return _take(self._receive("reset"), "reset", self._views)

    def step(self, action: Any):
        self.step_async(action)
        return self.step_wait()

    def step_async(self, action: Any) -> None:
        """Sends ``action`` to the worker; :meth:`step_wait` returns the step's result."""
        self._send("step", action)

    def step_wait(self):
        return _take(self._receive("step"), "step", self._views)

    @property
    def unwrapped(self) -> ProcessEnv:  # the driver's checker reads unwrapped.action_space
        return self

    def worker_action_space(self) -> gymnasium.Space:
        """The action space of the env inside the worker, as it is now."""
        self._send("action_space", None)
        return self._receive("action_space")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # A polite close; a worker already gone is stopped below all the same.
            with contextlib.suppress(OSError, EOFError):
                if self._process.is_alive() and self._pending is None:
                    self._conn.send(("close", None))
                    if self._conn.poll(min(self.timeout, 10.0)):
                        self._conn.recv()
        finally:
            self._process.join(timeout=5.0)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=5.0)
            self._conn.close()
            self._release()

    def _release(self) -> None:
        """Frees the shared-memory blocks (the worker has ended or been stopped)."""
        self._views = {}
        blocks, self._blocks = getattr(self, "_blocks", {}), {}
        for block in blocks.values():
            with contextlib.suppress(OSError, BufferError):
                block.close()
            with contextlib.suppress(OSError):
                block.unlink()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()

    # ------------------------------------------------------------------------- the pipe
    def _send(self, command: str, data: Any) -> None:
        if self._closed:
            raise WorkerError(f"env {self.name!r}: {command} after close()")
        if self._pending is not None:
            raise WorkerError(f"env {self.name!r}: {command} while {self._pending} is pending")
        try:
            self._conn.send((command, data))
        except (OSError, EOFError) as error:
            raise self._dead(command, error) from None
        self._pending = command

    def _receive(self, call: str, timeout: float | None = None) -> Any:
        timeout = self.timeout if timeout is None else timeout
        try:
            if not self._conn.poll(timeout):
                self._stop()
                raise WorkerError(
                    f"env {self.name!r}: its worker did not answer {call} within "
                    f"{timeout:g} s (a hung env?); the worker was stopped. Raise "
                    "env.worker_timeout if the env is just slow"
                )
            status, data = self._conn.recv()
        except (OSError, EOFError) as error:
            raise self._dead(call, error) from None
        finally:
            self._pending = None
        if status == "error":
            kind, message, trace = data
            error = WorkerError(f"env {self.name!r}: {call} raised {kind} in its worker: {message}")
            error.add_note(f"worker traceback:\n{trace}")
            raise error
        return data

    def _dead(self, call: str, error: BaseException) -> WorkerError:
        code = self._process.exitcode
        self._stop()
        return WorkerError(
            f"env {self.name!r}: its worker process ended during {call} (exit code {code}; "
            f"{type(error).__name__})"
        )

    def _stop(self) -> None:
        self._closed = True
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5.0)
        self._release()
