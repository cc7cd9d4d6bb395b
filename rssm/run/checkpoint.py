"""Checkpoints: written atomically (a temporary file in the same directory, fsync, rename), read
back safely (``weights_only``), with one error class whose messages name the file and the problem.

Errors (all :class:`CheckpointError`, a ``ValueError``; each message is one line):
    * :class:`CheckpointNotFoundError` (also a ``FileNotFoundError``): no file at the path;
    * :class:`CheckpointError`: a corrupt or truncated file, a file that is not an rssm
      checkpoint, or one written in a newer format;
    * :class:`UnsafeCheckpointError`: a file that carries pickled code (a callable such as
      ``posix.system``), which is never run: the message names the callable, whatever the wording
      of the installed torch's refusal;
    * :class:`IncompatibleCheckpointError`: the checkpoint's tensors do not fit the object built
      from the current config (:func:`check_compatible` names the keys and shapes);
    * :class:`CheckpointWriteError` (also an ``OSError``): saving failed (disk full, no
      permission); the previous checkpoint at the path is left as it was.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from rssm.files import atomic_path

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointWriteError",
    "IncompatibleCheckpointError",
    "UnsafeCheckpointError",
    "check_compatible",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT_VERSION = 1  # the newest format this code reads; save_checkpoint writes it
_ABSENT: Any = object()  # a key on one side only
_SHOWN = 6  # differences named in an IncompatibleCheckpointError before "and N more"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint file at the path (the run may not have written its first one yet)."""


class CheckpointWriteError(CheckpointError, OSError):
    """Saving a checkpoint failed; the previous checkpoint at the path is unchanged."""


class UnsafeCheckpointError(CheckpointError):
    """The file carries pickled code (a callable that loading would run): refused, never run."""


class IncompatibleCheckpointError(CheckpointError):
    """The checkpoint was written for another config: its tensors do not fit the model."""


def _os_error(error: BaseException) -> OSError | None:
    """The OSError behind ``error`` (itself, or its cause/context: torch wraps write errors)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Saves ``payload`` (tensors, numbers, strings, lists and dicts) to ``path`` atomically.

    The payload goes to a hidden temporary file ``.<name>.<random>.tmp`` beside ``path``, is
    fsynced, then renamed over ``path``. A crash mid-write leaves the previous file at ``path``
    untouched (loaders never pick up the temporary file); a failed write removes it.

    Returns:
        ``path`` as a Path.

    Raises:
        CheckpointWriteError: the file could not be written (disk full, no permission, ...),
            naming the path; the previous checkpoint is unchanged.
        Exception: anything else from ``torch.save`` (e.g. an object it cannot pickle).
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            torch.save({"format_version": FORMAT_VERSION, **payload}, file)
    except BaseException as error:
        cause = _os_error(error) if isinstance(error, Exception) else None  # never Ctrl-C
        if cause is None or isinstance(error, CheckpointError):
            raise
        reason = cause.strerror or str(cause) or type(cause).__name__
        raise CheckpointWriteError(
            f"could not write checkpoint {path}: {reason}; the previous checkpoint there (if any) "
            "is unchanged"
        ) from error
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Loads a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Uses ``torch.load(weights_only=True)``: tensors and plain data only, no code runs.

    Raises:
        CheckpointNotFoundError: no file at ``path``.
        CheckpointError: ``path`` is a directory or unreadable, the file is corrupt or
            truncated, is not an rssm checkpoint (no ``format_version``), or was written in a
            newer format than this version of rssm reads.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(
            f"no checkpoint at {path}: the run may not have written its first checkpoint yet "
            "(rssm train writes one every run.checkpoint_every env steps and when it stops)"
        )
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a directory, not a checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror}") from None
    except Exception as error:  # torch raises many kinds for damaged files
        raise _load_error(path, error) from None
    return _check_format(path, payload)


def _load_error(path: Path, error: Exception) -> CheckpointError:
    callables = _foreign_globals(path)
    if callables:
        names = ", ".join(f"`{name}`" for name in callables[:3])
        more = f" and {len(callables) - 3} more" if len(callables) > 3 else ""
        return UnsafeCheckpointError(
            f"refused to load {path}: it contains a pickled callable {names}{more}, code that "
            "loading would run (rssm checkpoints hold tensors and plain data only); nothing was "
            "run. Delete the file unless you know where it came from"
        )
    if isinstance(error, pickle.UnpicklingError) and "global" in str(error).lower():
        return CheckpointError(
            f"{path} holds Python objects other than tensors and plain data, which a safe "
            "(weights_only) load refuses: it is not an rssm checkpoint"
        )
    # torch raises many kinds here (RuntimeError, OSError, EOFError, KeyError, ...) whose texts
    # ("Invalid argument", "101") mislead more than they help: name the kind only.
    size = path.stat().st_size
    return CheckpointError(
        f"checkpoint {path} is corrupt or truncated ({size} bytes; {type(error).__name__} while "
        "reading it); restore it from a copy, or train the run again"
    )


# Modules whose globals a checkpoint written by save_checkpoint may name (tensor rebuilders,
# dtypes, OrderedDict, bytes of numpy-free plain data).
_SAFE_MODULES = ("torch", "collections", "_codecs", "builtins")


def _foreign_globals(path: Path) -> list[str]:
    """``module.name`` of every global the file's pickle imports outside ``_SAFE_MODULES``,
    read with :mod:`pickletools` (nothing is imported or run); [] for a file that is not a
    readable torch zip archive (a damaged file is reported as such by the caller)."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl")), None)
            if name is None:
                return []
            data = archive.read(name)
        found: list[str] = []
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(str(arg))
            elif opcode.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # damaged archive or pickle: not our question here
        return []
    foreign = [g for g in found if g.split(".")[0] not in _SAFE_MODULES]
    return list(dict.fromkeys(foreign))


def _check_format(path: Path, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or "format_version" not in payload:
        kind = f"a {type(payload).__name__}"
        if isinstance(payload, dict):
            kind = f"a dict with keys {sorted(map(str, payload))[:6]}"
        raise CheckpointError(
            f"{path} is not an rssm checkpoint: it holds {kind} without 'format_version'"
        )
    version = payload["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"checkpoint {path} has an unknown format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, newer than this rssm reads "
            f"(up to {FORMAT_VERSION}); upgrade rssm to load it"
        )
    return payload


# --------------------------------------------------------------------------- compatibility


def check_compatible(
    saved: Mapping[str, Any],
    expected: Mapping[str, Any],
    *,
    path: str | os.PathLike | None = None,
    saved_config: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Checks that a checkpoint's state fits the object built from the current config.

    Call it before ``obj.load_state_dict(saved)`` with ``expected = obj.state_dict()``: torch's
    own errors for a mismatch are many lines long and name no config key. Tensors are compared
    by dotted key (``model.rssm._gru.cell.weight_hh``) and shape through nested mappings; lists
    and non-tensor leaves are not compared; a mapping that is empty in ``expected`` (state not
    created yet, e.g. a fresh optimiser's) matches anything.

    Args:
        saved: the state from the checkpoint (e.g. ``checkpoint["agent"]``).
        expected: ``state_dict()`` of the object built from the current config.
        path: the checkpoint file, named in the error.
        saved_config: the checkpoint's config as a plain nested dict (``checkpoint["config"]``).
        config: the current config as a plain nested dict; with ``saved_config``, the error
            also names the config keys that differ.

    Raises:
        IncompatibleCheckpointError: one line naming the differing keys and shapes (up to
            six, then a count) and the differing config keys.
    """
    problems = list(_differences(saved, expected, ""))
    if not problems:
        return
    shown = "; ".join(problems[:_SHOWN])
    if len(problems) > _SHOWN:
        shown += f"; and {len(problems) - _SHOWN} more"
    where = f"checkpoint {path}" if path is not None else "the checkpoint"
    text = f"{where} was written for another config (checkpoint vs current): {shown}"
    if saved_config is not None and config is not None:
        changed = _config_changes(saved_config, config)
        if changed:
            text += f"; config keys that differ (checkpoint -> current): {changed}"
    raise IncompatibleCheckpointError(
        text + "; load it with the config it was written with (its run's config.yaml)"
    )


def _shape(tensor: torch.Tensor) -> str:
    return str(list(tensor.shape))


def _differences(saved: Any, expected: Any, prefix: str) -> Iterator[str]:
    """Descriptions of the differences, shape mismatches first, then missing/unexpected keys."""
    if not isinstance(saved, Mapping):
        yield f"the saved state is a {type(saved).__name__}, not a mapping of tensors"
        return
    mismatched, missing, unexpected = [], [], []
    for key, want, have in _walk(saved, expected, prefix):
        if have is _ABSENT:
            missing.append(key)
        elif want is _ABSENT:
            unexpected.append(key)
        elif not (isinstance(want, torch.Tensor) and isinstance(have, torch.Tensor)):
            kinds = type(have).__name__, type(want).__name__
            mismatched.append(f"{key} {kinds[0]} vs {kinds[1]}")
        elif want.shape != have.shape:
            mismatched.append(f"{key} {_shape(have)} vs {_shape(want)}")
    yield from mismatched
    if missing:
        yield f"missing from the checkpoint: {_names(missing)}"
    if unexpected:
        yield f"not in the current model: {_names(unexpected)}"


def _names(keys: list[str], shown: int = 4) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def _walk(saved: Mapping, expected: Mapping, prefix: str) -> Iterator[tuple[str, Any, Any]]:
    """(key, expected value, saved value) of tensor leaves and of keys on one side only
    (the missing side is ``_ABSENT``); nested mappings recurse."""
    for key in list(expected) + [k for k in saved if k not in expected]:
        name = f"{prefix}{key}"
        want, have = expected.get(key, _ABSENT), saved.get(key, _ABSENT)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            if want:  # an empty expected mapping is state not created yet: anything fits
                yield from _walk(have, want, name + ".")
        elif (
            want is _ABSENT
            or have is _ABSENT
            or any(isinstance(v, torch.Tensor) for v in (want, have))
        ):
            yield name, want, have


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _config_changes(saved: Mapping[str, Any], current: Mapping[str, Any], shown: int = 8) -> str:
    """Keys set on both sides with different values; keys on one side only are counted (a
    checkpoint from an older version lacks newer keys, which says little)."""
    old, new = _flatten(saved), _flatten(current)
    keys = sorted(k for k in old.keys() & new.keys() if old[k] != new[k])
    parts = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in keys[:shown]]
    if len(keys) > shown:
        parts.append(f"and {len(keys) - shown} more")
    one_side = len(old.keys() ^ new.keys())
    if one_side:
        parts.append(f"{one_side} keys set on one side only")
    return ", ".join(parts)
