import math

import pytest
import torch

from rssm.nn.functional import (
    log_softmax_last,
    softmax_last,
    symexp,
    symexp_bins,
    symlog,
    twohot_decode,
    twohot_encode,
)


def test_symlog_golden_values():
    x = torch.tensor([0.0, math.e - 1.0, -(math.e - 1.0), math.e**2 - 1.0])
    torch.testing.assert_close(symlog(x), torch.tensor([0.0, 1.0, -1.0, 2.0]))
    expected = torch.tensor([0.0, math.e - 1.0, -(math.e**2 - 1.0)])
    torch.testing.assert_close(symexp(torch.tensor([0.0, 1.0, -2.0])), expected)


def test_symlog_symexp_round_trip():
    x = torch.tensor([-1e4, -3.5, -1e-3, 0.0, 1e-3, 2.0, 1e4], dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x)
    torch.testing.assert_close(symlog(symexp(x[1:-1])), x[1:-1])


def test_symexp_bins_is_linspace_in_symlog_space():
    bins = symexp_bins()
    assert bins.shape == (255,)
    assert bins[0] == -20.0 and bins[-1] == 20.0 and bins[127] == 0.0
    torch.testing.assert_close(bins, torch.linspace(-20.0, 20.0, 255))
    with pytest.raises(ValueError, match="num"):
        symexp_bins(1)


def test_twohot_exact_weights_between_bins():
    bins = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    enc = twohot_encode(torch.tensor([0.25, -1.5, 1.0]), bins)
    expected = torch.tensor(
        [
            [0.0, 0.0, 0.75, 0.25, 0.0],
            [0.5, 0.5, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0, 0.0],
        ]
    )
    torch.testing.assert_close(enc, expected)


def test_twohot_clamps_at_the_edges():
    bins = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    enc = twohot_encode(torch.tensor([-100.0, -2.0, 2.0, 7.0]), bins)
    torch.testing.assert_close(enc[0], torch.tensor([1.0, 0, 0, 0, 0]))
    torch.testing.assert_close(enc[1], torch.tensor([1.0, 0, 0, 0, 0]))
    torch.testing.assert_close(enc[2], torch.tensor([0.0, 0, 0, 0, 1]))
    torch.testing.assert_close(enc[3], torch.tensor([0.0, 0, 0, 0, 1]))


def test_twohot_round_trip_and_batch_shape():
    bins = symexp_bins(255)
    x = torch.empty(4, 6, dtype=torch.float32).uniform_(-19.9, 19.9, generator=torch.manual_seed(0))
    enc = twohot_encode(x, bins)
    assert enc.shape == (4, 6, 255)
    torch.testing.assert_close(enc.sum(-1), torch.ones(4, 6))
    assert ((enc > 0).sum(-1) <= 2).all()
    torch.testing.assert_close(twohot_decode(enc, bins), x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "shape",
    [(1024, 32, 8), (4, 64, 32, 8), (1024, 6), (1024, 32, 4), (1024, 32, 16), (3, 8), (2, 1, 8)],
)
@pytest.mark.parametrize("vector", [16, 8])
def test_softmax_last_matches_torch_in_value_and_gradient(shape, vector, monkeypatch):
    # Both layouts (transposed for a short last dim on enough elements, plain otherwise; both
    # vector widths, whatever this CPU is) give torch's softmax / log_softmax over the last dim,
    # contiguous, with the same gradient.
    from rssm.nn import functional

    monkeypatch.setattr(functional, "_vector_floats", lambda: vector)
    gen = torch.Generator().manual_seed(0)
    x = (3.0 * torch.randn(*shape, generator=gen, dtype=torch.float64)).requires_grad_()
    grad = torch.randn(*shape, generator=gen, dtype=torch.float64)
    for ours, theirs in ((softmax_last, torch.softmax), (log_softmax_last, torch.log_softmax)):
        got, want = ours(x), theirs(x, -1)
        assert got.is_contiguous() and got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        (g_got,) = torch.autograd.grad(got, x, grad)
        (g_want,) = torch.autograd.grad(want, x, grad)
        torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("vector", [16, 8])
def test_softmax_last_takes_the_transposed_layout_only_where_it_pays(vector, monkeypatch):
    # The layout choice itself: fewer classes than one vector of the CPU's kernels holds (16
    # floats with AVX-512, 8 with AVX2), on enough elements, nothing else.
    from rssm.nn import functional

    monkeypatch.setattr(functional, "_vector_floats", lambda: vector)
    transposed = functional._transposed
    assert transposed(torch.zeros(1024, 32, 8)) == (vector == 16)
    assert transposed(torch.zeros(1024, 32, 4))
    assert transposed(torch.zeros(1024, 6))
    assert not transposed(torch.zeros(1024, 32, 16))  # one vector or more: plain
    assert not transposed(torch.zeros(16384, 255))
    assert not transposed(torch.zeros(1, 32, 4))  # too few elements for the copy to pay
    assert not transposed(torch.zeros(4096, 1, 4))  # nothing to reduce along instead
    assert not transposed(torch.zeros(1024, 4)[0])  # one dim


def test_softmax_last_reads_the_vector_width_of_the_dispatched_kernels():
    from rssm.nn import functional

    capability = torch.backends.cpu.get_cpu_capability()
    assert functional._vector_floats() == (16 if capability.startswith("AVX512") else 8)
