"""What each rank of a data-parallel run (``torchrun ... -m rssm train``) keeps of its own.

All ranks train one agent (gradients averaged, see :mod:`rssm.distributed`); each rank has its
own environments, replay and random streams, seeded with ``seed + RANK_SEED_STRIDE * rank``, so
rank 0 of a torchrun run draws what a one-process run with the same seed draws. Rank 0 alone
checks the run directory, logs, evaluates and writes checkpoints; a checkpoint holds rank 0's
state as a one-process checkpoint does, plus ``ranks``: for every other rank what is its own
(counters, schedules, drivers, policy carry, RNG, replay layout and the agent's generator; the
weights and optimiser states are rank 0's, equal on every rank). Rank ``r > 0`` writes its
episode files to ``replay-rank<r>/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rssm import distributed
from rssm.distributed import RANK_SEED_STRIDE, World
from rssm.run.checkpoint import CheckpointError, load_checkpoint
from rssm.run.resume import start_run_dir
from rssm.run.run_config import Config

__all__ = [
    "buffer_folder",
    "describe",
    "own_part",
    "own_state",
    "rank_seed",
    "replay_folder",
    "start",
]


def rank_seed(seed: int, world: World) -> int:
    """The seed of rank ``world.rank``'s environments, replay and generators."""
    return seed + RANK_SEED_STRIDE * world.rank


def replay_folder(run_dir: Path, world: World) -> Path:
    """Where the rank writes its episode files: ``replay/`` for rank 0, ``replay-rank<r>/``."""
    return run_dir / ("replay" if world.main else f"replay-rank{world.rank}")


def buffer_folder(config: Config, run_dir: Path, world: World) -> Path:
    """The folder of the rank's disk-backed replay buffer (``replay.storage=disk``)."""
    base = run_dir / "buffer" if config.replay.buffer is None else Path(config.replay.buffer)
    return base if world.main else base.with_name(f"{base.name}-rank{world.rank}")


def start(
    config: Config, run_dir: Path, resume: bool, older: bool, world: World
) -> tuple[Path, dict[str, Any]] | None:
    """:func:`rssm.run.resume.start_run_dir` on rank 0, which checks the directory and picks the
    checkpoint; the other ranks raise rank 0's error, or load the checkpoint it picked."""
    if world.size == 1:
        return start_run_dir(config, run_dir, resume, older)
    if world.main:
        try:
            picked = start_run_dir(config, run_dir, resume, older)
        except (ValueError, CheckpointError) as error:
            distributed.broadcast_object((str(error), None))
            raise
        distributed.broadcast_object((None, None if picked is None else str(picked[0])))
        return picked
    error, path = distributed.broadcast_object(None)
    if error is not None:
        raise ValueError(f"rank 0 stopped the run: {error}")
    return None if path is None else (Path(path), load_checkpoint(Path(path)))


def own_part(state: dict[str, Any]) -> dict[str, Any]:
    """The part of a rank's :func:`~rssm.run.resume.run_state` that is its own: everything but
    the agent's weights and optimiser states (equal on all ranks), its generator kept."""
    own = {key: value for key, value in state.items() if key != "agent"}
    own["generator"] = state["agent"]["generator"]
    return own


def own_state(state: dict[str, Any], world: World, path: Path) -> dict[str, Any]:
    """This rank's run state out of a checkpoint written by rank 0.

    Raises:
        ValueError: the checkpoint was written by a run of another number of ranks.
    """
    saved = len(state.get("ranks") or []) + 1
    if saved != world.size:
        how = "without torchrun" if saved == 1 else f"with torchrun --nproc-per-node {saved}"
        raise ValueError(
            f"cannot resume {path} with {world.size} rank(s): it was written by a run of "
            f"{saved} rank(s), each with its own environments and replay; resume it {how} "
            "(x --nnodes), or start a new run"
        )
    if world.main:
        return state
    own = dict(state["ranks"][world.rank - 1])
    generator = own.pop("generator")
    return {**state, **own, "agent": {**state["agent"], "generator": generator}}


def describe(config: Config, world: World, batch: int) -> str:
    """One line on what a data-parallel run replays (printed and logged by rank 0)."""
    length, ratio = config.replay.length, config.run.train_ratio
    schedule = (
        f"train ratio {ratio:g} replayed rows per agent step over all ranks"
        if ratio is not None
        else f"{config.run.train_steps} updates every {config.run.train_every} env steps"
    )
    return (
        f"data-parallel: {world.size} ranks; global batch {config.replay.batch_size}x{length} = "
        f"{world.size} x {batch}x{length} per rank; {schedule}; env steps count all ranks' "
        f"environments ({config.env.num_envs} per rank)"
    )
