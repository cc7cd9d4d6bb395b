"""Dreams of a trained run: a real episode's start, then the world model's imagined future.

:func:`dream` observes the first ``context`` steps of an episode with the posterior, then rolls the
prior forward (``RSSM.imagine``, the one rollout path) either under the recorded actions
(``policy="replay"``: truth, imagination and error side by side) or under the agent's own policy
in imagination (``policy="agent"``). :func:`load_run` and :func:`run_episodes` are shared with
:mod:`rssm.run.report`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from rssm.behavior.planner import shift_plan
from rssm.data import Driver, record_episodes
from rssm.data.episodes import CorruptEpisodeError, list_episodes, read_episode, read_layout
from rssm.envs import EnvSpec
from rssm.models.encoder import denormalize_image
from rssm.models.scoring import copy_last, step_errors
from rssm.run.builders import make_envs
from rssm.run.runs import LoadedRun, load_run
from rssm.run.video import label_rows, open_loop_frames, upscale, upscale_factor, write_video
from rssm.types import RSSMState

__all__ = [
    "LoadedRun",
    "collect_episodes",
    "dream",
    "forked_rng",
    "imagination_policy",
    "load_run",
    "run_episodes",
    "world_model",
]

DreamPolicy = Literal["replay", "agent"]
REPLAY_DIR = "replay"
# Seed offset of the env that collects an episode when the run saved none: neither the training
# env's seeds (config.seed + i) nor the evaluation env's (config.seed + 10_000).
_COLLECT_SEED = 20_000


def world_model(run: LoadedRun) -> Any:
    """The agent's world model (``agent.model``), or a ValueError for agents without one."""
    if not run.agent.capabilities.world_model:
        raise ValueError(
            f"agent {run.config.agent!r} has no world model to imagine with; use a run of a "
            "model-based agent (e.g. --configs planet)"
        )
    return run.agent.model


def replay_folder(run_dir: str | Path, config: Any = None) -> Path:
    """Where a run's training episodes are: ``run_dir/replay``, or for an offline run (``config``
    given, ``run.offline``) the ``replay.directory`` it trained from."""
    if config is not None and config.run.offline and config.replay.directory is not None:
        return Path(config.replay.directory)
    return Path(run_dir) / REPLAY_DIR


def saved_episodes(run_dir: str | Path, config: Any = None) -> list[Path]:
    """Episode files of the run's replay directory (:func:`replay_folder`), oldest first."""
    files, _ = list_episodes(replay_folder(run_dir, config))
    return [file.path for file in files]


def read_episode_file(path: Path, spec: EnvSpec | None = None) -> dict[str, np.ndarray]:
    """One saved episode as ``{key: [L, ...]}`` arrays, checked against the run's ``spec``.

    Raises:
        CorruptEpisodeError: a damaged file (a ``ValueError``; its message names the file).
        ValueError: an episode of another layout than ``spec``'s observations and actions.
    """
    try:
        layout, _ = read_layout(path)
        data = read_episode(path, layout)
    except CorruptEpisodeError as error:
        raise CorruptEpisodeError(
            f"{error}; the file is damaged: move it out of the replay directory"
        ) from None
    if spec is not None:
        _check_layout(path, data, spec)
    return data


def _check_layout(path: Path, data: dict[str, np.ndarray], spec: EnvSpec) -> None:
    expected = {key: tuple(space.shape) for key, space in spec.obs_space.spaces.items()}
    expected["action"] = (spec.action_dim,)
    for key, shape in expected.items():
        found = f"shape {data[key].shape[1:]}" if key in data else "no such key"
        if key not in data or data[key].shape[1:] != shape:
            raise ValueError(
                f"episode file {path} does not fit this run: {key!r} has {found} in the file "
                f"but {shape} in the run's env; the replay directory holds episodes of another "
                "env or run: move them out of it"
            )


def collect_episodes(run: LoadedRun, count: int, seed: int | None) -> list[dict[str, np.ndarray]]:
    """``count`` episodes of the agent's ``eval`` policy in a fresh env, as ``{key: [L, ...]}``.
    The env is seeded ``config.seed + 20_000 + seed`` (None: + 0), so its starts are never the
    training env's nor the evaluation env's: episodes the model was not trained on."""
    seed = run.config.seed + _COLLECT_SEED + (0 if seed is None else seed)
    driver = Driver(make_envs(run.config, 1, seed), seed=seed)
    try:
        return record_episodes(driver, functools.partial(run.agent.policy, mode="eval"), count)
    finally:
        driver.close()


EpisodeSource = Literal["replay", "collected", "directory"]


def run_episodes(
    run_dir: str | Path,
    run: LoadedRun,
    count: int | None,
    seed: int | None,
    source: str | os.PathLike = "replay",
) -> tuple[list[dict[str, np.ndarray]], EpisodeSource]:
    """Episodes to score a run's model on, oldest first, and where they came from.

    ``source="replay"``: the newest ``count`` (None: all) saved episodes of the run (what the
    model was trained on; an offline run's ``replay.directory``); when the run saved none,
    ``count or 1`` collected ones. ``"eval"``: ``count or 1`` new episodes of the agent's
    ``eval`` policy (:func:`collect_episodes`: held out from training). A directory: its newest
    ``count`` episode files, e.g. another run's ``replay/`` (another agent's trajectories of the
    same task); they must have the run's observation and action layout.

    Raises:
        ValueError: an unknown source, a directory without episode files, an episode of another
            layout (naming the file), or only damaged files.
    """
    if str(source) == "eval":
        return collect_episodes(run, count or 1, seed), "collected"
    label = "replay" if str(source) == "replay" else "directory"
    directory = replay_folder(run_dir, run.config) if label == "replay" else Path(source)
    if label == "directory" and not directory.is_dir():
        raise ValueError(
            f"episode source {str(source)!r} is neither 'replay', 'eval' nor a directory; "
            "pass a directory of episode files such as another run's replay/"
        )
    paths = [file.path for file in list_episodes(directory)[0]]
    if not paths and label == "replay":
        return collect_episodes(run, count or 1, seed), "collected"
    if not paths:
        raise ValueError(
            f"{directory} holds no episode files (*.npz as rssm train writes to replay/); "
            "pass a run's replay/ directory"
        )
    paths = paths if count is None else paths[-count:]
    episodes = []
    for path in paths:
        try:  # as in Replay.load, one damaged episode is no reason to stop
            episodes.append(read_episode_file(path, run.spec))
        except CorruptEpisodeError as error:
            warnings.warn(f"skipping corrupt episode: {error}", RuntimeWarning, stacklevel=2)
    if not episodes:
        raise ValueError(
            f"every episode file in {directory} is damaged"
            + (
                "; move them out of it to score the model on freshly collected episodes"
                if label == "replay"
                else ""
            )
        )
    return episodes, label


# ------------------------------------------------------------------------------ dreaming


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"dream: {name} must be an int >= {low}, got {value!r}")


@contextlib.contextmanager
def forked_rng(device: torch.device, seed: int | None) -> Iterator[None]:
    """Forks torch's generators (the caller's state is restored after) and seeds them if asked."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def imagination_policy(
    agent: Any, generator: torch.Generator | None
) -> Callable[[RSSMState], Tensor]:
    """The agent's policy on imagined states: ``state [N] -> action [N, A]``.

    Agents whose ``capabilities.imagination`` is ``"actor"`` use ``imagine_action(state,
    generator=...)``; ``"planner"`` agents (PlaNet, ``planning_objective``) plan from every
    imagined state as their ``eval`` policy does from a
    posterior: CEM with the agent's planner settings, the first action of the final plan mean,
    warm-started from the previous plan when ``planet.warm_start`` is set.

    Raises:
        TypeError: the agent can do neither.
    """
    imagination = agent.capabilities.imagination
    if imagination == "actor":
        return functools.partial(agent.imagine_action, generator=generator)
    if imagination != "planner":
        raise TypeError(
            f"{type(agent).__name__} has neither an actor nor a planner (capabilities."
            "imagination is 'none'), so it cannot act in imagination; use policy='replay'"
        )
    settings = agent.config
    previous: list[Tensor] = []

    def plan_first_action(state: RSSMState) -> Tensor:
        N = state.batch_shape[0]
        zeros = state.deter.new_zeros(N, settings.horizon, agent.action_dim)
        start = shift_plan(previous[-1]) if settings.warm_start and previous else zeros
        plan = agent.plan(state, start, generator)
        previous[:] = [plan]
        return plan[:, 0]

    return plan_first_action


def _decode(model: Any, feat: Tensor) -> dict[str, Tensor]:
    """Decoder modes of ``feat`` [B, T, F] per key (images uint8 HWC) plus ``reward`` [B, T]."""
    out = {}
    for key, dist in model.decoder(feat).items():
        mode = dist.mode()
        if key in model.decoder.cnn_shapes:
            mode = denormalize_image(mode, model.encoder.bit_depth)
        out[key] = mode
    out["reward"] = model.reward(feat).mode()
    return out


def _imagine_with_agent(
    model: Any,
    agent: Any,
    batch: dict[str, Tensor],
    context: int,
    steps: int,
    sample: bool,
    generator: torch.Generator | None,
) -> tuple[dict[str, Tensor], Tensor]:
    """Observe ``context`` rows of ``batch`` [1, T], imagine ``steps`` under the agent's policy.

    Returns:
        Decoded predictions per key [1, steps, ...] and the imagined actions [1, steps, A].
    """
    action = batch["action"].to(torch.get_default_dtype())[:, :context]
    is_first = batch["is_first"].bool()[:, :context]
    prev = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)
    prev = prev.masked_fill(is_first.unsqueeze(-1), 0.0)
    embed = model.encoder({key: value[:, :context] for key, value in batch.items()})
    posterior, _ = model.rssm.observe(None, embed, prev, is_first)
    start = posterior.at((slice(None), -1))
    policy = imagination_policy(agent, generator)
    states, actions = model.rssm.imagine(start, policy, steps, sample=sample)
    return _decode(model, states.at((slice(None), slice(1, None))).feat()), actions


def _side_by_side(panels: list[np.ndarray]) -> np.ndarray:
    """Frames [T, H_i, W_i, 3] of several keys next to each other (shorter ones padded below)."""
    height = max(p.shape[1] for p in panels)
    padded = [np.pad(p, ((0, 0), (0, height - p.shape[1]), (0, 0), (0, 0))) for p in panels]
    return np.concatenate(padded, 2)


def _rgb(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames, 3, -1) if frames.shape[-1] == 1 else frames


def _check_length(index: int, length: int, context: int, steps: int, policy: str) -> None:
    if policy == "agent":
        if length < context:
            raise ValueError(
                f"dream: episode {index} has {length} steps, fewer than context={context}; use "
                f"context <= {length}"
            )
        return
    if length < context + steps:
        most = length - context
        fix = f"use steps <= {most}" if most >= 1 else f"use context <= {length - 1}"
        raise ValueError(
            f"dream: episode {index} has {length} steps, too short for context + steps = "
            f"{context} + {steps}; {fix} (the most steps with context {context} is "
            f"{max(most, 0)}), or policy='agent', which needs only the context steps"
        )


def _pick_episode(
    run_dir: Path, run: LoadedRun, episode: int, seed: int | None
) -> tuple[dict[str, np.ndarray], int, str]:
    paths = saved_episodes(run_dir, run.config)
    count = len(paths) if paths else 1
    if isinstance(episode, bool) or not isinstance(episode, int) or not -count <= episode < count:
        folder = replay_folder(run_dir, run.config)
        where = (
            f"the run saved {count} episode{'s' if count != 1 else ''} in {folder}"
            if paths
            else "the run saved no episodes, so one is collected with the agent's eval policy"
        )
        raise ValueError(
            f"dream: episode={episode!r} is out of range; {where}: use 0 .. {count - 1} "
            "(or -1 for the newest)"
        )
    index = episode % count
    if paths:
        return read_episode_file(paths[index], run.spec), index, "replay"
    return collect_episodes(run, 1, seed)[0], index, "collected"


def dream(
    run_dir: str | Path,
    *,
    steps: int = 50,
    out: str | Path = "dream.mp4",
    context: int = 5,
    policy: DreamPolicy = "replay",
    episode: int = 0,
    device: str | None = None,
    seed: int | None = None,
    sample: bool = True,
    fps: int = 10,
    checkpoint: str | os.PathLike | int | None = None,
) -> dict[str, Any]:
    """Writes a video of the world model's imagination after a real episode's first steps.

    The first ``context`` rows of episode ``episode`` of the run's replay directory (oldest
    first; when the run saved none, an episode collected with the agent's ``eval`` policy) are
    filtered with the posterior (``rssm.observe``); from the last posterior the prior is rolled
    ``steps`` steps forward with ``rssm.imagine`` and decoded (decoder modes):

    - ``policy="replay"``: under the episode's recorded actions ``action[context-1 :
      context+steps-1]``; each frame shows rows truth / imagination / absolute error.
    - ``policy="agent"``: under the agent's policy in imagination (see
      :func:`imagination_policy`); one row, the real frames during the context, then the dream.

    Each image key is a column (keys side by side); the context frames are real in every row.

    Args:
        run_dir: a run directory written by ``rssm train`` (``checkpoint.pt``, ``replay/``).
        steps: imagined steps, >= 1.
        out: video path, written atomically: ``.mp4`` (imageio-ffmpeg; ``.gif`` without it) or
            ``.gif``.
        context: observed steps before imagining, >= 1.
        policy: ``"replay"`` or ``"agent"``, see above.
        episode: index into the saved episodes, oldest first (-1: the newest).
        device: torch device; None uses the run's ``run.device``.
        seed: seeds the imagined latents, the planner and a collected episode's env; None leaves
            torch's generators as they are (the caller's generator state is never changed).
        sample: draw imagined latents from the prior (a dream); False rolls out its mode.
        fps: frames per second of the video.
        checkpoint: the checkpoint to load (a step, a file name or a path); None: the newest.

    Returns:
        ``{"out": Path, "policy", "episode": int (>= 0), "source": "replay" | "collected",
        "episode_length", "context", "steps", "frames": context + steps, "step": the run's env
        steps at the checkpoint, "mse": {key: [steps floats]} (replay mode, every decoded key;
        images per pixel in [0, 1] units; {} in agent mode), "copy_last": the same error of
        repeating the last observed row (the baseline), "reward": {"pred": [steps], "true":
        [steps] or None}, "actions": [steps x A]}``.

    Raises:
        FileNotFoundError: no run directory or no checkpoint.
        ValueError: steps or context < 1, an unknown policy, an episode index out of range (with
            the number of episodes), an episode too short (with its length and the most steps
            possible), a run whose agent has no world model, or an unsupported video suffix.
        ImportError: imageio is not installed.
    """
    _check_int("steps", steps, 1)
    _check_int("context", context, 1)
    if policy not in ("replay", "agent"):
        raise ValueError(f"dream: policy={policy!r}; use 'replay' or 'agent'")
    out = Path(out)
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise ValueError(f"dream: out={str(out)!r} must end in .mp4 or .gif")
    run = load_run(run_dir, device, checkpoint=checkpoint)
    model = world_model(run)
    if not model.decoder.cnn_keys:
        raise ValueError(
            "dream: the world model decodes no image keys (decoder.cnn_keys is empty), so there "
            "is nothing to show"
        )
    _require_imageio()
    data, index, source = _pick_episode(Path(run_dir), run, episode, seed)
    length = len(data["is_first"])
    _check_length(index, length, context, steps, policy)
    rows = context + steps if policy == "replay" else context
    batch = model.preprocess({key: value[None, :rows] for key, value in data.items()})
    pred, true, actions = _rollout(run, batch, context, steps, policy, seed, sample)
    path = write_video(out, _frames(model, batch, pred, true, context), fps=fps)
    return {
        "out": path,
        "policy": policy,
        "episode": index,
        "source": source,
        "episode_length": length,
        "context": context,
        "steps": steps,
        "frames": context + steps,
        "step": run.step,
        "mse": {} if true is None else _errors(model, pred, true),
        # the same error of repeating the last observed row: a model worse than this has lost
        # what it was tracking, however small its MSE looks
        "copy_last": {} if true is None else _errors(model, copy_last(batch, context, true), true),
        "reward": {
            "pred": pred["reward"][0].float().tolist(),
            "true": None if true is None else true["reward"][0].float().tolist(),
        },
        "actions": actions[0].float().tolist(),
    }


def _require_imageio() -> None:
    try:
        import imageio  # noqa: F401
    except ImportError:
        raise ImportError(
            'writing videos needs imageio: pip install "rssm[video]" (imageio, imageio-ffmpeg)'
        ) from None


@torch.no_grad()
def _rollout(
    run: LoadedRun,
    batch: dict[str, Tensor],
    context: int,
    steps: int,
    policy: DreamPolicy,
    seed: int | None,
    sample: bool,
) -> tuple[dict[str, Tensor], dict[str, Tensor] | None, Tensor]:
    """``(pred, true or None, actions [1, steps, A])`` of a dream from ``batch`` [1, T]."""
    model = run.agent.model
    param = next(model.parameters())
    generator = run.agent.generator
    if seed is not None:
        generator = torch.Generator(device=param.device)
        generator.manual_seed(seed)
    model.eval()
    with forked_rng(param.device, seed):
        if policy == "replay":
            result = model.open_loop(batch, context, sample=sample)
            actions = batch["action"][:, context - 1 : context + steps - 1]
            return result.pred, result.true, actions
        pred, actions = _imagine_with_agent(
            model, run.agent, batch, context, steps, sample, generator
        )
        return pred, None, actions


def _errors(model: Any, pred: dict[str, Tensor], true: dict[str, Tensor]) -> dict[str, list]:
    """Per-step MSE [steps] of each decoded key of a [1, steps] prediction (images in [0, 1])."""
    keys = model.decoder.cnn_keys + model.decoder.mlp_keys
    errors = step_errors({k: pred[k] for k in keys}, true, model.decoder.cnn_shapes)
    return {key: value[0].tolist() for key, value in errors.items()}


def _frames(
    model: Any,
    batch: dict[str, Tensor],
    pred: dict[str, Tensor],
    true: dict[str, Tensor] | None,
    context: int,
) -> np.ndarray:
    """Video frames uint8 [context + steps, height, width, 3], one column per image key."""
    panels = []
    for key in model.decoder.cnn_keys:
        seen = batch[key][:, :context].cpu().numpy()  # [1, context, H, W, C]
        dreamt = pred[key].cpu().numpy()
        if true is None:  # imagination only: one row, upscaled like every video
            frames = _rgb(np.concatenate([seen, dreamt], 1)[0])
            frames = upscale(frames, upscale_factor(*frames.shape[1:3]))
            panels.append(label_rows(frames, ("model",)))
        else:
            panels.append(open_loop_frames(seen, true[key].cpu().numpy(), dreamt, examples=1))
    return _side_by_side(panels)
