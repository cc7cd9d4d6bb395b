"""Tests of the CEM planner: optimum, bounds, non-finite ranking, purity, seeding, batching."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from rssm.behavior import CEMResult, cem, shift_plan

H, A = 4, 2
SIZES = dict(iterations=12, candidates=400, elites=40)


def quadratic(target: Tensor):
    """Objective -||a - target||^2 over [N, K, H, A]; target [H, A] or [N, 1, H, A]."""

    def objective(actions: Tensor) -> Tensor:
        return -(actions - target).square().sum((-2, -1))

    return objective


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_finds_optimum_of_quadratic_inside_bounds():
    target = torch.rand(H, A, generator=seeded(1)) * 1.4 - 0.7
    seen = []

    def objective(actions: Tensor) -> Tensor:
        seen.append(actions.shape)
        return quadratic(target)(actions)

    plan = cem(objective, torch.zeros(H, A), 1.0, **SIZES, generator=seeded()).mean
    assert plan.shape == (H, A)
    assert seen[0] == (1, SIZES["candidates"], H, A), seen[0]
    assert len(seen) == SIZES["iterations"]
    torch.testing.assert_close(plan, target, atol=0.03, rtol=0)


def test_info_reports_shrinking_std_and_best_score():
    target = torch.full((H, A), 0.3)
    result = cem(quadratic(target), torch.zeros(H, A), 1.0, **SIZES, generator=seeded())
    assert isinstance(result, CEMResult)
    assert result.std.shape == (H, A) and result.score.shape == ()
    assert result.std.max() < 0.1, result.std
    assert -0.01 < result.score <= 0.0, result.score


def test_optimum_outside_bounds_gives_plan_at_bound_and_candidates_stay_inside():
    low, high = torch.tensor([-1.0, -0.5]), torch.tensor([1.0, 0.2])
    target = torch.tensor([[2.0, -3.0]]).expand(H, A)  # above high in dim 0, below low in dim 1
    extremes = []

    def objective(actions: Tensor) -> Tensor:
        extremes.append((actions.amin((0, 1, 2)), actions.amax((0, 1, 2))))
        return quadratic(target)(actions)

    plan = cem(
        objective, torch.zeros(H, A), 2.0, **SIZES, low=low, high=high, generator=seeded()
    ).mean
    for lo, hi in extremes:
        assert (lo >= low).all() and (hi <= high).all(), (lo, hi)
    assert (plan >= low).all() and (plan <= high).all(), plan
    expected = torch.stack([high[0], low[1]]).expand(H, A)
    torch.testing.assert_close(plan, expected, atol=5e-3, rtol=0)


def test_scalar_bounds_clip_candidates():
    seen_max = []

    def objective(actions: Tensor) -> Tensor:
        seen_max.append(actions.abs().max().item())
        return actions.sum((-2, -1))  # pushes every action to +high

    plan = cem(
        objective, torch.zeros(H, A), 5.0, **SIZES, low=-0.5, high=0.5, generator=seeded()
    ).mean
    assert max(seen_max) <= 0.5
    torch.testing.assert_close(plan, torch.full((H, A), 0.5), atol=1e-3, rtol=0)


def test_steers_away_from_nan_and_inf_region_around_optimum():
    # The true optimum (0.5) lies in a region scored NaN on [0.4, 0.6) and +inf on [0.6, 0.8);
    # the nearest finite actions are just below 0.4, so that is where the plan must go.
    target = torch.full((H, A), 0.5)

    def objective(actions: Tensor) -> Tensor:
        scores = quadratic(target)(actions)
        first = actions[..., 0, 0]
        scores = scores.masked_fill((first >= 0.4) & (first < 0.6), float("nan"))
        return scores.masked_fill((first >= 0.6) & (first < 0.8), float("inf"))

    plan = cem(objective, torch.zeros(H, A), 1.0, **SIZES, generator=seeded()).mean
    assert 0.3 < plan[0, 0] < 0.4, plan[0, 0]
    assert torch.isfinite(objective(plan[None, None])).all()
    torch.testing.assert_close(plan[1:], target[1:], atol=0.03, rtol=0)


def test_non_finite_scores_never_refit():
    # One iteration where only candidate 3 has a finite score, all others NaN, +inf or -inf:
    # the refit must use candidate 3 alone (mean = it, std = 0), whatever topk ties pick.
    captured = []

    def objective(actions: Tensor) -> Tensor:
        captured.append(actions)
        k = actions.shape[1]
        bad = torch.tensor([float("nan"), float("inf"), float("-inf")])
        scores = bad.repeat(k // 3 + 1)[:k].unsqueeze(0)
        scores[0, 3] = -123.0
        return scores

    result = cem(
        objective,
        torch.zeros(H, A),
        1.0,
        iterations=1,
        candidates=30,
        elites=10,
        generator=seeded(),
    )
    torch.testing.assert_close(result.mean, captured[0][0, 3])
    torch.testing.assert_close(result.std, torch.zeros(H, A))
    assert result.score == -123.0


def test_all_nan_objective_returns_initial_mean():
    mean = torch.rand(H, A, generator=seeded(3)) - 0.5
    std = torch.full((H, A), 0.7)

    def objective(actions: Tensor) -> Tensor:
        return torch.full(actions.shape[:2], float("nan"))

    result = cem(objective, mean, std, **SIZES, generator=seeded())
    assert torch.equal(result.mean, mean)
    assert torch.equal(result.std, std)
    assert result.score == float("-inf")


def test_batched_all_non_finite_row_keeps_its_mean_while_others_update():
    mean = torch.zeros(2, H, A)

    def objective(actions: Tensor) -> Tensor:
        scores = actions.sum((-2, -1))
        scores[1] = float("inf")
        return scores

    plan = cem(objective, mean, 1.0, **SIZES, generator=seeded()).mean
    assert torch.equal(plan[1], mean[1])
    assert (plan[0] > 0.9).all(), plan[0]


def test_inputs_are_not_mutated():
    mean = torch.rand(3, H, A, generator=seeded(4)) - 0.5
    std = torch.rand(H, A, generator=seeded(5)) + 0.1
    low, high = torch.full((A,), -0.8), torch.full((A,), 0.9)
    copies = [t.clone() for t in (mean, std, low, high)]
    plan = cem(quadratic(torch.zeros(H, A)), mean, std, **SIZES, low=low, high=high).mean
    for original, copy in zip((mean, std, low, high), copies, strict=True):
        assert torch.equal(original, copy)
    assert plan.data_ptr() != mean.data_ptr()


def test_reproducible_under_seeded_generator():
    objective = quadratic(torch.full((H, A), 0.2))
    kwargs = dict(iterations=2, candidates=50, elites=5)
    first = cem(objective, torch.zeros(H, A), 1.0, **kwargs, generator=seeded(7)).mean
    again = cem(objective, torch.zeros(H, A), 1.0, **kwargs, generator=seeded(7)).mean
    other = cem(objective, torch.zeros(H, A), 1.0, **kwargs, generator=seeded(8)).mean
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_batched_environments_each_converge_to_their_own_optimum():
    targets = torch.tensor([-0.6, 0.0, 0.5])[:, None, None].expand(3, H, A)
    shapes = []

    def objective(actions: Tensor) -> Tensor:
        shapes.append(actions.shape)
        return quadratic(targets.unsqueeze(1))(actions)

    plan = cem(objective, torch.zeros(3, H, A), 1.0, **SIZES, generator=seeded()).mean
    assert shapes[0] == (3, SIZES["candidates"], H, A), shapes[0]
    assert plan.shape == (3, H, A)
    torch.testing.assert_close(plan, targets, atol=0.03, rtol=0)


def test_min_std_and_momentum():
    objective = quadratic(torch.zeros(H, A))
    result = cem(objective, torch.zeros(H, A), 1.0, **SIZES, min_std=0.05, generator=seeded())
    assert (result.std >= 0.05).all(), result.std

    # momentum m keeps a fraction m of the previous distribution: check one refit by hand.
    captured = []

    def recording(actions: Tensor) -> Tensor:
        captured.append(actions)
        return objective(actions)

    mean0, m = torch.full((H, A), 0.4), 0.25
    result = cem(
        recording, mean0, 0.5, iterations=1, candidates=64, elites=8, momentum=m, generator=seeded()
    )
    actions = captured[0][0]
    elite = actions[objective(actions).topk(8).indices]
    expected_mean = m * mean0 + (1 - m) * elite.mean(0)
    expected_std = m * 0.5 + (1 - m) * elite.std(0, unbiased=False)
    torch.testing.assert_close(result.mean, expected_mean)
    torch.testing.assert_close(result.std, expected_std)


def test_keeps_dtype_float64():
    plan = cem(
        quadratic(torch.zeros(H, A, dtype=torch.float64)),
        torch.zeros(H, A, dtype=torch.float64),
        torch.ones(H, A, dtype=torch.float64),
        iterations=2,
        candidates=20,
        elites=4,
        generator=seeded(),
    ).mean
    assert plan.dtype == torch.float64


def test_shift_plan():
    plan = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    before = plan.clone()
    shifted = shift_plan(plan, fill=-1.0)
    assert shifted.shape == plan.shape
    assert torch.equal(shifted[:, :-1], plan[:, 1:])
    assert (shifted[:, -1] == -1.0).all()
    assert torch.equal(plan, before)
    assert torch.equal(shift_plan(torch.ones(1, 2)), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="mean"):
        shift_plan(torch.ones(3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(elites=500), "elites"),
        (dict(iterations=0), "iterations"),
        (dict(candidates=-1), "candidates"),
        (dict(mean=torch.zeros(2, 3, H, A)), "mean"),
        (dict(std=torch.ones(H + 1, A)), "std"),
        (dict(low=torch.zeros(A + 1)), "low"),
        (dict(low=1.0, high=0.0), "low"),
        (dict(momentum=1.0), "momentum"),
        (dict(min_std=-0.1), "min_std"),
        (dict(objective=lambda a: a.sum(-1)), "objective"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, match):
    args = dict(objective=quadratic(torch.zeros(H, A)), mean=torch.zeros(H, A), std=1.0)
    args.update(SIZES)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        cem(**args)


def test_non_tensor_mean_raises_type_error():
    with pytest.raises(TypeError, match="mean"):
        cem(quadratic(torch.zeros(H, A)), [[0.0] * A] * H, 1.0, **SIZES)
