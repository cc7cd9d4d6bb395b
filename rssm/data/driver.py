"""Driver: steps N gymnasium environments in lockstep and fans transitions out to callbacks."""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import gymnasium
import numpy as np
import torch

Obs = dict[str, np.ndarray]
NonFinite = Literal["error", "warn"]
Policy = Callable[[Any, Obs], tuple[Any, Any]]
StepCallback = Callable[[dict[str, Any], int], None]
EpisodeCallback = Callable[[dict[str, Any], int], None]


class Driver:
    """Steps ``N`` environments in lockstep with one batched policy call per step.

    Each iteration stacks the current observation of every env into ``obs[key]`` of ``[N, ...]``,
    calls ``policy(carry, obs) -> (carry, action [N, A])`` under ``torch.no_grad()``, and hands
    ``{**obs_i, "action": action_i}`` to every ``on_step`` callback as ``fn(transition, i)``: the
    action in a transition is the one chosen after seeing that transition's observation
    (DESIGN.md §3). Then env ``i`` is stepped with its action, except after an observation with
    ``is_last``: that env's next call is ``reset()`` instead (its action is recorded but unused),
    and ``on_episode`` callbacks get ``fn({"return": float, "length": int}, i)`` where ``length``
    counts ``env.step`` calls (transitions minus the reset one).

    Environments return observation dicts (DESIGN.md §3). Missing ``reward``, ``is_first``,
    ``is_last`` and ``is_terminal`` keys are filled from the gymnasium API; ``is_last`` is also set
    when the step reports ``terminated or truncated``. For a ``Discrete`` action space the one-hot
    action row is passed to ``env.step`` as its argmax.

    The driver keeps each env's pending observation between calls, so collection can alternate with
    training; :meth:`reset` forces every env to reset on the next call. Reset ``k`` of env ``i`` is
    seeded with a number derived from ``(seed, i, k)``, so runs repeat under a fixed seed. The
    actions of each unfinished episode are recorded, so a driver restored with
    :meth:`load_state_dict` rebuilds the envs' states without saving any simulator: each env is
    reset with its episode's seed and the recorded actions are replayed; the observation reached
    is checked against a digest of the saved one, and an env that does not repeat itself (not
    deterministic) restarts its episode with a warning naming it. It then continues exactly as
    the original would have.

    Every observation is checked where it enters (an environment checker at the boundary):
    its keys, shapes and dtypes against the observation space the env had when the driver was
    built, the finiteness of floats (reward included), and the env's action space, which must not
    change. A violation is an :class:`EnvError` naming the env, the key, the episode step and
    what was expected; so is an exception raised inside ``env.reset``/``env.step`` (the original
    is its ``__cause__``).

    Args:
        envs: The environments; worker ``i`` in callbacks is ``envs[i]``.
        seed: Driver seed (an int >= 0) or ``None`` for unseeded resets.
        name: What errors call the envs (e.g. ``"dmc:walker-walk"``); default: the gymnasium id
            of ``envs[0]``, else its class name.
        nonfinite: ``"error"``: a NaN or infinite value in an observation or reward is an
            :class:`EnvError`; ``"warn"``: a warning (once per env and key) and the value is
            replaced by 0.

    Attributes:
        steps_per_second: Transitions per second during the last call (all envs together).
        total_steps: Transitions emitted over the driver's life.
        total_episodes: Episodes finished over the driver's life.
    """

    def __init__(
        self,
        envs: Sequence[gymnasium.Env],
        seed: int | None = None,
        *,
        name: str | None = None,
        nonfinite: NonFinite = "error",
    ) -> None:
        if len(envs) == 0:
            raise ValueError("Driver needs at least one environment, got an empty sequence")
        if seed is not None and int(seed) < 0:
            raise ValueError(f"seed must be an int >= 0 or None, got {seed}")
        if nonfinite not in ("error", "warn"):
            raise ValueError(f"nonfinite must be 'error' or 'warn', got {nonfinite!r}")
        self.envs = list(envs)
        self.seed = seed
        self.name = name or _env_name(self.envs[0])
        self.nonfinite = nonfinite
        self._checks = [_ObsCheck(env) for env in self.envs]
        self._warned: set[tuple[int, str]] = set()
        self._step_fns: list[StepCallback] = []
        self._episode_fns: list[EpisodeCallback] = []
        self._obs: list[Obs | None] = [None] * len(self.envs)  # None: reset on the next call
        self._resets = [0] * len(self.envs)
        self._actions: list[list[np.ndarray]] = [[] for _ in self.envs]  # of unfinished episodes
        self._queued: dict[int, Any] = {}  # actions of local envs between send and finish
        self._return = [0.0] * len(self.envs)
        self._length = [0] * len(self.envs)
        self.steps_per_second = 0.0
        self.total_steps = 0
        self.total_episodes = 0

    def on_step(self, fn: StepCallback) -> StepCallback:
        """Register ``fn(transition, worker)``, called for every transition; returns ``fn``."""
        self._step_fns.append(fn)
        return fn

    def on_episode(self, fn: EpisodeCallback) -> EpisodeCallback:
        """Register ``fn({"return", "length"}, worker)``, called per finished episode."""
        self._episode_fns.append(fn)
        return fn

    def reset(self) -> None:
        """Make every env start a new episode on the next call (unfinished ones are dropped)."""
        self._obs = [None] * len(self.envs)
        self._actions = [[] for _ in self.envs]

    @property
    def restorable(self) -> bool:
        """Whether :meth:`load_state_dict` of a :meth:`state_dict` taken now continues exactly:
        resets are seeded (unfinished episodes can be replayed), or no episode is running."""
        return self.seed is not None or self.between_episodes

    @property
    def between_episodes(self) -> bool:
        """True when no env is inside an episode (each just finished one, or never started):
        the next call resets every env."""
        return all(obs is None for obs in self._obs)

    def state_dict(self) -> dict[str, Any]:
        """Reset counts (they seed the next resets), episode sums, totals and, per env, its
        unfinished episode (``episodes[i]``: the actions taken since its reset as a float32
        array and a digest of the observation they led to; None between episodes). No env state
        is saved: see :meth:`load_state_dict`."""
        episodes: list[dict[str, Any] | None] = []
        for i, obs in enumerate(self._obs):
            if obs is None or self.seed is None:
                episodes.append(None)
                continue
            actions = self._actions[i]
            stacked = np.stack(actions) if actions else np.zeros((0, 0), np.float32)
            episodes.append({"actions": stacked.astype(np.float32), "digest": _digest(obs)})
        return {
            "resets": list(self._resets),
            "returns": list(self._return),
            "lengths": list(self._length),
            "total_steps": self.total_steps,
            "total_episodes": self.total_episodes,
            "episodes": episodes,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> list[int]:
        """Restore a :meth:`state_dict`. Each env that was inside an episode is reset with that
        episode's seed and steps through its recorded actions (no callbacks run); when the
        observation reached matches the saved digest, it continues the episode, otherwise (a
        nondeterministic env) a warning names it and it starts a new episode on the next call.
        Envs that were between episodes start their next (seeded) episode on the next call.

        Returns:
            The envs whose episode could not be rebuilt (they restart it).

        Raises:
            ValueError: the state is of a driver with another number of envs.
        """
        if len(state["resets"]) != len(self.envs):
            raise ValueError(
                f"Driver.load_state_dict: the state has {len(state['resets'])} envs, this driver "
                f"{len(self.envs)}; build the driver with as many envs as the saved one"
            )
        self.reset()
        self._resets = [int(n) for n in state["resets"]]
        self.total_steps = int(state["total_steps"])
        self.total_episodes = int(state["total_episodes"])
        returns = [float(x) for x in state["returns"]]
        lengths = [int(n) for n in state["lengths"]]
        diverged = []
        for i, episode in enumerate(state.get("episodes") or [None] * len(self.envs)):
            if episode is not None and not self._replay(i, episode, lengths[i]):
                diverged.append(i)
        self._return, self._length = returns, lengths
        for i in diverged:
            self._return[i], self._length[i] = 0.0, 0
        return diverged

    def _replay(self, i: int, episode: Mapping[str, Any], length: int) -> bool:
        """Rebuilds env ``i``'s unfinished episode from its seed and recorded actions; True
        when it reached the saved observation."""
        actions = np.asarray(episode["actions"], np.float32)
        self._resets[i] -= 1  # _reset seeds with the episode's own reset count
        obs = self._reset(i)
        for action in actions:
            if obs["is_last"]:
                break
            obs = self._env_step(i, action)
        same = (
            len(actions) == length == self._length[i]
            and not obs["is_last"]
            and _digest(obs) == episode["digest"]
        )
        if same:
            self._obs[i], self._actions[i] = obs, list(actions)
        else:
            self._actions[i] = []
            warnings.warn(
                f"env {self.name!r} (worker {i}) did not repeat its unfinished episode: replaying "
                f"its {len(actions)} recorded actions from the episode's seeded reset reached "
                "another observation, so the env is not deterministic; this episode restarts "
                "and the resumed run differs from an uninterrupted one",
                RuntimeWarning,
                3,
            )
        return same

    def close(self) -> None:
        """Close all environments."""
        for env in self.envs:
            env.close()

    def __call__(self, policy: Policy, *, steps: int = 0, episodes: int = 0, carry: Any = None):
        """Run until at least ``steps`` transitions and ``episodes`` finished episodes.

        All envs advance together, so up to ``N - 1`` extra transitions may be emitted.

        Args:
            policy: ``policy(carry, obs) -> (carry, action)`` with ``obs[key]`` of ``[N, ...]``
                and ``action`` a numpy array or torch tensor of ``[N, A]``.
            steps: Transitions to emit in this call (summed over envs).
            episodes: Episodes to finish in this call (summed over envs).
            carry: Policy state passed in and returned (e.g. the RSSM state).

        Returns:
            The policy's carry after the last step.
        """
        if steps < 0 or episodes < 0:
            raise ValueError(f"steps and episodes must be >= 0, got {steps} and {episodes}")
        done_steps = done_episodes = 0
        start = time.perf_counter()
        while done_steps < steps or done_episodes < episodes:
            carry, finished = self._step(policy, carry)
            done_steps += len(self.envs)
            done_episodes += finished
        elapsed = time.perf_counter() - start
        if done_steps:
            self.steps_per_second = done_steps / max(elapsed, 1e-9)
        return carry

    def _step(self, policy: Policy, carry: Any) -> tuple[Any, int]:
        current = [obs if obs is not None else self._reset(i) for i, obs in enumerate(self._obs)]
        keys = current[0].keys()
        for i, obs in enumerate(current):
            if obs.keys() != keys:
                raise ValueError(
                    f"env {i} returned keys {sorted(obs)}, env 0 returned {sorted(keys)}; "
                    "all environments of a driver must share one observation layout"
                )
        batch = {key: np.stack([obs[key] for obs in current]) for key in keys}
        with torch.no_grad():
            carry, action = policy(carry, batch)
        action = self._check_action(action)
        finished = 0
        stepping = []
        for i, obs in enumerate(current):
            transition = {**obs, "action": action[i]}
            for fn in self._step_fns:
                fn(transition, i)
            self._return[i] += float(obs["reward"])
            if obs["is_last"]:
                stats = {"return": self._return[i], "length": self._length[i]}
                for fn in self._episode_fns:
                    fn(stats, i)
                self._obs[i] = None
                self._actions[i] = []
                finished += 1
            else:
                stepping.append(i)
        # Every env gets its action before the driver waits for any (envs in worker processes
        # step at the same time; local envs step one after the other).
        for i in stepping:
            self._send_step(i, action[i])
        for i in stepping:
            self._obs[i] = self._finish_step(i)
            self._actions[i].append(action[i])
        self.total_steps += len(self.envs)
        self.total_episodes += finished
        return carry, finished

    def _check_action(self, action: Any) -> np.ndarray:
        if isinstance(action, torch.Tensor):
            action = action.detach().cpu().numpy()
        action = np.array(action, dtype=np.float32)  # a copy: callbacks may keep rows
        if action.ndim != 2 or action.shape[0] != len(self.envs):
            raise ValueError(
                f"policy returned an action of shape {action.shape}, expected [N, A] with "
                f"N={len(self.envs)} envs; return one row per env (one-hot for discrete actions)"
            )
        space = self.envs[0].action_space
        size = space.n if isinstance(space, gymnasium.spaces.Discrete) else np.prod(space.shape)
        if action.shape[1] != int(size):
            raise ValueError(
                f"action of shape {action.shape[1:]} does not fit the action space {space}: "
                f"step one env with {int(size)} numbers (a policy returns [N, A], one row per env)"
            )
        return action

    def _reset(self, i: int) -> Obs:
        seed = None
        if self.seed is not None:
            sequence = np.random.SeedSequence([int(self.seed), i, self._resets[i]])
            seed = int(sequence.generate_state(1)[0])
        self._resets[i] += 1
        self._return[i], self._length[i] = 0.0, 0
        try:
            obs, _ = self.envs[i].reset(seed=seed)
        except Exception as error:
            raise self._raised(i, "reset", error) from error
        obs = _complete(obs, i, reward=0.0, first=True, terminated=False, truncated=False)
        return self._check(i, obs)

    def _env_step(self, i: int, action: np.ndarray) -> Obs:
        self._send_step(i, action)
        return self._finish_step(i)

    def _send_step(self, i: int, action: np.ndarray) -> None:
        env = self.envs[i]
        if isinstance(env.action_space, gymnasium.spaces.Discrete):
            action = int(action.argmax()) + int(env.action_space.start)
        self._length[i] += 1  # this step's number, also in an error it raises
        if hasattr(env, "step_async"):  # a worker process: it steps while the others do
            try:
                env.step_async(action)
            except Exception as error:
                raise self._raised(i, "step", error) from error
        else:
            self._queued[i] = action

    def _finish_step(self, i: int) -> Obs:
        env = self.envs[i]
        try:
            if hasattr(env, "step_wait"):
                obs, reward, terminated, truncated, _ = env.step_wait()
            else:
                obs, reward, terminated, truncated, _ = env.step(self._queued.pop(i))
        except Exception as error:
            raise self._raised(i, "step", error) from error
        obs = _complete(
            obs, i, reward=reward, first=False, terminated=terminated, truncated=truncated
        )
        return self._check(i, obs)

    def _where(self, i: int) -> str:
        env = f"env {self.name!r}" + (f" (worker {i})" if len(self.envs) > 1 else "")
        return f"{env} at step {self._length[i]} of episode {self._resets[i] - 1}"

    def _raised(self, i: int, call: str, error: Exception) -> EnvError:
        if isinstance(error, EnvError):
            return error
        if type(error).__name__ == "WorkerError":  # already names the env, call and exception
            return EnvError(f"{self._where(i)}: {str(error).split(': ', 1)[-1]}")
        return EnvError(f"{self._where(i)}: env.{call} raised {type(error).__name__}: {error}")

    def _check(self, i: int, obs: Obs) -> Obs:
        """``obs`` checked against env ``i``'s observation space, and the env's action space
        against the one it was built with (see the class docstring)."""
        self._checks[i].action_space(self, i)
        problem = self._checks[i].problem(obs)
        if problem is not None:
            raise EnvError(f"{self._where(i)}: {problem}")
        for key, value in obs.items():
            if value.dtype.kind != "f" or np.isfinite(value).all():
                continue
            text = f"{self._where(i)}: {key!r} holds NaN or inf ({value.reshape(-1)[:4]}...)"
            if self.nonfinite == "error":
                raise EnvError(
                    f"{text}; fix the env, or set env.nonfinite: warn to replace such values by "
                    "0 with a warning"
                )
            if (i, key) not in self._warned:
                self._warned.add((i, key))
                warnings.warn(f"{text}; replaced by 0 (env.nonfinite: warn)", RuntimeWarning, 4)
            obs[key] = np.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0)
        return obs


class EnvError(RuntimeError):
    """An environment broke its contract (an observation outside its space, a changed action
    space, a NaN) or raised; the message names the env, the episode step and the problem."""


def _digest(obs: Obs) -> str:
    """A hash of an observation dict's keys, dtypes, shapes and bytes."""
    digest = hashlib.blake2b(digest_size=16)
    for key in sorted(obs):
        value = np.ascontiguousarray(obs[key])
        digest.update(f"{key}:{value.dtype.str}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _env_name(env: gymnasium.Env) -> str:
    spec = getattr(env.unwrapped, "spec", None)
    return getattr(spec, "id", None) or type(env.unwrapped).__name__


class _ObsCheck:
    """Keys, shapes and dtypes of an env's observations and the identity of its action space,
    as they were when the driver was built."""

    def __init__(self, env: gymnasium.Env) -> None:
        space = env.observation_space
        self.spaces: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        self.keys: set[str] = set()
        if isinstance(space, gymnasium.spaces.Dict):
            self.keys = set(space.spaces)
            self.spaces = {
                key: (tuple(sub.shape), np.dtype(sub.dtype))
                for key, sub in space.spaces.items()
                if isinstance(sub, gymnasium.spaces.Box)
            }
        self.env = env
        self.action = env.unwrapped.action_space
        self.outer = env.action_space

    def problem(self, obs: Obs) -> str | None:
        if self.spaces is None:
            return None
        keys = self.keys
        if set(obs) - set(_FLAGS) != keys - set(_FLAGS):
            return (
                f"observation keys {sorted(obs)} differ from the observation space's "
                f"{sorted(keys | set(_FLAGS))}; an env must return the same keys at every step"
            )
        for key, (shape, dtype) in self.spaces.items():
            value = obs[key]
            if value.shape != shape or value.dtype != dtype:
                return (
                    f"{key!r} is {value.dtype}{list(value.shape)} where the observation space "
                    f"says {dtype}{list(shape)}; return what the space declares (cast or "
                    "reshape in the env or a wrapper)"
                )
        return None

    def action_space(self, driver: Driver, i: int) -> None:
        for now, then in ((self.env.unwrapped.action_space, self.action),
                          (self.env.action_space, self.outer)):  # fmt: skip
            if now is not then and now != then:
                raise EnvError(
                    f"{driver._where(i)}: the action space changed from {then} to {now}; an env "
                    "must keep the action space it was made with (the agent was built for it)"
                )


_FLAGS = ("reward", "is_first", "is_last", "is_terminal")


def _complete(
    obs: Any, i: int, *, reward: float, first: bool, terminated: bool, truncated: bool
) -> Obs:
    """Copy ``obs`` and fill the contract keys that the environment left out."""
    if not isinstance(obs, Mapping):
        raise TypeError(
            f"env {i} returned a {type(obs).__name__} observation; the driver needs a dict of "
            "modalities (e.g. {'state': ...}); wrap the env with rssm.envs"
        )
    out = {key: np.asarray(value) for key, value in obs.items()}
    out.setdefault("reward", np.asarray(reward, np.float32))
    out.setdefault("is_first", np.asarray(first))
    out["is_last"] = np.asarray(bool(out.get("is_last", False)) or terminated or truncated)
    out.setdefault("is_terminal", np.asarray(bool(terminated)))
    return out
