import math
import pickle
from fractions import Fraction

import numpy as np
import pytest
import torch

from rssm.run.when import Every, Once, Ratio, Until, updates_per_step


def random_steps(seed: int, n: int = 5000, max_jump: int = 7) -> list[int]:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.integers(0, max_jump + 1, size=n)).tolist()


# ------------------------------------------------------------------------------------------ Every


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("every", [1, 3, 10, 64])
def test_every_fires_once_per_new_multiple(seed, every):
    steps = random_steps(seed)
    schedule = Every(every)
    fired = [step for step in steps if schedule(step)]
    # Reference: fire when step // every exceeds every earlier value (origin at step 0).
    expected, best = [], 0
    for step in steps:
        if step // every > best:
            expected.append(step)
            best = step // every
    assert fired == expected
    assert len(fired) == len({s // every for s in steps} - {0})  # once per multiple landed in


def test_every_jump_across_several_multiples_fires_once():
    schedule = Every(10)
    assert [schedule(s) for s in [0, 9, 35, 36, 39, 40, 100]] == [
        False,
        False,
        True,
        False,
        False,
        True,
        True,
    ]


def test_every_initial_and_never():
    schedule = Every(100, initial=True)
    assert schedule(0) and not schedule(50) and schedule(100)
    for never in (Every(0), Every(None), Every(0, initial=True)):
        assert not any(never(s) for s in range(0, 1000, 7))


def test_every_state_round_trip_resumes_identically():
    steps = random_steps(seed=11, n=3000, max_jump=5)
    full = Every(37)
    reference = [full(s) for s in steps]
    first = Every(37)
    head = [first(s) for s in steps[:1234]]
    state = pickle.loads(pickle.dumps(first.state_dict()))
    resumed = Every(37)
    resumed.load_state_dict(state)
    assert head + [resumed(s) for s in steps[1234:]] == reference


def test_every_rejects_bad_arguments():
    with pytest.raises(ValueError, match="every"):
        Every(-1)
    with pytest.raises(TypeError, match="every"):
        Every(2.5)
    schedule = Every(5)
    schedule(10)
    with pytest.raises(ValueError, match="backwards"):
        schedule(9)
    with pytest.raises(TypeError, match="step"):
        schedule(3.0)


def test_every_accepts_numpy_and_tensor_integer_steps():
    schedule = Every(4)
    assert schedule(np.int64(4)) and schedule(torch.tensor(8))


# ------------------------------------------------------------------------------------------ Ratio


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ratio", [0.5, 1 / 3, 2.0, 0.0, 1.0, 0.03125, 2.5, Fraction(7, 3)])
def test_ratio_total_is_exact_at_every_call(seed, ratio):
    steps = random_steps(seed, n=4000, max_jump=9)
    schedule = Ratio(ratio)
    exact = Fraction(ratio).limit_denominator(1_000_000)
    total = 0
    for step in steps:
        owed = schedule(step)
        assert owed >= 0
        total += owed
        assert total == math.floor((step - steps[0]) * exact), (step, total)
    if ratio > 0:
        assert abs(total / (steps[-1] - steps[0]) - float(ratio)) < 1 / (steps[-1] - steps[0])


def test_ratio_small_cases():
    half = Ratio(0.5)
    assert [half(s) for s in [0, 1, 2, 3, 4, 10]] == [0, 0, 1, 0, 1, 3]
    third = Ratio(1 / 3)
    assert [third(s) for s in range(0, 10)] == [0, 0, 0, 1, 0, 0, 1, 0, 0, 1]
    two = Ratio(2.0)
    assert [two(s) for s in [5, 6, 6, 9]] == [0, 2, 0, 6]  # origin at the first call's step


def test_ratio_initial_updates_on_first_call():
    schedule = Ratio(0.5, initial=1)
    assert schedule(100) == 1 and schedule(102) == 1


def test_ratio_state_round_trip_resumes_identically():
    steps = random_steps(seed=3, n=3000, max_jump=6)
    full = Ratio(1 / 3)
    reference = [full(s) for s in steps]
    first = Ratio(1 / 3)
    head = [first(s) for s in steps[:1001]]
    state = first.state_dict()
    assert all(isinstance(v, int) for v in state.values()), state  # torch weights_only safe
    resumed = Ratio(1 / 3)
    resumed.load_state_dict(pickle.loads(pickle.dumps(state)))
    assert head + [resumed(s) for s in steps[1001:]] == reference


def test_ratio_resume_with_a_different_ratio_keeps_the_carry():
    old = Ratio(0.5)
    old(0)
    old(3)  # 1.5 earned: 1 returned, 0.5 carried
    new = Ratio(0.25)
    new.load_state_dict(old.state_dict())
    assert new(5) == 1  # 0.5 carried + 2 * 0.25


def test_ratio_rejects_bad_arguments():
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="ratio"):
            Ratio(bad)
    with pytest.raises(TypeError, match="ratio"):
        Ratio("0.5")
    schedule = Ratio(1.0)
    schedule(10)
    with pytest.raises(ValueError, match="backwards"):
        schedule(5)


def test_updates_per_step():
    assert updates_per_step(512, 16, 64) == 0.5
    assert updates_per_step(64, 16, 64) == 1 / 16
    with pytest.raises(ValueError, match="batch_size"):
        updates_per_step(512, 0, 64)
    with pytest.raises(ValueError, match="train_ratio"):
        updates_per_step(-1, 16, 64)


# ------------------------------------------------------------------------------------ Once, Until


def test_once_and_state():
    once = Once()
    assert [once(s) for s in range(4)] == [True, False, False, False]
    resumed = Once()
    resumed.load_state_dict(once.state_dict())
    assert not resumed(10)


def test_until():
    until = Until(100)
    assert until(0) and until(99) and not until(100) and not until(150)
    assert Until(None)(10**12)
    assert not Until(0)(0)
    with pytest.raises(TypeError, match="limit"):
        Until(1.5)
