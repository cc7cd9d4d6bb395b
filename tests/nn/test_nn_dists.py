import math

import pytest
import torch
import torch.distributions as td

from rssm.nn.dists import (
    MSE,
    Bernoulli,
    Normal,
    OneHotCategorical,
    SymlogMSE,
    TwoHot,
    kl_divergence,
)
from rssm.nn.functional import symexp_bins, symlog, twohot_encode


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_normal_kl_closed_form_golden():
    # KL(N(1, 2^2) || N(0, 1)) = log(1/2) + (4 + 1) / 2 - 1/2 = 2 - log 2 per dim.
    p = Normal(torch.ones(3), torch.full((3,), 2.0))
    q = Normal(torch.zeros(3), torch.ones(3))
    torch.testing.assert_close(p.kl(q), torch.tensor(3 * (2.0 - math.log(2.0))))
    torch.testing.assert_close(kl_divergence(p, p), torch.tensor(0.0))


def test_normal_matches_torch_distributions():
    g = _gen()
    m1, m2 = torch.randn(4, 5, 6, generator=g), torch.randn(4, 5, 6, generator=g)
    s1, s2 = torch.rand(4, 5, 6, generator=g) + 0.1, torch.rand(4, 5, 6, generator=g) + 0.1
    p, q = Normal(m1, s1, event_dims=1), Normal(m2, s2, event_dims=1)
    tp = td.Independent(td.Normal(m1, s1), 1)
    tq = td.Independent(td.Normal(m2, s2), 1)
    x = torch.randn(4, 5, 6, generator=g)
    assert p.batch_shape == (4, 5)
    torch.testing.assert_close(p.kl(q), td.kl_divergence(tp, tq))
    torch.testing.assert_close(p.log_prob(x), tp.log_prob(x))
    torch.testing.assert_close(p.loss(x), -tp.log_prob(x))
    torch.testing.assert_close(p.entropy(), tp.entropy())
    # event_dims=2 sums over two trailing dims.
    p2 = Normal(m1, s1, event_dims=2)
    expected = td.kl_divergence(tp, tq).sum(-1)
    torch.testing.assert_close(p2.kl(Normal(m2, s2, event_dims=2)), expected)


def test_normal_sample_is_reparameterised_and_float_std():
    mean = torch.zeros(2000, 3, requires_grad=True)
    dist = Normal(mean, 0.5)
    sample = dist.sample()
    assert abs(sample.std().item() - 0.5) < 0.05
    sample.sum().backward()
    torch.testing.assert_close(mean.grad, torch.ones_like(mean))
    assert torch.equal(dist.mode(), mean)


def test_normal_kl_type_errors():
    p = Normal(torch.zeros(3), torch.ones(3))
    with pytest.raises(TypeError, match="Normal"):
        p.kl(MSE(torch.zeros(3)))
    with pytest.raises(ValueError, match="event_dims"):
        p.kl(Normal(torch.zeros(3), torch.ones(3), event_dims=0))


def test_mse_and_symlog_mse():
    pred = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    target = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    d = MSE(pred)
    torch.testing.assert_close(d.loss(target), torch.tensor([5.0, 5.0]))
    torch.testing.assert_close(d.log_prob(target), -d.loss(target))
    assert torch.equal(d.mode(), pred) and torch.equal(d.sample(), pred)
    with pytest.raises(TypeError, match="KL is not defined for MSE"):
        d.kl(d)
    with pytest.raises(TypeError, match="entropy"):
        d.entropy()
    s = SymlogMSE(pred, event_dims=2)
    torch.testing.assert_close(s.mode(), torch.sign(pred) * torch.expm1(pred.abs()))
    big = torch.tensor([[100.0, -50.0], [0.0, 3.0]])
    torch.testing.assert_close(s.loss(big), ((pred - symlog(big)) ** 2).sum())
    torch.testing.assert_close(SymlogMSE(symlog(big)).loss(big), torch.zeros(2))


def test_bernoulli_against_torch_and_golden():
    g = _gen(1)
    logits, other = torch.randn(3, 4, generator=g) * 3, torch.randn(3, 4, generator=g)
    x = torch.randint(0, 2, (3, 4), generator=g).float()
    p, q = Bernoulli(logits, event_dims=1), Bernoulli(other, event_dims=1)
    tp = td.Independent(td.Bernoulli(logits=logits), 1)
    tq = td.Independent(td.Bernoulli(logits=other), 1)
    torch.testing.assert_close(p.log_prob(x), tp.log_prob(x))
    torch.testing.assert_close(p.loss(x), -tp.log_prob(x))
    torch.testing.assert_close(p.entropy(), tp.entropy())
    torch.testing.assert_close(p.kl(q), td.kl_divergence(tp, tq))
    assert torch.equal(p.mode(), (logits > 0).float())
    # Golden: logit 0 -> p = 0.5, entropy log 2, loss log 2.
    half = Bernoulli(torch.zeros(()))
    torch.testing.assert_close(half.entropy(), torch.tensor(math.log(2.0)))
    torch.testing.assert_close(half.loss(torch.tensor(1.0)), torch.tensor(math.log(2.0)))
    s = Bernoulli(torch.full((5000,), 2.0)).sample()
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert abs(s.mean().item() - torch.sigmoid(torch.tensor(2.0)).item()) < 0.03


def test_categorical_kl_and_entropy_by_hand():
    p_probs = torch.tensor([0.5, 0.25, 0.25])
    q_probs = torch.tensor([0.25, 0.25, 0.5])
    p, q = OneHotCategorical(p_probs.log()), OneHotCategorical(q_probs.log())
    # KL = 0.5 log 2 + 0.25 log 1 + 0.25 log 0.5 = 0.25 log 2.
    torch.testing.assert_close(p.kl(q), torch.tensor(0.25 * math.log(2.0)))
    torch.testing.assert_close(p.entropy(), torch.tensor(1.5 * math.log(2.0)))
    torch.testing.assert_close(p.log_prob(torch.tensor([0.0, 1.0, 0.0])), torch.tensor(0.25).log())


def test_categorical_groups_match_torch():
    g = _gen(2)
    la, lb = torch.randn(6, 32, 8, generator=g), torch.randn(6, 32, 8, generator=g)
    p, q = OneHotCategorical(la, event_dims=1), OneHotCategorical(lb, event_dims=1)
    tp = td.Independent(td.OneHotCategorical(logits=la), 1)
    tq = td.Independent(td.OneHotCategorical(logits=lb), 1)
    x = tp.sample()
    assert p.batch_shape == (6,)
    torch.testing.assert_close(p.kl(q), td.kl_divergence(tp, tq))
    torch.testing.assert_close(p.log_prob(x), tp.log_prob(x))
    torch.testing.assert_close(p.entropy(), tp.entropy())
    torch.testing.assert_close(kl_divergence(p, q.detach()), p.kl(q))


def test_unimix_floor_and_logits():
    logits = torch.tensor([[50.0, -50.0, -50.0, -50.0]])
    d = OneHotCategorical(logits, unimix=0.01)
    assert d.probs.min().item() == pytest.approx(0.01 / 4, rel=1e-5)
    torch.testing.assert_close(d.probs.sum(-1), torch.ones(1))
    torch.testing.assert_close(d.logits, d.probs.log())
    assert torch.isfinite(d.kl(OneHotCategorical(-logits, unimix=0.01))).all()
    with pytest.raises(ValueError, match="unimix"):
        OneHotCategorical(logits, unimix=1.0)


def test_categorical_sample_frequencies_and_one_hot():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    d = OneHotCategorical(probs.log().expand(20000, 4))
    s = d.sample()
    assert torch.equal(s.sum(-1), torch.ones(20000))
    assert set(s.unique().tolist()) == {0.0, 1.0}
    freq = s.mean(0)
    assert freq[1].item() == 0.0
    torch.testing.assert_close(freq, probs, atol=0.02, rtol=0)
    assert torch.equal(d.mode()[0], torch.tensor([0.0, 0.0, 1.0, 0.0]))


@pytest.mark.parametrize("method", ["sample", "mode"])
def test_straight_through_gradients_reach_logits(method):
    g = _gen(3)
    logits = torch.randn(5, 4, 3, generator=g, requires_grad=True)
    weights = torch.randn(5, 4, 3, generator=g)
    d = OneHotCategorical(logits, unimix=0.1, event_dims=1)
    (getattr(d, method)() * weights).sum().backward()
    grad_st = logits.grad.clone()
    logits.grad = None
    probs = OneHotCategorical(logits, unimix=0.1, event_dims=1).probs
    (probs * weights).sum().backward()
    assert grad_st.abs().sum() > 0
    torch.testing.assert_close(grad_st, logits.grad)


def test_twohot_loss_minimised_at_target():
    bins = symexp_bins(255)
    target = torch.tensor([0.0, 3.7, -120.0, 1e4])
    # At softmax(logits) == twohot(symlog(target)) the cross-entropy (convex in the logits) has
    # zero gradient, so this is its global minimum, and the decoded mean is the target.
    best = twohot_encode(symlog(target), bins).clamp_min(1e-30).log().requires_grad_()
    best_loss = TwoHot(best, bins).loss(target)
    best_loss.sum().backward()
    assert best.grad.abs().max() < 1e-6
    torch.testing.assert_close(TwoHot(best.detach(), bins).mean, target, rtol=1e-4, atol=1e-5)
    for seed in range(3):
        noise = torch.randn(4, 255, generator=_gen(seed))
        other = TwoHot(best.detach() + noise, bins).loss(target)
        assert (other >= best_loss.detach() - 1e-6).all()
        assert other.sum() > best_loss.sum() + 1e-3
    # A few gradient steps from uniform logits move the mean towards the target.
    logits = torch.zeros(4, 255, requires_grad=True)
    for _ in range(20):
        (grad,) = torch.autograd.grad(TwoHot(logits, bins).loss(target).sum(), logits)
        logits = (logits - 10.0 * grad).detach().requires_grad_()
    err = (symlog(TwoHot(logits, bins).mean) - symlog(target)).abs()
    assert (err < 0.5).all(), err


def test_twohot_mean_is_the_same_with_or_without_log_probabilities():
    """A head read only for its mean takes a softmax; one whose loss came first reuses its
    log-probabilities: both give the same mean and gradient (up to float rounding)."""
    logits = (
        3.0 * torch.randn(4, 7, 255, generator=torch.Generator().manual_seed(0))
    ).requires_grad_()
    target = torch.linspace(-50.0, 50.0, 28).reshape(4, 7)
    means, grads = [], []
    for loss_first in (False, True):
        dist = TwoHot(logits)
        if loss_first:
            dist.loss(target)
        assert ("log_probs" in dist.__dict__) is loss_first
        means.append(dist.mean)
        grads.append(torch.autograd.grad(dist.mean.sum(), logits)[0])
    torch.testing.assert_close(means[0], means[1], rtol=1e-5, atol=1e-5)
    scale = float(grads[0].abs().max())  # symexp makes the largest gradients large
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5 * scale)
    assert grads[0].abs().max() > 1e-2


def test_twohot_defaults_and_golden():
    d = TwoHot(torch.zeros(2, 3, 255))
    assert d.batch_shape == (2, 3)
    torch.testing.assert_close(d.mode(), torch.zeros(2, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(d.loss(torch.zeros(2, 3)), torch.full((2, 3), math.log(255.0)))
    torch.testing.assert_close(d.log_prob(torch.zeros(2, 3)), -d.loss(torch.zeros(2, 3)))
    logits = torch.full((255,), -1e9)
    logits[200] = 0.0
    peak = TwoHot(logits)
    torch.testing.assert_close(peak.mean, torch.expm1(symexp_bins(255)[200]))
    ident = TwoHot(torch.zeros(2, 5), torch.linspace(-1.0, 1.0, 5), transform="identity")
    torch.testing.assert_close(ident.loss(torch.tensor([0.5, 0.0])), torch.full((2,), math.log(5)))
    with pytest.raises(ValueError, match="bins"):
        TwoHot(torch.zeros(3, 10), symexp_bins(255))
