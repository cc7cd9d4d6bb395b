import pytest
import torch

from rssm.nn.dists import MSE, Bernoulli, Normal, OneHotCategorical, SymlogMSE, TwoHot
from rssm.nn.heads import Head

CASES = [
    ("normal", (3,), Normal, (3,)),
    ("mse", (2, 3), MSE, (2, 3)),
    ("symlog_mse", (5,), SymlogMSE, (5,)),
    ("binary", (), Bernoulli, ()),
    ("twohot", (), TwoHot, ()),
    ("onehot", (4,), OneHotCategorical, (4,)),
    ("onehot", (8, 4), OneHotCategorical, (8, 4)),
]


@pytest.mark.parametrize(("dist", "shape", "cls", "event"), CASES)
@pytest.mark.parametrize("layers", [0, 2])
def test_every_head_returns_right_class_and_batch_shape(dist, shape, cls, event, layers):
    head = Head(10, shape, dist, units=16, layers=layers)
    d = head(torch.randn(2, 3, 10))
    assert isinstance(d, cls)
    assert d.batch_shape == (2, 3)
    assert d.mode().shape == (2, 3, *event)
    target = d.sample().detach()
    loss = d.loss(target)
    assert loss.shape == (2, 3) and torch.isfinite(loss).all()
    loss.mean().backward()
    assert head.out.weight.grad is not None


def test_learned_std_is_bounded_and_tanh_mean():
    head = Head(4, (2,), "normal", std="learned", min_std=0.1, max_std=1.0, mean_act="tanh")
    with torch.no_grad():
        head.out.weight.mul_(100.0)
    d = head(torch.randn(500, 4) * 10)
    assert d.std.min() >= 0.1 and d.std.max() <= 1.0
    assert d.std.min() < 0.2 and d.std.max() > 0.9  # the range is actually used
    assert d.mean.abs().max() <= 1.0
    fixed = Head(4, (2,), "normal", std=0.5)(torch.randn(3, 4))
    assert torch.equal(fixed.std, torch.full((3, 2), 0.5))


def test_outscale_zero_initialises_output():
    head = Head(6, (), "twohot", units=8, layers=1, outscale=0.0)
    assert head.out.weight.abs().sum() == 0 and head.out.bias.abs().sum() == 0
    d = head(torch.randn(5, 6))
    torch.testing.assert_close(d.mean, torch.zeros(5), atol=1e-6, rtol=0)
    assert "bins" not in head.state_dict()


def test_onehot_head_unimix():
    head = Head(6, (3,), "onehot", unimix=0.3)
    with torch.no_grad():
        head.out.weight.mul_(1000.0)
    d = head(torch.randn(50, 6))
    assert d.probs.min() >= 0.1 - 1e-6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dist": "gauss"}, "dist='gauss'"),
        ({"dist": "normal", "std": -1.0}, "std"),
        ({"dist": "normal", "std": "learned", "min_std": 2.0}, "min_std"),
        ({"dist": "onehot", "shape": ()}, "onehot"),
        ({"dist": "onehot", "unimix": 1.5}, "unimix"),
    ],
)
def test_head_validation(kwargs, match):
    kwargs = {"shape": (3,), **kwargs}
    with pytest.raises(ValueError, match=match):
        Head(4, **kwargs)
