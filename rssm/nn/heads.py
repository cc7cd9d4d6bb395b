"""Prediction heads: an optional MLP trunk and a linear layer that parameterises a distribution."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from rssm.nn.dists import MSE, Bernoulli, Distribution, Normal, OneHotCategorical, SymlogMSE, TwoHot
from rssm.nn.functional import symexp_bins
from rssm.nn.layers import MLP, Activation

__all__ = ["Head", "HeadDist"]

HeadDist = Literal["normal", "mse", "symlog_mse", "binary", "twohot", "onehot"]
_DISTS = ("normal", "mse", "symlog_mse", "binary", "twohot", "onehot")


class Head(nn.Module):
    """MLP trunk plus a linear output layer that returns a distribution over ``shape``.

    Distributions (the event is ``shape``, so results of ``loss``/``log_prob`` are ``[...]``):
        - ``normal``: :class:`Normal`; ``std`` is a fixed float or ``"learned"``, then
          ``std = (max_std - min_std) * sigmoid(raw + 2) + min_std`` (DreamerV3).
          ``mean_act="tanh"`` bounds the mean to [-1, 1] (DreamerV3 continuous actor).
        - ``mse`` / ``symlog_mse``: :class:`MSE` / :class:`SymlogMSE`.
        - ``binary``: :class:`Bernoulli` (e.g. ``shape=()`` for the continue flag).
        - ``twohot``: :class:`TwoHot` over ``bins`` symlog bins (``shape=()`` for reward/critic).
        - ``onehot``: :class:`OneHotCategorical` with ``unimix``; ``shape=(C,)`` or ``(G, C)``.

    Args:
        in_dim: input features.
        shape: event shape (an int is read as ``(int,)``).
        dist: distribution name.
        units: trunk width; layers: trunk depth (0: linear output on the features).
        act, norm: trunk activation and LayerNorm.
        min_std, max_std, std, mean_act: ``normal`` only.
        unimix: ``onehot`` only.
        bins: number of two-hot bins (``twohot`` only).
        outscale: multiplies the output layer's initial weights; 0.0 zero-initialises the layer
            (weights and bias), as DreamerV3 does for the reward and critic heads.

    Shapes:
        ``forward(feat [..., in_dim])`` returns a distribution with batch shape ``[...]``.
    """

    def __init__(
        self,
        in_dim: int,
        shape: tuple[int, ...] | int,
        dist: HeadDist,
        *,
        units: int = 0,
        layers: int = 0,
        act: Activation = "silu",
        norm: bool = True,
        min_std: float = 0.1,
        max_std: float = 1.0,
        std: float | Literal["learned"] = 1.0,
        unimix: float = 0.0,
        bins: int = 255,
        outscale: float = 1.0,
        mean_act: Literal["none", "tanh"] = "none",
    ) -> None:
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self._validate(shape, dist, min_std, max_std, std, unimix, bins, mean_act)
        self.shape = shape
        self.dist = dist
        self.min_std, self.max_std, self.std = min_std, max_std, std
        self.unimix = unimix
        self.mean_act = mean_act
        self.trunk = MLP(in_dim, None, units, layers, act, norm)
        size = math.prod(shape)
        if dist == "twohot":
            size *= bins
            self.register_buffer("bins", symexp_bins(bins), persistent=False)
        elif dist == "normal" and std == "learned":
            size *= 2
        self.out = nn.Linear(self.trunk.out_dim, size)
        self.outscale = outscale  # re-applied by init_fan_avg_
        if outscale != 1.0:
            with torch.no_grad():
                self.out.weight.mul_(outscale)
                self.out.bias.mul_(outscale)
        self.in_dim = in_dim

    @staticmethod
    def _validate(shape, dist, min_std, max_std, std, unimix, bins, mean_act) -> None:
        if dist not in _DISTS:
            raise ValueError(f"Head: dist={dist!r} is unknown; choose one of {_DISTS}")
        if any(not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"Head: shape={shape} must be a tuple of positive ints")
        if dist == "onehot" and not shape:
            raise ValueError("Head: dist='onehot' needs shape=(classes,) or (groups, classes)")
        if dist == "normal":
            if std != "learned" and not (isinstance(std, int | float) and std > 0):
                raise ValueError(f"Head: std={std!r} must be a positive float or 'learned'")
            if std == "learned" and not 0 <= min_std < max_std:
                raise ValueError(f"Head: need 0 <= min_std < max_std, got {min_std}, {max_std}")
        if mean_act not in ("none", "tanh"):
            raise ValueError(f"Head: mean_act={mean_act!r}; use 'none' or 'tanh'")
        if not 0.0 <= unimix < 1.0:
            raise ValueError(f"Head: unimix={unimix} must be in [0, 1)")
        if dist == "twohot" and bins < 2:
            raise ValueError(f"Head: bins={bins} must be >= 2 for dist='twohot'")

    def forward(self, feat: Tensor) -> Distribution:
        out = self.out(self.trunk(feat))
        lead = out.shape[:-1]
        nd = len(self.shape)
        if self.dist == "twohot":
            logits = out.reshape(*lead, *self.shape, self.bins.shape[0])
            return TwoHot(logits, self.bins, "symlog", event_dims=nd)
        if self.dist == "normal" and self.std == "learned":
            mean, raw = out.reshape(*lead, 2, *self.shape).unbind(len(lead))
            std = (self.max_std - self.min_std) * torch.sigmoid(raw + 2.0) + self.min_std
        else:
            mean = out.reshape(*lead, *self.shape)
            std = self.std
        if self.dist == "normal":
            mean = torch.tanh(mean) if self.mean_act == "tanh" else mean
            return Normal(mean, std, event_dims=nd)
        if self.dist == "mse":
            return MSE(mean, event_dims=nd)
        if self.dist == "symlog_mse":
            return SymlogMSE(mean, event_dims=nd)
        if self.dist == "binary":
            return Bernoulli(mean, event_dims=nd)
        return OneHotCategorical(mean, self.unimix, event_dims=nd - 1)
