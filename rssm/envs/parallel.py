"""Environments in worker processes: :class:`ProcessEnv` runs one env in its own process, so that
the driver steps several of them at once while the policy runs batched in the main process.

A ``ProcessEnv`` is a gymnasium env to its user (``reset``, ``step``, ``close``, the spaces); the
:class:`~rssm.data.Driver` also uses its split form, ``step_async(action)`` then ``step_wait()``,
to send every env its action before waiting for any of them. Workers are started with the
``spawn`` method (no state shared with the parent: safe with torch's threads) from a picklable
``make`` function, e.g. ``functools.partial(rssm.envs.make_env, "dmc:walker-walk", ...)``; an env
registered by your own code must then be named ``gym:<module>:<id>`` so that the worker imports the
module that registers it.

Errors: an exception inside the worker comes back as a :class:`WorkerError` naming the env, the
call and the exception (one line), with the worker's traceback as a note (``add_note``: shown in
full tracebacks and in a run's ``error.log``); a worker that does not answer within ``timeout``
seconds is reported and stopped instead of waited on forever.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import gymnasium

__all__ = ["ProcessEnv", "WorkerError"]


class WorkerError(RuntimeError):
    """An env's worker process raised, died or did not answer in time."""


def _worker(make: Callable[[], gymnasium.Env], conn: Connection) -> None:
    try:
        env = make()
        conn.send(("ok", (env.observation_space, env.action_space)))
    except BaseException as error:  # the parent reports it
        conn.send(("error", (type(error).__name__, str(error), traceback.format_exc())))
        conn.close()
        return
    try:
        while True:
            command, data = conn.recv()
            try:
                if command == "step":
                    result: Any = env.step(data)
                elif command == "reset":
                    result = env.reset(**data)
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
        spaces = self._receive("start", max(self.timeout, start_timeout))
        self.observation_space, self.action_space = spaces

    # ------------------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._send("reset", {"seed": seed, "options": options})
        return self._receive("reset")

    def step(self, action: Any):
        self.step_async(action)
        return self.step_wait()

    def step_async(self, action: Any) -> None:
        """Sends ``action`` to the worker; :meth:`step_wait` returns the step's result."""
        self._send("step", action)

    def step_wait(self):
        return self._receive("step")

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
