"""The agent training loop: collect with the agent, replay, train, evaluate, log, checkpoint.

Environment -> driver -> ``agent.policy`` -> replay -> batches -> ``agent.train_step`` (DESIGN.md
§3). :func:`train` is the whole loop in one function; the helpers below build its parts.

Step counting (one convention everywhere):
    * an **agent step** is one policy call for one environment: one row of replay;
    * an **env step** is ``agent steps x env.action_repeat`` (frames, the x-axis of the papers).
    ``run.steps`` and every ``*_every`` setting count env steps, and so does the ``step`` of every
    logged row. ``run.train_ratio`` counts replayed rows per collected row (agent step), as in
    DreamerV3's code, so it does not change with the action repeat. The logs show both effective
    ratios: ``train/grad_steps_per_env_step`` (updates per env step) and ``train/replay_ratio``
    (replayed rows per agent step, comparable with ``run.train_ratio``).

Run directory (``logdir``): ``config.yaml`` (the resolved config, written at start),
``metrics.jsonl`` (+ TensorBoard events if installed), ``videos/``, ``replay/`` (one ``.npz`` per
finished episode), the last ``run.keep_checkpoints`` checkpoints ``checkpoint-<env_step>.pt`` and
``checkpoint.pt``, the newest (see :mod:`rssm.run.resume`), and ``sittings.jsonl``, one start and
one stop line per invocation (:mod:`rssm.run.sittings`).

Exact resume: a run killed at any moment (SIGKILL included) and resumed continues as if it had
not stopped (same metrics and weights; CPU, fixed seeds). Checkpoints are written on their
schedule, at the end and on Ctrl-C, inside episodes too: environment state is not saved but
rebuilt by replaying each unfinished episode's recorded actions from its seeded reset;
:mod:`rssm.run.resume` has the details and the cases that are not exact (``exact: False`` in the
checkpoint, warned about).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from rssm import config as config_lib
from rssm import distributed
from rssm.agents import Agent
from rssm.agents.optimizer import NonFiniteError
from rssm.data import Driver, EnvError, RandomPolicy, Replay
from rssm.distributed import SINGLE, World
from rssm.envs import EnvSpec, env_spec
from rssm.run import ranks, sittings
from rssm.run.builders import make_agent, make_envs
from rssm.run.logger import Logger
from rssm.run.reporting import QuietReporter, Reporter, Stats, load_held_out
from rssm.run.resume import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    discard_after,
    restore_run_state,
    run_state,
    write_checkpoint,
)
from rssm.run.run_config import Config, EnvConfig, ReplayConfig, RunConfig, torch_threads
from rssm.run.stopping import Budget, SafeStop, check_finite, deferred_interrupt
from rssm.run.when import Every, Ratio, updates_per_step

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "EVAL_SEED",
    "NonFiniteError",
    "Config",
    "EnvConfig",
    "ReplayConfig",
    "RunConfig",
    "make_agent",
    "make_envs",
    "train",
]

DISTRIBUTED_TIMEOUT = 120.0  # minutes a rank waits for the others in a collective
EVAL_SEED = 10_000  # offset of the evaluation env's seeds: it never replays training episodes


# ------------------------------------------------------------------------------------ parts


@dataclass
class _Counters:
    """Progress of a run: plain ints, saved in checkpoints."""

    agent_steps: int = 0
    updates: int = 0
    episodes: int = 0
    action_repeat: int = 1
    nonfinite: int = 0  # updates with a skipped (non-finite) optimiser step
    nonfinite_streak: int = 0  # ... of them in a row
    offline: int = 0  # 1: an offline run, whose steps count updates
    pending: int = 0  # updates due at this step not run yet (a Ctrl-C stopped their burst)
    world: int = 1  # ranks of a data-parallel run, each collecting as many agent steps

    @property
    def env_steps(self) -> int:
        """The step of the run's schedules and logs: env steps (of all ranks), or updates when
        offline."""
        if self.offline:
            return self.updates
        return self.agent_steps * self.action_repeat * self.world

    @property
    def started(self) -> bool:
        return bool(self.updates if self.offline else self.agent_steps)

    def on_step(self, transition: dict[str, Any], worker: int) -> None:
        """Driver callback: one agent step, possibly the last of an episode."""
        self.agent_steps += 1
        self.episodes += bool(transition["is_last"])


@dataclass
class _Schedules:
    """When to train, log, evaluate, write a video and checkpoint (all on env steps, except
    ``train`` in ratio mode, which runs on agent steps)."""

    train: Every | Ratio
    log: Every
    eval: Every
    video: Every
    checkpoint: Every

    @classmethod
    def create(cls, config: Config, batch: int) -> _Schedules:
        """``batch``: the rank's share of ``replay.batch_size`` (all of it in one process)."""
        run = config.run
        if run.train_ratio is not None:  # each rank replays its share for its own steps
            length = config.replay.length
            # seed_updates: the first call (after the seed episodes) returns them and sets the
            # ratio's origin; otherwise _build sets the origin at step 0 (seed steps earn updates)
            train: Every | Ratio = Ratio(
                updates_per_step(run.train_ratio, batch, length), initial=run.seed_updates or 0
            )
        else:
            train = Every(run.train_every)
        return cls(
            train, Every(run.log_every), Every(run.eval_every), Every(run.video_every),
            Every(run.checkpoint_every),
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name).state_dict() for f in dataclasses.fields(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).load_state_dict(state[f.name])


@dataclass
class _Parts:
    """What the loop works with; built by :func:`_build`."""

    config: Config
    spec: EnvSpec
    agent: Agent
    replay: Replay
    driver: Driver
    eval_driver: Driver
    eval_episodes: list[dict[str, Any]]  # filled by eval_driver's episode callback
    counters: _Counters
    schedules: _Schedules
    stats: Stats
    world: World  # this process's rank and the number of ranks (one, without torchrun)
    batch_size: int  # the rank's share of replay.batch_size
    held_out: dict[str, Any] | None = None  # run.held_out's windows, scored at every log row
    carry: Any = None  # the collection policy's carry (e.g. the agent's latent states)


def _build(
    config: Config, run_dir: Path, resume: bool, older: bool = False, world: World = SINGLE
) -> _Parts:
    """Agent, replay, drivers and schedules; restored from the checkpoint when resuming."""
    seed = ranks.rank_seed(config.seed, world)  # each rank collects and samples its own
    batch = distributed.split_batch(config.replay.batch_size, world.size)
    spec = env_spec(make_envs(config, 1, seed)[0])
    agent = make_agent(config, spec)  # fails before the run directory is touched
    storage, buffer = config.replay.storage, ranks.buffer_folder(config, run_dir, world)
    Replay.check_fits(spec.obs_space, spec.action_dim, config.replay.capacity, storage, buffer)
    shapes = {key: space.shape for key, space in spec.obs_space.spaces.items()}
    held_out = load_held_out(config, shapes)  # so does a bad run.held_out
    state = ranks.start(config, run_dir, resume, older, world)
    torch.manual_seed(seed)
    eval_seed = config.seed + EVAL_SEED
    offline = config.run.offline
    if config.replay.directory is not None and not offline:
        raise ValueError(
            "replay.directory is the folder an offline run trains from; add --run.offline true, "
            "or drop it (a run that collects writes its episodes into <logdir>/replay)"
        )
    replay_dir = _offline_source(config) if offline else ranks.replay_folder(run_dir, world)
    parts = _Parts(
        config=config,
        spec=spec,
        agent=agent,
        replay=Replay(
            config.replay.capacity, seed=seed, directory=replay_dir, storage=storage, buffer=buffer
        ),
        driver=Driver(
            make_envs(config, config.env.num_envs, seed, parallel=True),
            seed=seed,
            name=config.env.name,
            nonfinite=config.env.nonfinite,
        ),  # fmt: skip
        eval_driver=Driver(
            make_envs(config, 1, eval_seed),
            seed=eval_seed,
            name=config.env.name,
            nonfinite=config.env.nonfinite,
        ),  # fmt: skip
        eval_episodes=[],
        counters=_Counters(
            action_repeat=config.env.action_repeat, offline=int(offline), world=world.size
        ),
        schedules=_Schedules.create(config, batch),
        stats=Stats(),
        world=world,
        batch_size=batch,
        held_out=held_out,
    )
    if state is not None:
        path, saved = state
        saved = ranks.own_state(saved, world, path)
        restore_run_state(path, saved, parts)
        discard_after(
            run_dir if world.main else None, parts.counters.env_steps,
            saved["replay_episode_ids"], None if offline else replay_dir,
        )  # fmt: skip
        if world.main:
            config_lib.save(config, run_dir / CONFIG_FILE)  # resumable keys may have changed
    else:
        if world.size > 1:  # one set of weights: rank 0's; each rank its own generator
            agent.load_state_dict(distributed.broadcast_object(agent.state_dict()))
            agent.generator.manual_seed(seed)
        if storage == "disk":  # the buffer's blocks now: no full disk in the middle of a run
            parts.replay.reserve(spec.obs_space, spec.action_dim)
        if offline:
            _load_offline(parts, spec, replay_dir)
        elif isinstance(parts.schedules.train, Ratio) and config.run.seed_updates is None:
            parts.schedules.train(0)  # the ratio counts from step 0: seed steps earn updates
    parts.driver.on_step(parts.replay.add)
    parts.driver.on_step(parts.counters.on_step)
    parts.driver.on_episode(parts.stats.episode)
    parts.eval_driver.on_episode(lambda stats, worker: parts.eval_episodes.append(stats))
    return parts


def _load_offline(parts: _Parts, spec: EnvSpec, replay_dir: Path) -> None:
    spaces = spec.obs_space.spaces
    if not parts.replay.load(shapes={key: space.shape for key, space in spaces.items()}):
        raise ValueError(
            f"run.offline: no episode files to train from in {str(replay_dir)!r}; point "
            "replay.directory at a run's replay/ folder or at episodes in the documented "
            "layout (docs/conventions.md)"
        )


def _train(parts: _Parts, interrupted: Callable[[], bool]) -> bool:
    """Runs the updates that the schedule says are due (none while replay holds fewer than
    ``length`` steps per environment: those updates are skipped, not deferred).

    A Ctrl-C lands between two updates of a single-process run: the updates still due stay in
    ``counters.pending`` (saved in the checkpoint, run first by the resumed run) and this returns
    False. Data-parallel ranks stop only between bursts, all at the same step.
    """
    config, counters, train = parts.config, parts.counters, parts.schedules.train
    if isinstance(train, Ratio):
        due = train(counters.agent_steps)
    else:
        due = config.run.train_steps if train(counters.env_steps) else 0
    batch_size, length = parts.batch_size, config.replay.length
    learns = parts.agent.capabilities.learns  # the random baseline does not
    if due and learns and len(parts.replay) >= length * config.env.num_envs:
        counters.pending += due
    alone = parts.world.size == 1
    while counters.pending:
        if alone and interrupted():
            return False
        metrics = parts.agent.train_step(parts.replay.sample(batch_size, length))
        parts.stats.add("train/", metrics)
        counters.updates += 1
        counters.pending -= 1
        check_finite(metrics, counters, config.run.max_nonfinite)
    return True


# ------------------------------------------------------------------------------ checkpoints


def _checkpoint(run_dir: Path, parts: _Parts, exact: bool) -> None:
    """Writes ``checkpoint-<env_step>.pt`` and ``checkpoint.pt`` atomically, keeping the last
    ``run.keep_checkpoints`` (see :func:`rssm.run.resume.run_state` for the contents). In a
    data-parallel run every rank calls it at the same step; rank 0 writes the ranks' states
    into one checkpoint (:mod:`rssm.run.ranks`)."""
    state = run_state(parts, exact)
    if parts.world.size > 1:
        gathered = distributed.gather_objects(ranks.own_part(state))
        if gathered is None:
            return  # not rank 0
        state["ranks"] = gathered[1:]
    write_checkpoint(
        run_dir,
        parts.counters.env_steps,
        {**state, "config": config_lib.to_dict(parts.config)},
        keep=parts.config.run.keep_checkpoints,
    )


# ------------------------------------------------------------------------------------- loop


def train(config: Config, *, resume: bool = False, older: bool = False) -> Path:
    """Trains ``config.agent`` on ``config.env``; returns the run directory (``config.logdir``).

    Seed episodes with the uniform random policy, then alternate the updates that the collected
    steps earned with one collection step (all environments, ``explore`` policy); evaluate, log,
    write videos and checkpoints on their schedules (see the module docstring for step counting
    and exact resume). A checkpoint is also written when the run ends or is interrupted (Ctrl-C).

    Args:
        config: the run's config (not modified); saved to ``logdir/config.yaml``.
        resume: continue from the newest complete checkpoint in ``logdir`` (``checkpoint.pt``,
            or ``checkpoint-<env_step>.pt`` when it is missing or corrupt) with the episodes
            saved in ``logdir/replay``; a fresh run when there is no checkpoint. Metrics rows and
            checkpoints of later steps, and episode files that the checkpoint does not list,
            are deleted (the resumed run writes them again).
        older: when the newest checkpoint cannot be read (damaged after it was written),
            resume from the newest older one that loads instead of stopping with an error.

    Under ``torchrun`` (more than one rank) the ranks train one agent data-parallel: see
    :mod:`rssm.distributed` and :mod:`rssm.run.ranks`; the run directory and every log and
    checkpoint are rank 0's.

    Raises:
        ValueError: an unknown agent, an agent that does not fit the env (PlaNet with discrete
            actions), a logdir that already holds a run without ``resume``, or a resumed config
            that differs from the checkpoint's (naming the keys).
        CheckpointError: resuming a run none of whose checkpoints can be read.
        DistributedError: under torchrun, another rank stopped.
    """
    # The group's timeout outlasts any evaluation rank 0 runs while the other ranks wait.
    session = distributed.session(config.run.device, timeout_minutes=DISTRIBUTED_TIMEOUT)
    with torch_threads(config.run), session as (world, device):
        if world.size > 1:  # rank 0's run directory (a default one is named by the time)
            logdir = distributed.broadcast_object(config.logdir)
            config = dataclasses.replace(
                config, logdir=logdir, run=dataclasses.replace(config.run, device=device)
            )
        return _run(config, resume, older, world)


def _run(config: Config, resume: bool, older: bool = False, world: World = SINGLE) -> Path:
    run_dir = Path(config.logdir)
    parts = _build(config, run_dir, resume, older, world)
    try:
        return _run_parts(parts, run_dir)
    finally:
        parts.replay.close()  # a disk buffer's files go; the episode files stay


def _run_parts(parts: _Parts, run_dir: Path) -> Path:
    config, world = parts.config, parts.world
    counters, driver = parts.counters, parts.driver
    if counters.started and counters.env_steps >= config.run.steps:
        driver.close()
        parts.eval_driver.close()
        return run_dir  # a resumed run that is already done: nothing to add
    purge = counters.env_steps + 1 if counters.started else None  # a resumed run
    logger = (
        Logger(run_dir, tensorboard=config.run.tensorboard, purge_step=purge)
        if world.main
        else None
    )
    bar = tqdm(total=config.run.steps, initial=counters.env_steps, unit="step",
               disable=None if world.main else True)  # fmt: skip
    if world.size > 1 and world.main:
        print(ranks.describe(config, world, parts.batch_size), flush=True)
    sitting = (
        sittings.record(
            run_dir,
            counters,
            steps=config.run.steps,
            max_minutes=config.run.max_minutes,
            device=str(config.run.device),
        )
        if world.main
        else contextlib.nullcontext()
    )
    try:
        with sitting, deferred_interrupt() as interrupted:
            if not counters.started and config.run.seed_episodes and not config.run.offline:
                spec, seed = parts.spec, ranks.rank_seed(config.seed, world)
                parts.stats.random = True
                driver(RandomPolicy(spec.action_dim, spec.discrete, seed),
                       episodes=config.run.seed_episodes)  # fmt: skip
                parts.stats.random = False
                driver.reset()  # with several envs, the agent starts every env at an episode start
            loop = _offline_loop if config.run.offline else _loop
            report = QuietReporter(parts) if logger is None else Reporter(parts, logger, bar)
            loop(parts, run_dir, report, interrupted)
    except KeyboardInterrupt as stop:  # at a safe point unless Ctrl-C came twice
        if isinstance(stop, SafeStop) or world.size == 1:  # all ranks stop at a safe point
            _checkpoint(run_dir, parts, exact=isinstance(stop, SafeStop) and _exact(parts))
        raise
    except EnvError as error:  # the env broke: keep what the run has, then one clear error
        raise _env_failed(run_dir, parts, error) from error
    finally:
        bar.close()
        if logger is not None:
            logger.close()
        driver.close()
        parts.eval_driver.close()
    _checkpoint(run_dir, parts, exact=_exact(parts))
    return run_dir


def _env_failed(run_dir: Path, parts: _Parts, error: EnvError) -> EnvError:
    """Checkpoints the run, writes the traceback to ``error.log`` in the run directory and
    returns the error to raise: the env's message, where the traceback is, and how to go on.
    In a data-parallel run the other ranks are not at a checkpoint: the last one stays."""
    if parts.world.size > 1:
        kept = "keeps its last checkpoint (the other ranks stop too; --resume goes on from it)"
        error = EnvError(f"rank {parts.world.rank}: {error}")
    elif parts.counters.agent_steps:  # the failed step is half done: not an exact point
        _checkpoint(run_dir, parts, exact=False)
        kept = f"checkpointed at env step {parts.counters.env_steps} (--resume goes on)"
    else:
        kept = "nothing to checkpoint yet"
    log = run_dir / "error.log"
    text = "".join(traceback.format_exception(error))
    with contextlib.suppress(OSError):
        log.write_text(text)
    return EnvError(f"{error}; the run {kept}; traceback in {log}")


def _loop(parts: _Parts, run_dir: Path, report: Reporter, interrupted: Callable[[], bool]) -> None:
    """Train, report, checkpoint and collect one step until ``run.steps``.

    A checkpoint is written when its schedule fires, inside episodes too: the checkpoint holds
    the policy's carry and each env's unfinished episode (its recorded actions), from which a
    resume rebuilds the envs. A resumed run enters at the step of its checkpoint, where no
    schedule fires a second time.
    """
    config, counters, driver = parts.config, parts.counters, parts.driver
    explore = functools.partial(parts.agent.policy, mode="explore")
    budget = Budget(config.run.max_minutes)
    while True:
        stop, late = distributed.reduce_flags(interrupted(), budget.spent())  # as all ranks do
        if stop or not _train(parts, interrupted):
            raise SafeStop
        done = counters.env_steps >= config.run.steps
        spent = not done and late
        report(final=done or spent, evaluate=spent)
        if spent:
            warnings.warn(
                f"stopped at env step {counters.env_steps} of {config.run.steps}: the wall-clock "
                f"budget run.max_minutes={config.run.max_minutes} is spent; --resume goes on",
                stacklevel=2,
            )
        if done or spent:
            return
        if parts.schedules.checkpoint(counters.env_steps):
            _checkpoint(run_dir, parts, _exact(parts))
        parts.carry = driver(explore, steps=1, carry=parts.carry)


def _offline_loop(
    parts: _Parts, run_dir: Path, report: Reporter, interrupted: Callable[[], bool]
) -> None:
    """An offline run: one update per step on the loaded episodes, then report and checkpoint
    on the schedules (whose steps count updates), until ``run.steps`` updates."""
    config, counters = parts.config, parts.counters
    batch_size, length = parts.batch_size, config.replay.length
    budget = Budget(config.run.max_minutes)
    while True:
        stop, late = distributed.reduce_flags(interrupted(), budget.spent())  # as all ranks do
        if stop:
            raise SafeStop
        done = counters.updates >= config.run.steps
        spent = not done and late
        report(final=done or spent, evaluate=spent)
        if done or spent:
            return
        if counters.updates and parts.schedules.checkpoint(counters.env_steps):
            _checkpoint(run_dir, parts, _exact(parts))
        metrics = parts.agent.train_step(parts.replay.sample(batch_size, length))
        parts.stats.add("train/", metrics)
        counters.updates += 1
        check_finite(metrics, counters, config.run.max_nonfinite)


def _offline_source(config: Config) -> Path:
    """The folder an offline run trains from, checked to exist."""
    if config.replay.directory is None:
        raise ValueError(
            "run.offline needs replay.directory: the folder of episode files to train from "
            "(e.g. another run's replay/)"
        )
    source = Path(config.replay.directory)
    if not source.is_dir():
        raise ValueError(
            f"replay.directory {str(source)!r} is not a folder; point it at a run's replay/ "
            "folder or at episode files in the documented layout"
        )
    return source


def _exact(parts: _Parts) -> bool:
    """Whether a checkpoint now is an exact resume point: the collection driver can rebuild its
    unfinished episodes (seeded resets) and the replay writes episode files (its unsaved steps
    travel in the checkpoint)."""
    return parts.driver.restorable and parts.replay.directory is not None
