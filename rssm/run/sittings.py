"""The sittings of a run: one record per invocation of :func:`rssm.run.train.train`.

A long run is often trained in several sittings (``run.max_minutes``, Ctrl-C, a machine that is
taken back), each an exact resume of the last. Its metrics say where the run is, not how it got
there: a resume deletes the rows past its checkpoint, and the logged wall clock restarts. So the
run directory keeps ``sittings.jsonl``, which a resume never rewrites: a ``start`` line when an
invocation begins and a ``stop`` line when it ends, each with the env steps and updates reached,
the wall-clock time, and the machine and code that ran. A sitting that was killed (SIGKILL, a
machine that went away) has a start line and no stop line; the next sitting's start line says
from which step it went on, so the steps the killed one lost are visible too.

``rssm sittings --run RUN_DIR`` prints them; ``benchmarks/learn.py`` writes them into its rows.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["SITTINGS_FILE", "Sitting", "cpu_name", "describe", "read_sittings", "record"]

SITTINGS_FILE = "sittings.jsonl"


def cpu_name() -> str:
    """The processor's model name and core count (Linux), else what ``platform`` knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        lines = []
    for line in lines:
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return platform.processor() or platform.machine()


@functools.cache
def _commit() -> str | None:
    """The git commit of the checkout that holds this package (``+dirty`` with uncommitted
    changes to tracked files); None when it is not in a source checkout (an installed copy
    inside some other repository must not report that one's commit) or git is missing. Asked
    once per process: the code a process runs does not change under it."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _write(run_dir: Path, line: dict[str, Any]) -> None:
    """Appends one JSON line and syncs it, so that a sitting killed right after keeps it; an
    unwritable run directory loses the line, never the run."""
    with contextlib.suppress(OSError), open(run_dir / SITTINGS_FILE, "a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")
        file.flush()
        os.fsync(file.fileno())


@contextlib.contextmanager
def record(
    run_dir: str | Path,
    counters: Any,
    *,
    steps: int,
    max_minutes: float | None = None,
    device: str = "cpu",
) -> Iterator[None]:
    """Writes a sitting's start line on entry and its stop line on exit.

    ``counters`` has ``env_steps`` (the step of the schedules: updates for an offline run) and
    ``updates``, read at entry and exit. A normal exit is ``done`` when ``env_steps`` reached
    ``steps``, else ``budget`` (``run.max_minutes``); an exception leaving the block is recorded
    as ``interrupted`` (Ctrl-C) or ``error`` and passes on. The record never fails the run: an
    unwritable run directory only loses it.
    """
    run_dir, start = Path(run_dir), time.monotonic()
    _write(run_dir, {
        "event": "start", "time": _now(), "env_steps": counters.env_steps,
        "updates": counters.updates, "steps": steps, "max_minutes": max_minutes,
        "host": platform.node(), "cpu": cpu_name(), "device": device,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "commit": _commit(),
        "pid": os.getpid(),
    })  # fmt: skip
    stop: dict[str, Any] = {}
    try:
        yield
    except KeyboardInterrupt:
        stop["reason"] = "interrupted"
        raise
    except BaseException as error:
        stop.update(reason="error", error=f"{type(error).__name__}: {error}"[:500])
        raise
    else:
        stop["reason"] = "done" if counters.env_steps >= steps else "budget"
    finally:
        _write(run_dir, {
            "event": "stop", "time": _now(), "env_steps": counters.env_steps,
            "updates": counters.updates, **stop,
            "minutes": round((time.monotonic() - start) / 60.0, 4), "pid": os.getpid(),
        })  # fmt: skip


@dataclass
class Sitting:
    """One invocation: where it started and, unless it was killed, where and how it stopped."""

    started: str
    from_env_steps: int
    from_updates: int
    commit: str | None
    host: str
    threads: int | None
    stopped: str | None = None
    to_env_steps: int | None = None
    to_updates: int | None = None
    reason: str | None = None  # None: no stop line (running, or killed)
    minutes: float | None = None
    pid: int | None = None

    @property
    def killed(self) -> bool:
        """No stop line and its process is not running (on this host): it was killed."""
        return self.stopped is None and not self.running

    @property
    def running(self) -> bool:
        """No stop line yet and its process is alive on this host (a reused pid reads as
        running too; a sitting on another host never does)."""
        if self.stopped is not None or self.pid is None or self.host != platform.node():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # exists, owned by another user
            return True
        return True


def read_sittings(run_dir: str | Path) -> list[Sitting]:
    """The run's sittings in order, start lines paired with the stop line of the same process;
    a start without one is a killed sitting. An unreadable line (a torn last write) is skipped;
    a run directory without the file (older runs) has none."""
    path = Path(run_dir) / SITTINGS_FILE
    if not path.is_file():
        return []
    sittings: list[Sitting] = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if not isinstance(line, dict):
            continue
        if line.get("event") == "start":
            sitting = Sitting(
                started=line.get("time", "?"),
                from_env_steps=int(line.get("env_steps", 0)),
                from_updates=int(line.get("updates", 0)),
                commit=line.get("commit"),
                host=line.get("host", "?"),
                threads=line.get("threads"),
                pid=line.get("pid"),
            )
            sittings.append(sitting)  # an earlier one still open was killed
        elif (
            line.get("event") == "stop"
            and sittings
            and sittings[-1].stopped is None
            and sittings[-1].pid == line.get("pid")
        ):
            sitting = sittings[-1]
            sitting.stopped = line.get("time")
            sitting.to_env_steps = line.get("env_steps")
            sitting.to_updates = line.get("updates")
            sitting.reason = line.get("reason")
            sitting.minutes = line.get("minutes")
    return sittings


def describe(sittings: list[Sitting], *, offline: bool = False) -> list[str]:
    """One line per sitting: when, from which step to which, how long and how it ended; first a
    line for the steps before the first recorded sitting, where there are any (a run started
    before sittings were recorded)."""
    unit = "updates" if offline else "env steps"
    lines = []
    first = sittings[0].from_updates if offline else sittings[0].from_env_steps
    if first:
        lines.append(f"0. before the first recorded sitting: to {first:,} {unit} (not recorded)")
    for number, s in enumerate(sittings, 1):
        start = s.from_updates if offline else s.from_env_steps
        where = f"{number}. {s.started.replace('T', ' ').removesuffix('Z')} UTC"
        if s.running:
            lines.append(f"{where}: from {start:,} {unit}, running (pid {s.pid})")
            continue
        if s.killed:
            after = "the next sitting went on" if number < len(sittings) else "--resume goes on"
            lines.append(
                f"{where}: from {start:,} {unit}, killed (no stop line; {after} from the newest "
                "checkpoint)"
            )
            continue
        end = s.to_updates if offline else s.to_env_steps
        lines.append(
            f"{where}: {start:,} to {end:,} {unit} in {s.minutes:.1f} min, {s.reason} "
            f"(commit {(s.commit or 'unknown')[:12]}, {s.threads} thread(s))"
        )
    return lines
