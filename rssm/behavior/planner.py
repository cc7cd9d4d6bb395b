"""Cross-entropy-method (CEM) planning over action sequences, pure over tensors.

The planner knows only an *objective* that scores candidate action sequences; the agent builds it
(e.g. the sum of rewards predicted by imagining each sequence in the world model). Nothing here
touches a model, an optimiser or global state besides the random generator it is given.

References:
    Rubinstein 1997, "Optimization of computer simulation models with rare events" (CEM);
    Hafner et al. 2019, "Learning Latent Dynamics for Planning from Pixels", §3 "Planning
    algorithm" (1000 candidates, top 100 refit, 10 iterations, horizon 12).

Deviations from PlaNet, all opt-in and off by default: ``min_std`` floors the refitted std and
``momentum`` blends the refit with the previous distribution (as in iCEM, Pinneri et al. 2020).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["CEMResult", "cem", "shift_plan"]

Objective = Callable[[Tensor], Tensor]
_NEG_INF = float("-inf")


class CEMResult(NamedTuple):
    """What :func:`cem` returns: the final plan distribution and its best score.

    Shapes follow the ``mean`` given to the planner: ``[H, A]`` / ``[]`` for one environment,
    ``[N, H, A]`` / ``[N]`` for N environments.

    Attributes:
        mean: final plan mean [N, H, A] or [H, A]; execute ``mean[..., 0, :]``.
        std: final plan std [N, H, A] or [H, A] (floored at ``min_std``).
        score: best finite objective value among the last iteration's candidates [N] or [];
            ``-inf`` where every candidate of the last iteration was non-finite.
    """

    mean: Tensor
    std: Tensor
    score: Tensor


def cem(
    objective: Objective,
    mean: Tensor,
    std: Tensor | float,
    *,
    iterations: int,
    candidates: int,
    elites: int,
    low: float | Tensor = -1.0,
    high: float | Tensor = 1.0,
    generator: torch.Generator | None = None,
    min_std: float = 0.0,
    momentum: float = 0.0,
) -> CEMResult:
    """Plan with the cross-entropy method: the final plan distribution and its best score.

    Each iteration samples ``candidates`` (K) sequences from ``Normal(mean, std)``, clips them to
    ``[low, high]``, scores them with ``objective``, keeps the top ``elites`` (E) and refits
    ``mean`` and ``std`` (population std) on them. Non-finite scores (NaN, +inf, -inf) rank last
    and never enter a refit; an environment whose candidates all score non-finite keeps its
    previous ``mean`` and ``std`` for that iteration. Runs without autograd; the inputs are never
    mutated, and no tensor value is read back to the host (no device sync besides ``objective``).
    Warm start: pass ``shift_plan(previous.mean)`` as ``mean`` at the next environment step.

    Args:
        objective: maps candidate actions [N, K, H, A] to scores [N, K] (higher is better). With a
            single-environment ``mean`` [H, A] it still receives [1, K, H, A] and returns [1, K].
            Every action it sees lies inside ``[low, high]``.
        mean: initial plan mean, [H, A] for one environment or [N, H, A] for N environments
            planned at once (floating point; sets dtype and device of the plan).
        std: initial plan std, a float or a tensor broadcastable to ``mean`` (e.g. [H, A]).
        iterations: number of refits, >= 1 (PlaNet: 10).
        candidates: K, sequences sampled per iteration and environment, >= 1 (PlaNet: 1000).
        elites: E, top sequences refit on, 1 <= E <= K (PlaNet: 100).
        low: lower action bound, a float or a tensor [] or [A].
        high: upper action bound, a float or a tensor [] or [A].
        generator: random generator on ``mean``'s device; ``None`` uses torch's global one.
        min_std: floor applied to every refitted std, >= 0.
        momentum: fraction of the previous mean/std kept at each refit, in [0, 1); 0 is plain
            CEM.

    Returns:
        ``CEMResult(mean, std, score)``: the final mean (execute ``mean[..., 0, :]``; inside
        ``[low, high]`` unless no finite score was ever seen, then the initial ``mean``) and std,
        [H, A] or [N, H, A] like ``mean``, and the best finite score of the last iteration, []
        or [N] (``-inf`` if none).

    Raises:
        TypeError: ``objective`` not callable or ``mean`` not a floating-point tensor.
        ValueError: a bad size, shape or bound, naming the argument; also raised when
            ``objective`` returns a tensor of the wrong shape.
    """
    _check_sizes(iterations, candidates, elites, min_std, momentum)
    if not callable(objective):
        raise TypeError(f"objective must be callable [N, K, H, A] -> [N, K], got {objective!r}")
    single = _check_mean(mean)
    mu = mean.unsqueeze(0) if single else mean
    sigma = _as_std(std, mean).expand(mean.shape)
    sigma = sigma.unsqueeze(0) if single else sigma
    lo, hi = _as_bounds(low, high, mean)
    score = mu.new_full(mu.shape[:1], _NEG_INF)
    with torch.no_grad():
        for _ in range(iterations):
            mu, sigma, score = _iterate(
                objective, mu, sigma, lo, hi, candidates, elites, generator, min_std, momentum
            )
    if single:
        return CEMResult(mu.squeeze(0), sigma.squeeze(0), score.squeeze(0))
    return CEMResult(mu, sigma, score)


def _iterate(
    objective: Objective,
    mean: Tensor,
    std: Tensor,
    low: float | Tensor,
    high: float | Tensor,
    candidates: int,
    elites: int,
    generator: torch.Generator | None,
    min_std: float,
    momentum: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """One CEM step on a batched plan: mean/std [N, H, A] -> new mean, std [N, H, A], score [N]."""
    n, h, a = mean.shape
    # One randn call for all N*K*H*A noise; then in place on that fresh tensor (no extra copies).
    actions = torch.randn(
        (n, candidates, h, a), generator=generator, dtype=mean.dtype, device=mean.device
    )
    actions.mul_(std.unsqueeze(1)).add_(mean.unsqueeze(1)).clamp_(low, high)
    scores = objective(actions)
    if not isinstance(scores, Tensor) or scores.shape != (n, candidates):
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(
            f"objective must return scores of shape [N, K] = {(n, candidates)} for actions "
            f"{tuple(actions.shape)}, got {got}"
        )
    if not scores.is_floating_point():
        scores = scores.to(mean.dtype)
    # topk ranks NaN above everything, so every non-finite score becomes -inf *before* topk.
    scores = scores.nan_to_num(nan=_NEG_INF, posinf=_NEG_INF, neginf=_NEG_INF)
    top, index = scores.topk(elites, dim=1, sorted=False)  # [N, E]
    elite = actions.gather(1, index[:, :, None, None].expand(-1, -1, h, a))  # [N, E, H, A]
    # Weight 0 for elites that are -inf (fewer than E finite candidates); no host sync needed.
    valid = top > _NEG_INF  # [N, E]
    weight = valid.to(mean.dtype)[:, :, None, None]
    count = weight.sum(1).clamp_(min=1.0)  # [N, 1, 1]
    new_mean = (elite * weight).sum(1) / count
    new_std = ((elite - new_mean.unsqueeze(1)).square_().mul_(weight).sum(1) / count).sqrt_()
    if momentum:
        new_mean = torch.lerp(new_mean, mean, momentum)
        new_std = torch.lerp(new_std, std, momentum)
    # Rounding (or momentum from an out-of-bounds start) must not leave the mean outside bounds.
    new_mean.clamp_(low, high)
    if min_std > 0:
        new_std.clamp_(min=min_std)
    found = valid.any(1)  # [N]
    keep = found[:, None, None]
    return (
        torch.where(keep, new_mean, mean),
        torch.where(keep, new_std, std),
        top.amax(1),
    )


def shift_plan(mean: Tensor, fill: float = 0.0) -> Tensor:
    """Warm start for receding-horizon planning: drop the executed first step, pad the end.

    After executing ``plan[..., 0, :]``, call the planner at the next environment step with
    ``mean=shift_plan(plan)`` (and a fresh std) so it starts from the remaining plan instead of
    from scratch. Where an environment episode restarts, use a fresh mean for that row instead.

    Args:
        mean: a plan [..., H, A] (e.g. [H, A] or [N, H, A]); not modified.
        fill: value of the appended last step (0 is the centre of [-1, 1] actions).

    Returns:
        A new tensor [..., H, A]: ``out[..., :-1, :] == mean[..., 1:, :]``, ``out[..., -1, :] ==
        fill``.
    """
    if not isinstance(mean, Tensor) or mean.ndim < 2 or mean.shape[-2] < 1:
        got = tuple(mean.shape) if isinstance(mean, Tensor) else type(mean).__name__
        raise ValueError(f"shift_plan: mean must be a tensor [..., H, A] with H >= 1, got {got}")
    out = torch.empty_like(mean)
    out[..., :-1, :] = mean[..., 1:, :]
    out[..., -1, :] = fill
    return out


def _check_sizes(
    iterations: int, candidates: int, elites: int, min_std: float, momentum: float
) -> None:
    """Raise ValueError naming the first bad size or option."""
    for name, value in (
        ("iterations", iterations),
        ("candidates", candidates),
        ("elites", elites),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"cem: {name} must be a positive int, got {value!r}")
    if elites > candidates:
        raise ValueError(
            f"cem: elites ({elites}) must be <= candidates ({candidates}); lower elites or "
            "raise candidates"
        )
    if not min_std >= 0:
        raise ValueError(f"cem: min_std must be >= 0, got {min_std!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"cem: momentum must be in [0, 1), got {momentum!r}")


def _check_mean(mean: Tensor) -> bool:
    """Validate ``mean`` and return True for a single-environment plan [H, A]."""
    if not isinstance(mean, Tensor) or not mean.is_floating_point():
        got = mean.dtype if isinstance(mean, Tensor) else type(mean).__name__
        raise TypeError(f"cem: mean must be a floating-point tensor, got {got}")
    if mean.ndim not in (2, 3) or 0 in mean.shape:
        raise ValueError(
            f"cem: mean must be [H, A] or [N, H, A] with non-zero sizes, got {tuple(mean.shape)}"
        )
    return mean.ndim == 2


def _as_std(std: Tensor | float, mean: Tensor) -> Tensor:
    """Return ``std`` as a tensor of mean's dtype/device, checked broadcastable to ``mean``."""
    if not isinstance(std, Tensor):
        if not std >= 0:
            raise ValueError(f"cem: std must be >= 0, got {std!r}")
        return mean.new_tensor(std)
    try:
        shape = torch.broadcast_shapes(std.shape, mean.shape)
    except RuntimeError:
        shape = None
    if shape != mean.shape:
        raise ValueError(
            f"cem: std of shape {tuple(std.shape)} does not broadcast to mean "
            f"{tuple(mean.shape)}; pass std of mean's shape or [H, A]"
        )
    return std.to(dtype=mean.dtype, device=mean.device)


def _as_bounds(
    low: float | Tensor, high: float | Tensor, mean: Tensor
) -> tuple[float | Tensor, float | Tensor]:
    """Return (low, high) as two floats, or two tensors [] / [A] on mean's dtype and device."""
    if not isinstance(low, Tensor) and not isinstance(high, Tensor):
        if not float(low) <= float(high):
            raise ValueError(f"cem: low ({low}) must be <= high ({high})")
        return float(low), float(high)
    bounds = []
    for name, value in (("low", low), ("high", high)):
        bound = torch.as_tensor(value, dtype=mean.dtype, device=mean.device)
        if bound.shape not in ((), (mean.shape[-1],)):
            raise ValueError(
                f"cem: {name} must be a float or a tensor [] or [A={mean.shape[-1]}], got "
                f"shape {tuple(bound.shape)}"
            )
        bounds.append(bound)
    return bounds[0], bounds[1]
