"""The typed config of a training run (``rssm train``): the environment, replay and schedule
sections and :class:`Config`, which also holds the agents' sections. Presets (``rssm/presets``) and
dotted overrides fill it through :mod:`rssm.config`; :mod:`rssm.run.train` runs it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from rssm.agents.configs import DreamerConfig, PlanetConfig, WorldModelAgentConfig
from rssm.models.configs import WorldModelConfig
from rssm.models.presets import world_model_config

__all__ = [
    "Config",
    "EnvConfig",
    "ReplayConfig",
    "RunConfig",
    "check_train_schedule",
    "resolve_threads",
    "torch_threads",
]


@dataclass
class EnvConfig:
    """Arguments of :func:`rssm.envs.make_env` and how many environments collect in lockstep.

    Attributes:
        name: ``"suite:id"``, e.g. ``builtin:pointmass``, ``dmc:walker-walk``.
        action_repeat: each agent action is applied this many times (rewards summed).
        image_size: height and width of the ``image`` observation.
        time_limit: episode length in raw env steps (before action repeat); None: suite default.
        num_envs: N environments stepped together by the collection driver.
        options: further suite options passed to ``make_env`` (e.g. ``obs: both``).
        nonfinite: a NaN or infinite observation or reward: ``error`` stops the run with a
            message naming the env, key and step; ``warn`` warns once per key and uses 0.
        parallel: ``none`` steps the ``num_envs`` training envs one after the other in this
            process; ``process`` runs each in a worker process, stepped at the same time.
        worker_timeout: seconds a worker may take to answer one call before it is reported as
            hung and stopped (``parallel: process``).
    """

    name: str = "builtin:pointmass"
    action_repeat: int = 1
    image_size: int = 64
    time_limit: int | None = None
    num_envs: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    nonfinite: str = "error"
    parallel: str = "none"
    worker_timeout: float = 60.0

    def __post_init__(self) -> None:
        _check_positive(self, "action_repeat", "image_size", "num_envs")
        if isinstance(self.worker_timeout, bool) or not self.worker_timeout > 0:
            raise ValueError(
                f"config key 'env.worker_timeout' must be a positive number of seconds, got "
                f"{self.worker_timeout!r}"
            )
        if self.parallel not in ("none", "process"):
            raise ValueError(
                f"config key 'env.parallel' must be 'none' or 'process', got {self.parallel!r}"
            )
        if self.nonfinite not in ("error", "warn"):
            raise ValueError(
                f"config key 'env.nonfinite' must be 'error' or 'warn', got {self.nonfinite!r}"
            )


@dataclass
class ReplayConfig:
    """Replay capacity (agent steps) and the batch shape ``[batch_size, length]`` of an update.

    Attributes:
        capacity: steps held (the oldest are evicted beyond it).
        batch_size: sequences per update (B).
        length: steps per sequence (T).
        directory: a folder of episode files to train from with ``run.offline`` (a previous
            run's ``replay/``, or episodes written in the layout of docs/conventions.md); it is
            only read. None: the run's own ``replay/``.
        storage: ``memory`` (arrays in RAM) or ``disk`` (memory-mapped files in ``buffer``, for
            a capacity beyond RAM; same sampling and exact resume, the files are deleted when the
            run ends).
        buffer: the folder of the disk buffer; None: ``<logdir>/buffer``.
    """

    capacity: int = 1_000_000
    batch_size: int = 50
    length: int = 50
    directory: str | None = None
    storage: str = "memory"
    buffer: str | None = None

    def __post_init__(self) -> None:
        _check_positive(self, "capacity", "batch_size", "length")
        if self.storage not in ("memory", "disk"):
            raise ValueError(
                f"replay.storage {self.storage!r}: choose memory (RAM) or disk (memory-mapped "
                "files in replay.buffer)"
            )


@dataclass
class RunConfig:
    """Schedules of the loop; every step count is in env steps (agent steps x action repeat).

    Attributes:
        steps: train until this many env steps have been collected (seed episodes included);
            with ``offline``, this many updates.
        offline: train from the episode files in ``replay.directory`` without stepping an
            environment (evaluation, when ``eval_every`` is set, still uses one); every step
            count (``steps``, ``*_every``, the logged ``step``) then counts updates.
        seed_episodes: episodes collected with the uniform random policy before training.
        train_every: every this many env steps, run ``train_steps`` updates (PlaNet: one episode).
        train_steps: updates per ``train_every``.
        train_ratio: replayed rows per collected row (agent step); when set it wins over
            ``train_every``/``train_steps``: each agent step earns
            ``train_ratio / (batch_size * length)`` updates, seed episodes included (all of
            their updates are made at once when training starts), unless ``seed_updates`` is set.
        seed_updates: with ``train_ratio``: make this many updates right after the seed
            episodes and let the ratio count from there, so the seed steps earn nothing more
            (dreamerv3-torch's ``pretrain: 100``; DreamerV3's released loop collects no random
            seed episodes and counts the ratio from its first update). None: the seed steps earn
            their updates at the ratio.
        eval_every: evaluate with the ``eval`` policy on a separate env (0: never).
        eval_episodes: episodes per evaluation.
        log_every: write the averaged metrics every this many env steps (and at the end).
        checkpoint_every: write a checkpoint every this many env steps, inside episodes too
            (each is an exact resume point: unfinished episodes are rebuilt by replaying their
            actions); also at the end of the run and on Ctrl-C.
        keep_checkpoints: how many ``checkpoint-<env_step>.pt`` files are kept (the oldest are
            deleted); ``checkpoint.pt`` is always the newest.
        video_every: log an open-loop prediction video from a replay batch (0: never).
        video_context: observed rows before the open-loop prediction (at most ``length - 1``).
        held_out: a folder of episode files (e.g. held-out random-policy episodes) on which every
            log row scores the world model's open-loop image prediction against copy-last-frame
            (``held_out/open_loop_*``; ``rssm world-model`` sets it); None: no such score.
        held_out_context, held_out_horizon: observed and predicted steps of that score
            (non-overlapping windows of ``context + horizon`` steps inside each episode).
        device: torch device of the agent.
        precision: ``bfloat16`` runs the agent's losses under autocast (opt-in; a GPU setting,
            slower on CPUs without bf16 instructions).
        compile: compile the agent's building blocks with ``torch.compile`` (opt-in; the first
            updates take minutes).
        max_nonfinite: stop the run after this many updates in a row were skipped for a
            non-finite loss or gradient (each skip is counted in ``train/nonfinite`` and warned
            about); the last checkpoint is kept as it was.
        max_minutes: a wall-clock budget for this invocation (a resumed run starts a new one):
            once spent, the run stops at the next step, evaluates the policy there (when
            ``eval_every`` is set) and writes its checkpoint; ``--resume`` goes on from there.
            ``None``: no limit.
        tensorboard: also write TensorBoard events (when installed).
        threads: torch CPU threads of the run (``torch.set_num_threads``); None: 1 for a run
            on the CPU, whose models here are small enough that a second thread gains little
            while it collapses the run whenever another process competes for the cores (OpenMP
            threads wait on each other), and torch's default for a GPU run.
    """

    steps: int = 100_000
    offline: bool = False
    seed_episodes: int = 5
    train_every: int = 1000
    train_steps: int = 100
    train_ratio: float | None = None
    seed_updates: int | None = None
    eval_every: int = 10_000
    eval_episodes: int = 1
    log_every: int = 1000
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 3
    video_every: int = 10_000
    video_context: int = 5
    held_out: str | None = None
    held_out_context: int = 5
    held_out_horizon: int = 10
    device: str = "cpu"
    precision: Literal["float32", "bfloat16"] = "float32"
    compile: bool = False
    max_nonfinite: int = 20
    max_minutes: float | None = None
    tensorboard: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        _check_positive(self, "video_context", "max_nonfinite", "keep_checkpoints")
        _check_positive(self, "held_out_context", "held_out_horizon")
        if self.threads is not None:
            _check_positive(self, "threads")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(
                f"RunConfig.max_minutes must be a positive number of minutes (null: no limit), "
                f"got {self.max_minutes!r}"
            )
        _check_positive(self, "steps")  # a run of 0 env steps would still collect and train
        if self.seed_updates is not None:
            _check_non_negative(self, "seed_updates")
        for name in ("seed_episodes", "train_every", "train_steps", "eval_every"):
            _check_non_negative(self, name)
        for name in ("eval_episodes", "log_every", "checkpoint_every", "video_every"):
            _check_non_negative(self, name)
        if self.train_ratio is not None and not (
            math.isfinite(self.train_ratio) and self.train_ratio >= 0
        ):
            raise ValueError(f"run.train_ratio must be finite and >= 0, got {self.train_ratio}")


@dataclass
class Config:
    """Everything that defines a training run (presets: ``planet``, ``debug``).

    Attributes:
        agent: a key of :data:`rssm.agents.AGENTS`.
        seed: seeds the model, the planner, the environments and replay sampling.
        logdir: the run directory.
        env, replay, run: see their classes.
        world_model: the agent's world model (``world_model=`` of the agent constructor).
        planet: the PlaNet agent's settings (``config=`` of :class:`~rssm.agents.PlanetAgent`).
        dreamer: the Dreamer agent's settings (``config=`` of :class:`~rssm.agents.DreamerAgent`).
        world_model_agent: the optimiser of the world-model-only agent (``agent: world_model``,
            :class:`~rssm.agents.WorldModelAgent`: it acts at random and learns the model).

    The agent receives its section (:meth:`agent_config`: ``planet``, ``dreamer`` or
    ``world_model_agent``); so any behaviour
    runs on any world model: ``--configs dreamer_v3 --agent planet`` plans with CEM on the
    categorical V3 model, ``--configs dreamer_v1 planet --agent dreamer`` learns the actor-critic
    on PlaNet's Gaussian model.
    """

    agent: Literal["dreamer", "planet", "random", "world_model"] = "planet"
    seed: int = 0
    logdir: str = "runs/default"
    env: EnvConfig = field(default_factory=EnvConfig)
    world_model: WorldModelConfig = field(default_factory=lambda: world_model_config("planet"))
    planet: PlanetConfig = field(default_factory=PlanetConfig)
    dreamer: DreamerConfig = field(default_factory=DreamerConfig)
    world_model_agent: WorldModelAgentConfig = field(default_factory=WorldModelAgentConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def agent_config(self) -> Any:
        """The section of ``agent`` (``config=`` of its constructor); None for ``random``."""
        section = {"world_model": "world_model_agent", "random": None}.get(self.agent, self.agent)
        return None if section is None else getattr(self, section)


@contextlib.contextmanager
def torch_threads(run: RunConfig) -> Iterator[int]:
    """Runs the block with the run's torch thread count (:func:`resolve_threads`) and restores
    the caller's setting afterwards; yields the count."""
    import torch  # configs import no torch: the command line's --help stays fast

    previous = torch.get_num_threads()
    count = resolve_threads(run)
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)


def resolve_threads(run: RunConfig) -> int:
    """The torch thread count a run uses: ``run.threads``, else 1 on the CPU and torch's
    current setting on an accelerator."""
    if run.threads is not None:
        return run.threads
    if run.device == "cpu":
        return 1
    import torch

    return torch.get_num_threads()


def check_train_schedule(config: Config, layers: list[tuple[str, dict[str, Any]]]) -> None:
    """Refuses two training schedules given together: ``run.train_ratio`` in force and
    ``run.train_every``/``run.train_steps`` set at or after the layer that set the ratio
    (presets and overrides in order, as :func:`rssm.config.layers` lists them), since the ratio
    would silently win. A ratio given after a preset's every/steps schedule replaces it (a later
    layer states the intent)."""
    if config.run.train_ratio is None:
        return
    ratio_at, ratio_source = -1, "the defaults"
    for i, (source, keys) in enumerate(layers):
        if keys.get("run.train_ratio") is not None:
            ratio_at, ratio_source = i, source
    for i, (source, keys) in enumerate(layers):
        for key in ("run.train_every", "run.train_steps"):
            if i >= ratio_at and key in keys:
                raise ValueError(
                    f"{key} (from {source}) and run.train_ratio={config.run.train_ratio:g} "
                    f"(from {ratio_source}) both set how often to train, and the ratio would "
                    f"win silently: drop {key}, or add --run.train_ratio null to run "
                    "run.train_steps updates every run.train_every env steps"
                )


def _check_positive(section: Any, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"{type(section).__name__}.{name} must be a positive int, got {value!r}"
            )


def _check_non_negative(section: Any, name: str) -> None:
    value = getattr(section, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"{type(section).__name__}.{name} must be an int >= 0 (0 = never), got {value!r}"
        )


@dataclass
class WorldModelRun:
    """Settings of a world-model training run (``rssm train``).

    Attributes:
        env: environment name for :func:`rssm.envs.make_env`.
        env_options: extra keyword arguments of ``make_env`` (e.g. ``image_size``).
        preset: world-model preset (``planet``, ``dreamer_v1``, ``dreamer_v2``, ``dreamer_v3``) or
            ``tiny-gaussian`` / ``tiny-categorical`` (small models that train in minutes on a CPU).
        size: preset size (e.g. ``xs``, ``s`` for ``dreamer_v3``); None for the preset default.
        seed: seeds the model, the data collection and the batch sampling.
        train_episodes, eval_episodes: random-policy episodes for training and for held-out scoring
            (the held-out ones use other env seeds).
        updates: gradient steps.
        batch_size, length: batch shape [B, T] of each update.
        lr, eps, clip: Adam learning rate and epsilon, global gradient-norm clip.
        context, horizon: open-loop scoring observes ``context`` steps and predicts ``horizon``.
        eval_every: score on the held-out data every this many updates (and at the end).
        device: torch device.
    """

    env: str = "builtin:pointmass"
    env_options: dict[str, Any] = field(default_factory=lambda: {"image_size": 16})
    preset: str = "tiny-categorical"
    size: str | None = None
    seed: int = 0
    train_episodes: int = 300
    eval_episodes: int = 10
    updates: int = 2500
    batch_size: int = 16
    length: int = 16
    lr: float = 2e-3
    eps: float = 1e-6
    clip: float = 100.0
    context: int = 5
    horizon: int = 10
    eval_every: int = 500
    device: str = "cpu"
