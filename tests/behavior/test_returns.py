"""Tests of the actor-critic building blocks: λ-return, discount weights, normaliser, EMA."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from rssm.behavior.returns import ReturnNormalizer, discount_weights, ema_update, lambda_return


def rand(*shape: int, seed: int = 0) -> Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def n_step_return(reward: Tensor, cont: Tensor, value: Tensor, i: int, n: int, gamma: float):
    """G^n_i = sum_{k=1..n} (prod_{j<k} γ c_{i+j}) r_{i+k} + (prod_{j<=n} γ c_{i+j}) v_{i+n}."""
    total, disc = torch.zeros_like(reward[:, 0]), torch.ones_like(reward[:, 0])
    for k in range(1, n + 1):
        total = total + disc * reward[:, i + k]
        disc = disc * gamma * cont[:, i + k]
    return total + disc * value[:, i + n]


def reference_lambda_return(reward, cont, value, gamma, lam):
    """Dreamer V1 eq. 6 in its explicit (non-recursive) form, one column at a time."""
    horizon = reward.shape[1] - 1
    cols = []
    for i in range(horizon):
        left = horizon - i
        ret = lam ** (left - 1) * n_step_return(reward, cont, value, i, left, gamma)
        for n in range(1, left):
            ret = ret + (1 - lam) * lam ** (n - 1) * n_step_return(reward, cont, value, i, n, gamma)
        cols.append(ret)
    return torch.stack(cols, 1)


def test_lambda_return_golden_h2():
    # R_2 = 4; R_1 = 2 + .9*.5*(.5*4 + .5*4) = 3.8; R_0 = 1 + .9*1*(.5*3 + .5*3.8) = 4.06.
    # Row 2: c_1 = 0 cuts the return after r_1, and reward[:, 0] / value[:, 0] are unused.
    reward = torch.tensor([[0.0, 1.0, 2.0], [5.0, 1.0, 2.0]])
    cont = torch.tensor([[1.0, 1.0, 0.5], [1.0, 0.0, 1.0]])
    value = torch.tensor([[0.0, 3.0, 4.0], [7.0, 3.0, 4.0]])
    ret = lambda_return(reward, cont, value, discount=0.9, lam=0.5)
    expected = torch.tensor([[4.06, 3.8], [1.0, 5.6]])
    assert ret.shape == (2, 2), ret.shape
    torch.testing.assert_close(ret, expected)


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.95, 1.0])
def test_lambda_return_matches_explicit_eq6(lam: float):
    n, h = 5, 6
    reward, value = rand(n, h + 1, seed=1) * 4 - 2, rand(n, h + 1, seed=2) * 10
    cont = (rand(n, h + 1, seed=3) > 0.2).double() * rand(n, h + 1, seed=4)
    ret = lambda_return(reward, cont, value, discount=0.97, lam=lam)
    torch.testing.assert_close(ret, reference_lambda_return(reward, cont, value, 0.97, lam))


def test_lambda_one_is_discounted_monte_carlo_plus_bootstrap():
    n, h, gamma = 3, 4, 0.9
    reward, value = rand(n, h + 1, seed=5), rand(n, h + 1, seed=6)
    cont = torch.ones(n, h + 1, dtype=torch.float64)
    ret = lambda_return(reward, cont, value, discount=gamma, lam=1.0)
    for i in range(h):
        mc = sum(gamma ** (k - i - 1) * reward[:, k] for k in range(i + 1, h + 1))
        torch.testing.assert_close(ret[:, i], mc + gamma ** (h - i) * value[:, h])


def test_lambda_zero_is_one_step_td():
    n, h, gamma = 3, 4, 0.9
    reward, value, cont = rand(n, h + 1, seed=7), rand(n, h + 1, seed=8), rand(n, h + 1, seed=9)
    ret = lambda_return(reward, cont, value, discount=gamma, lam=0.0)
    torch.testing.assert_close(ret, reward[:, 1:] + gamma * cont[:, 1:] * value[:, 1:])


def test_zero_continuation_cuts_the_return():
    reward = torch.tensor([[0.0, 1.0, 100.0, 100.0]])
    value = torch.full((1, 4), 50.0)
    cont = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    ret = lambda_return(reward, cont, value, discount=0.99, lam=0.95)
    assert ret[0, 0].item() == pytest.approx(1.0), ret  # nothing after the terminal step s_1
    assert ret[0, 1].item() > 100.0, ret  # later columns are unaffected by c_1


def test_lambda_return_gradients_reach_reward_value_and_cont():
    n, h = 2, 3
    reward = rand(n, h + 1, seed=10).requires_grad_()
    cont = rand(n, h + 1, seed=11).requires_grad_()
    value = rand(n, h + 1, seed=12).requires_grad_()

    def fn(r, c, v):
        return lambda_return(r, c, v, discount=0.9, lam=0.7)

    assert torch.autograd.gradcheck(fn, (reward, cont, value))
    fn(reward, cont, value).sum().backward()
    assert reward.grad is not None and value.grad is not None
    assert reward.grad[:, 1:].abs().min() > 0 and value.grad[:, 1:].abs().min() > 0
    # Column 0 belongs to s_0: its reward and value are not part of R_0..R_{H-1}.
    assert reward.grad[:, 0].abs().max() == 0 and value.grad[:, 0].abs().max() == 0


def test_lambda_return_rejects_bad_inputs():
    x = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="cont"):
        lambda_return(x, torch.zeros(2, 3), x, discount=0.9, lam=0.9)
    with pytest.raises(ValueError, match="reward"):
        lambda_return(torch.zeros(2, 4, 1), x, x, discount=0.9, lam=0.9)
    with pytest.raises(ValueError, match="lam"):
        lambda_return(x, x, x, discount=0.9, lam=1.5)
    with pytest.raises(ValueError, match="discount"):
        lambda_return(x, x, x, discount=-0.1, lam=0.5)


def test_discount_weights_golden_and_detached():
    cont = torch.tensor([[0.5, 1.0, 0.8, 0.3], [0.0, 1.0, 1.0, 1.0]], requires_grad=True)
    weights = discount_weights(cont, 0.9)
    # w_0 = c_0; w_i = c_0 * prod_{j=1..i} γ c_j; the last continuation c_H is unused.
    expected = torch.tensor([[0.5, 0.45, 0.324], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(weights, expected)
    assert not weights.requires_grad


def test_normalizer_one_update_mixes_percentiles_into_zero_init():
    returns = torch.arange(101.0).reshape(1, 101)  # P5 = 5 and P95 = 95 exactly
    norm = ReturnNormalizer(decay=0.99)
    norm.update(returns)
    assert norm.low_ema.item() == pytest.approx(0.05)
    assert norm.high_ema.item() == pytest.approx(0.95)
    assert norm.scale().item() == 1.0  # range 0.9 < 1
    norm = ReturnNormalizer(decay=0.5)
    norm.update(returns)
    norm.update(returns)
    assert norm.low_ema.item() == pytest.approx(3.75)
    assert norm.high_ema.item() == pytest.approx(71.25)
    assert norm.offset().item() == pytest.approx(3.75)
    assert norm.scale().item() == pytest.approx(67.5)


def test_normalizer_scale_is_one_for_narrow_and_range_for_wide_returns():
    narrow, wide = ReturnNormalizer(decay=0.0), ReturnNormalizer(decay=0.0)
    narrow.update(torch.linspace(0.0, 0.5, 101))
    wide.update(torch.linspace(-100.0, 100.0, 101))
    assert narrow.scale().item() == 1.0
    assert wide.scale().item() == pytest.approx(180.0)
    adv = torch.tensor([18.0, -36.0], requires_grad=True)
    out = wide(adv)
    torch.testing.assert_close(out, torch.tensor([0.1, -0.2]))
    out.sum().backward()
    assert adv.grad is not None and adv.grad.abs().min() > 0


def test_normalizer_state_dict_round_trip():
    norm = ReturnNormalizer(decay=0.9)
    norm.update(torch.randn(4, 15, generator=torch.Generator().manual_seed(0)) * 30)
    state = norm.state_dict()
    assert set(state) == {"low_ema", "high_ema"}, state.keys()
    fresh = ReturnNormalizer(decay=0.9)
    fresh.load_state_dict(state)
    assert fresh.low_ema.item() == norm.low_ema.item() != 0.0
    assert fresh.scale().item() == norm.scale().item()


def test_normalizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="decay"):
        ReturnNormalizer(decay=1.0)
    with pytest.raises(ValueError, match="low"):
        ReturnNormalizer(low=95.0, high=5.0)
    with pytest.raises(ValueError, match="min_scale"):
        ReturnNormalizer(min_scale=0.0)
    with pytest.raises(ValueError, match="returns"):
        ReturnNormalizer().update(torch.zeros(0))


def test_ema_update_moves_parameters_by_exactly_the_fraction_and_copies_buffers():
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = copy.deepcopy(source)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))
        source[1].running_mean.fill_(2.0)
    before = [p.detach().clone() for p in target.parameters()]
    ema_update(target, source, 0.02)
    for old, new, src in zip(before, target.parameters(), source.parameters(), strict=True):
        torch.testing.assert_close(new - old, 0.02 * (src - old))
        assert not torch.equal(new, old)
    torch.testing.assert_close(target[1].running_mean, torch.full((4,), 2.0))
    ema_update(target, source, 1.0)
    for new, src in zip(target.parameters(), source.parameters(), strict=True):
        torch.testing.assert_close(new, src)


def test_ema_update_rejects_mismatched_modules_and_fraction():
    with pytest.raises(ValueError, match="weight"):
        ema_update(nn.Linear(3, 4), nn.Linear(3, 5), 0.1)
    with pytest.raises(ValueError, match="fraction"):
        ema_update(nn.Linear(3, 4), nn.Linear(3, 4), 1.5)
