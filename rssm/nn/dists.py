"""Distributions with one API, used for latents, heads and actors.

Every class offers ``mode()``, ``sample()``, ``log_prob(x)``, ``loss(target)``, ``entropy()``
and ``kl(other)``. Results are summed over the ``event_dims`` trailing dims of the event, so they
have the batch shape. Everything is plain tensor maths (no ``torch.distributions`` objects)
because these are built several times per RSSM step.
"""

from __future__ import annotations

import abc
import math
from functools import cached_property
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from rssm.nn.functional import (
    log_softmax_last,
    softmax_last,
    symexp,
    symexp_bins,
    symlog,
    twohot_decode,
    twohot_indices,
)

__all__ = [
    "MSE",
    "Bernoulli",
    "Distribution",
    "Normal",
    "OneHotCategorical",
    "SymlogMSE",
    "TanhNormal",
    "TwoHot",
    "kl_divergence",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _sum_last(x: Tensor, dims: int) -> Tensor:
    """Sum over the ``dims`` trailing dimensions (no-op for 0)."""
    return x.sum(tuple(range(-dims, 0))) if dims > 0 else x


def _check_event_dims(name: str, event_dims: int, param: Tensor, core_dims: int = 0) -> None:
    if not isinstance(event_dims, int) or event_dims < 0:
        raise ValueError(f"{name}: event_dims must be an int >= 0, got {event_dims!r}")
    if event_dims + core_dims > param.dim():
        raise ValueError(
            f"{name}: event_dims={event_dims} needs a parameter with at least "
            f"{event_dims + core_dims} dims, got shape {tuple(param.shape)}"
        )


class Distribution(abc.ABC):
    """Common base: shapes and the derived methods shared by all distributions."""

    event_dims: int

    @property
    @abc.abstractmethod
    def batch_shape(self) -> torch.Size:
        """Shape of ``log_prob``/``loss``/``entropy`` results."""

    @abc.abstractmethod
    def mode(self) -> Tensor:
        """The most likely value [..., *event]."""

    @abc.abstractmethod
    def sample(self) -> Tensor:
        """A sample [..., *event] (reparameterised or straight-through where defined)."""

    @abc.abstractmethod
    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density of ``x``, shape = batch shape."""

    def loss(self, target: Tensor) -> Tensor:
        """Training loss against ``target``, shape = batch shape (default: ``-log_prob``)."""
        return -self.log_prob(target)

    def entropy(self) -> Tensor:
        raise TypeError(f"{type(self).__name__} has no entropy; use a proper distribution head")

    def kl(self, other: Distribution) -> Tensor:
        raise TypeError(f"KL is not defined for {type(self).__name__}; use Normal, Bernoulli, ...")

    @abc.abstractmethod
    def detach(self) -> Distribution:
        """A copy whose parameters are detached (for KL balancing / stop-gradients)."""

    def _check_other(self, other: Distribution) -> None:
        if type(other) is not type(self):
            raise TypeError(
                f"kl({type(self).__name__}, {type(other).__name__}) is undefined; "
                f"both distributions must be {type(self).__name__}"
            )
        if other.event_dims != self.event_dims:
            raise ValueError(
                f"kl: event_dims differ ({self.event_dims} vs {other.event_dims}); "
                "build both distributions with the same event_dims"
            )


class _MeanDistribution(Distribution):
    """Base of the distributions whose mode is their ``_mean`` parameter [..., *event]."""

    _mean: Tensor

    @property
    def mean(self) -> Tensor:
        return self._mean

    @property
    def batch_shape(self) -> torch.Size:
        return self._mean.shape[: self._mean.dim() - self.event_dims]

    def mode(self) -> Tensor:
        return self._mean


class Normal(_MeanDistribution):
    """Diagonal Gaussian, independent over the ``event_dims`` trailing dims.

    Args:
        mean: [..., *event].
        std: positive, broadcastable to ``mean`` (a tensor or a float).
        event_dims: number of trailing dims that form the event.
    """

    def __init__(self, mean: Tensor, std: Tensor | float, event_dims: int = 1) -> None:
        _check_event_dims("Normal", event_dims, mean)
        std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
        self._mean = mean
        self.std = std if std.shape == mean.shape else std.expand_as(mean)
        self.event_dims = event_dims

    def sample(self) -> Tensor:
        """Reparameterised sample [..., *event]."""
        return self._mean + self.std * torch.randn_like(self._mean)

    def log_prob(self, x: Tensor) -> Tensor:
        z = (x - self._mean) / self.std
        return _sum_last(-0.5 * z.square() - self.std.log() - _HALF_LOG_2PI, self.event_dims)

    def entropy(self) -> Tensor:
        return _sum_last(0.5 + _HALF_LOG_2PI + self.std.log(), self.event_dims)

    def kl(self, other: Distribution) -> Tensor:
        """KL(self || other) in closed form, shape = batch shape."""
        self._check_other(other)
        assert isinstance(other, Normal)
        var_ratio = (self.std / other.std).square()
        term = ((self._mean - other._mean) / other.std).square()
        return _sum_last(0.5 * (var_ratio + term - 1.0 - var_ratio.log()), self.event_dims)

    def detach(self) -> Normal:
        return Normal(self._mean.detach(), self.std.detach(), self.event_dims)


class TanhNormal(Distribution):
    """A diagonal Gaussian squashed by ``tanh`` into (-1, 1): Dreamer V1's continuous actor.

    ``sample()`` is reparameterised: ``tanh(mean + std * eps)``. ``log_prob`` applies the change
    of variables ``log N(atanh y) - sum log(1 - y^2)``. The entropy has no closed form; as in
    Dreamer V1 it is estimated from one reparameterised sample (``-log_prob(sample)``), so it is
    differentiable and unbiased. ``mode()`` returns ``tanh(mean)`` (the squashed Gaussian mode;
    V1 took the best of 100 samples instead: docs/paper_deviations.md).

    Args:
        mean, std: parameters of the Gaussian before the squashing [..., *event].
        event_dims: number of trailing dims that form the event.
    """

    _EPS = 1e-6

    def __init__(self, mean: Tensor, std: Tensor | float, event_dims: int = 1) -> None:
        self.base = Normal(mean, std, event_dims)
        self.event_dims = event_dims

    @property
    def batch_shape(self) -> torch.Size:
        return self.base.batch_shape

    @property
    def mean(self) -> Tensor:
        return torch.tanh(self.base.mean)

    def mode(self) -> Tensor:
        return torch.tanh(self.base.mean)

    def sample(self) -> Tensor:
        return torch.tanh(self.base.sample())

    def log_prob(self, x: Tensor) -> Tensor:
        x = x.clamp(-1.0 + self._EPS, 1.0 - self._EPS)
        jacobian = _sum_last(torch.log1p(-x.square() + self._EPS), self.event_dims)
        return self.base.log_prob(torch.atanh(x)) - jacobian

    def entropy(self) -> Tensor:
        u = self.base.sample()
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)): exact for large |u|, unlike atanh.
        log_det = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
        return -(self.base.log_prob(u) - _sum_last(log_det, self.event_dims))

    def detach(self) -> TanhNormal:
        return TanhNormal(self.base.mean.detach(), self.base.std.detach(), self.event_dims)


class MSE(_MeanDistribution):
    """Deterministic prediction trained with squared error summed over the event dims.

    ``mode() == sample() == mean``; ``log_prob = -loss`` (an unnormalised density).

    Args:
        mean: [..., *event].
        event_dims: number of trailing dims that form the event.
    """

    def __init__(self, mean: Tensor, event_dims: int = 1) -> None:
        _check_event_dims("MSE", event_dims, mean)
        self._mean = mean
        self.event_dims = event_dims

    def sample(self) -> Tensor:
        return self._mean

    def loss(self, target: Tensor) -> Tensor:
        return _sum_last((self._mean - target).square(), self.event_dims)

    def log_prob(self, x: Tensor) -> Tensor:
        return -self.loss(x)

    def detach(self) -> MSE:
        return MSE(self._mean.detach(), self.event_dims)


class SymlogMSE(MSE):
    """Squared error in symlog space (DreamerV3 eq. 10): ``loss = sum (pred - symlog(target))^2``.

    Args:
        pred: prediction in symlog space [..., *event].
        event_dims: number of trailing dims that form the event.
    """

    def __init__(self, pred: Tensor, event_dims: int = 1) -> None:
        super().__init__(pred, event_dims)

    @property
    def pred(self) -> Tensor:
        """The raw prediction in symlog space."""
        return self._mean

    @cached_property
    def _value(self) -> Tensor:
        return symexp(self._mean)

    @property
    def mean(self) -> Tensor:
        return self._value

    def mode(self) -> Tensor:
        return self._value

    def sample(self) -> Tensor:
        return self._value

    def loss(self, target: Tensor) -> Tensor:
        return _sum_last((self._mean - symlog(target)).square(), self.event_dims)

    def detach(self) -> SymlogMSE:
        return SymlogMSE(self._mean.detach(), self.event_dims)


class Bernoulli(Distribution):
    """Independent Bernoulli variables given by logits.

    ``sample()`` is a {0, 1} sample with straight-through gradients to the probabilities.

    Args:
        logits: [..., *event].
        event_dims: number of trailing dims that form the event (0 for a scalar flag).
    """

    def __init__(self, logits: Tensor, event_dims: int = 0) -> None:
        _check_event_dims("Bernoulli", event_dims, logits)
        self.logits = logits
        self.event_dims = event_dims

    @cached_property
    def probs(self) -> Tensor:
        return torch.sigmoid(self.logits)

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def batch_shape(self) -> torch.Size:
        return self.logits.shape[: self.logits.dim() - self.event_dims]

    def mode(self) -> Tensor:
        return (self.logits > 0).to(self.logits.dtype)

    def sample(self) -> Tensor:
        probs = self.probs
        hard = torch.bernoulli(probs.detach())
        return hard + probs - probs.detach()

    def log_prob(self, x: Tensor) -> Tensor:
        x = x.to(self.logits.dtype)
        nll = F.binary_cross_entropy_with_logits(self.logits, x, reduction="none")
        return -_sum_last(nll, self.event_dims)

    def entropy(self) -> Tensor:
        # H = softplus(l) - p * l, stable for large |l|.
        return _sum_last(F.softplus(self.logits) - self.probs * self.logits, self.event_dims)

    def kl(self, other: Distribution) -> Tensor:
        self._check_other(other)
        assert isinstance(other, Bernoulli)
        p, lp, lq = self.probs, self.logits, other.logits
        # log p - log q and log(1-p) - log(1-q) through logsigmoid for stability.
        pos = F.logsigmoid(lp) - F.logsigmoid(lq)
        neg = F.logsigmoid(-lp) - F.logsigmoid(-lq)
        return _sum_last(p * pos + (1.0 - p) * neg, self.event_dims)

    def detach(self) -> Bernoulli:
        return Bernoulli(self.logits.detach(), self.event_dims)


class OneHotCategorical(Distribution):
    """Categorical over the last dim with one-hot samples and straight-through gradients.

    ``probs = (1 - unimix) * softmax(logits) + unimix / C`` (DreamerV3 "unimix"). With logits
    [..., G, C] and ``event_dims=1`` it is a product of G categoricals (DreamerV2/V3 latents).

    Args:
        logits: unnormalised logits [..., *event, C].
        unimix: weight of the uniform mixture, in [0, 1).
        event_dims: number of trailing dims before the class dim that form the event.
    """

    def __init__(self, logits: Tensor, unimix: float = 0.0, event_dims: int = 0) -> None:
        _check_event_dims("OneHotCategorical", event_dims, logits, core_dims=1)
        if not 0.0 <= unimix < 1.0:
            raise ValueError(f"OneHotCategorical: unimix={unimix} must be in [0, 1), e.g. 0.01")
        self._raw = logits
        self.unimix = float(unimix)
        self.event_dims = event_dims

    @property
    def classes(self) -> int:
        return self._raw.shape[-1]

    @cached_property
    def probs(self) -> Tensor:
        """Mixed probabilities [..., C]."""
        if self.unimix > 0.0:
            probs = softmax_last(self._raw)
            return probs * (1.0 - self.unimix) + self.unimix / self.classes
        if "logits" in self.__dict__:
            return self.__dict__["logits"].exp()
        return softmax_last(self._raw)

    @cached_property
    def logits(self) -> Tensor:
        """Normalised log-probabilities [..., C] (log of the mixed probabilities)."""
        if self.unimix > 0.0:
            return self.probs.log()
        return log_softmax_last(self._raw)

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def batch_shape(self) -> torch.Size:
        return self._raw.shape[: self._raw.dim() - 1 - self.event_dims]

    def _straight_through(self, index: Tensor) -> Tensor:
        probs = self.probs
        hard = torch.zeros_like(probs).scatter_(-1, index, 1.0)
        # hard + (p - sg(p)) keeps the value exactly one-hot and the gradient of p.
        return hard + (probs - probs.detach())

    def sample(self) -> Tensor:
        """One-hot sample [..., C] with straight-through gradients to ``probs``."""
        probs = self.probs.detach()
        cdf = probs.cumsum(-1)
        # Inverse-CDF sampling draws one uniform per categorical (C times fewer than Gumbel-max,
        # ~20x faster than torch.multinomial on CPU). Scaling by cdf[-1] absorbs rounding.
        u = torch.rand_like(cdf[..., :1]) * cdf[..., -1:]
        index = torch.searchsorted(cdf, u, right=True).clamp_(max=self.classes - 1)
        return self._straight_through(index)

    def mode(self) -> Tensor:
        """One-hot argmax [..., C] with straight-through gradients to ``probs``."""
        return self._straight_through(self._raw.argmax(-1, keepdim=True))

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-probability of one-hot ``x`` [..., *event, C]; shape = batch shape."""
        return _sum_last((x * self.logits).sum(-1), self.event_dims)

    def entropy(self) -> Tensor:
        return _sum_last(-(self.probs * self.logits).sum(-1), self.event_dims)

    def kl(self, other: Distribution) -> Tensor:
        self._check_other(other)
        assert isinstance(other, OneHotCategorical)
        if other.classes != self.classes:
            raise ValueError(f"kl: class counts differ ({self.classes} vs {other.classes})")
        return _sum_last((self.probs * (self.logits - other.logits)).sum(-1), self.event_dims)

    def detach(self) -> OneHotCategorical:
        new = OneHotCategorical(self._raw.detach(), self.unimix, self.event_dims)
        for key in ("probs", "logits"):
            if key in self.__dict__:
                new.__dict__[key] = self.__dict__[key].detach()
        return new


class TwoHot(Distribution):
    """Discrete regression over bins with a two-hot target (DreamerV3 reward and critic heads).

    ``mode() = mean = inverse_transform(sum_k softmax(logits)_k * bins_k)``;
    ``loss(target) = -sum_k twohot(transform(target))_k * log_softmax(logits)_k``.
    ``sample()`` returns the mean (the head is a regression, not a generative model).

    Args:
        logits: [..., *event, K].
        bins: bin locations [K] in transformed space; default ``symexp_bins(K)``.
        transform: ``"symlog"`` (bins live in symlog space) or ``"identity"``.
        event_dims: number of trailing dims before the bin dim that form the event.
    """

    def __init__(
        self,
        logits: Tensor,
        bins: Tensor | None = None,
        transform: Literal["symlog", "identity"] = "symlog",
        event_dims: int = 0,
    ) -> None:
        _check_event_dims("TwoHot", event_dims, logits, core_dims=1)
        if transform not in ("symlog", "identity"):
            raise ValueError(f"TwoHot: transform={transform!r}; use 'symlog' or 'identity'")
        if bins is None:
            bins = symexp_bins(logits.shape[-1], device=logits.device, dtype=logits.dtype)
        if bins.shape != logits.shape[-1:]:
            raise ValueError(
                f"TwoHot: bins shape {tuple(bins.shape)} does not match the last logits dim "
                f"{logits.shape[-1]}; pass bins of shape [{logits.shape[-1]}]"
            )
        self.logits = logits
        self.bins = bins
        self.transform = transform
        self.event_dims = event_dims

    @cached_property
    def log_probs(self) -> Tensor:
        return torch.log_softmax(self.logits, -1)

    @cached_property
    def probs(self) -> Tensor:
        # A head read only for its mean (imagined rewards, slow-critic targets) needs no
        # log-probabilities: one softmax is half the memory traffic of log_softmax then exp.
        if "log_probs" in self.__dict__:
            return self.log_probs.exp()
        return torch.softmax(self.logits, -1)

    @cached_property
    def mean(self) -> Tensor:
        """Expected value in the original space [..., *event]."""
        value = twohot_decode(self.probs, self.bins)
        return symexp(value) if self.transform == "symlog" else value

    @property
    def batch_shape(self) -> torch.Size:
        return self.logits.shape[: self.logits.dim() - 1 - self.event_dims]

    def mode(self) -> Tensor:
        return self.mean

    def sample(self) -> Tensor:
        return self.mean

    def loss(self, target: Tensor) -> Tensor:
        """Cross-entropy against the two-hot encoding of ``target`` [..., *event]."""
        x = symlog(target) if self.transform == "symlog" else target
        below, w_hi = twohot_indices(x, self.bins)
        # Gather the two log-probabilities instead of materialising the [..., K] encoding.
        logp = self.log_probs.gather(-1, torch.stack([below, below + 1], -1))
        nll = -((1.0 - w_hi) * logp[..., 0] + w_hi * logp[..., 1])
        return _sum_last(nll, self.event_dims)

    def log_prob(self, x: Tensor) -> Tensor:
        return -self.loss(x)

    def entropy(self) -> Tensor:
        return _sum_last(-(self.probs * self.log_probs).sum(-1), self.event_dims)

    def kl(self, other: Distribution) -> Tensor:
        self._check_other(other)
        assert isinstance(other, TwoHot)
        return _sum_last((self.probs * (self.log_probs - other.log_probs)).sum(-1), self.event_dims)

    def detach(self) -> TwoHot:
        return TwoHot(self.logits.detach(), self.bins, self.transform, self.event_dims)


def kl_divergence(p: Distribution, q: Distribution) -> Tensor:
    """KL(p || q) with the batch shape of ``p``; same as ``p.kl(q)``."""
    return p.kl(q)
