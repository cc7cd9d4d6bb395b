"""Layers: MLP, convolutional encoder/decoder, activations and initialisation (the GRU cores are
in :mod:`rssm.nn.gru`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rssm.kinds import Activation, Init

__all__ = [
    "MLP",
    "ChannelNorm",
    "ConvDecoder",
    "ConvEncoder",
    "Init",
    "conv_resolutions",
    "init_fan_avg_",
    "make_act",
]

_ACTS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "mish": nn.Mish,
    "none": nn.Identity,
}
# DreamerV3 uses LayerNorm with eps 1e-3; the larger eps keeps small-variance features stable.
NORM_EPS = 1e-3


def make_act(name: str) -> nn.Module:
    """Activation module by name (one of ``silu, elu, relu, gelu, tanh, mish, none``)."""
    if name not in _ACTS:
        raise ValueError(f"act={name!r} is unknown; choose one of {sorted(_ACTS)}")
    return _ACTS[name]()


class MLP(nn.Module):
    """Stack of ``layers`` blocks Linear(+LayerNorm)+act, then an optional output Linear.

    Args:
        in_dim: input features.
        out_dim: output features; ``None`` returns the last hidden features.
        units: hidden width.
        layers: number of hidden blocks (0 allowed: then just the output Linear, or identity).
        act: activation name.
        norm: LayerNorm after each hidden Linear (the Linear then has no bias).

    Shapes:
        ``[..., in_dim] -> [..., out_dim]``; ``self.out_dim`` is the output width.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int | None,
        units: int,
        layers: int,
        act: Activation = "silu",
        norm: bool = True,
    ) -> None:
        super().__init__()
        if layers < 0:
            raise ValueError(f"MLP: layers={layers} must be >= 0")
        if layers > 0 and units <= 0:
            raise ValueError(f"MLP: units={units} must be > 0 when layers={layers} > 0")
        blocks: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers):
            blocks.append(nn.Linear(dim, units, bias=not norm))
            if norm:
                blocks.append(nn.LayerNorm(units, eps=NORM_EPS))
            blocks.append(make_act(act))
            dim = units
        if out_dim is not None:
            blocks.append(nn.Linear(dim, out_dim))
            dim = out_dim
        self.net = nn.Sequential(*blocks)
        self.in_dim = in_dim
        self.out_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ChannelNorm(nn.Module):
    """LayerNorm over the channel dim of ``[N, C, H, W]`` maps (per pixel, as in DreamerV3)."""

    def __init__(self, channels: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        # In channels_last memory the permuted view is contiguous, so this costs no copy.
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def conv_resolutions(image_size: int, min_res: int = 4) -> list[int]:
    """Resolutions after each stride-2 layer: halve while the result stays >= ``min_res``.

    Args:
        image_size: square input size.
        min_res: smallest allowed feature-map size.

    Returns:
        ``[image_size // 2, image_size // 4, ..., r]`` with ``min_res <= r < 2 * min_res``.

    Raises:
        ValueError: when ``image_size`` cannot be halved exactly down to that range; supported are
            ``r * 2**k`` with ``min_res <= r < 2 * min_res`` and ``k >= 1``.
    """
    if min_res < 1:
        raise ValueError(f"min_res={min_res} must be >= 1")
    res, out = image_size, []
    while res % 2 == 0 and res // 2 >= min_res:
        res //= 2
        out.append(res)
    if not out or res >= 2 * min_res:
        examples = sorted({r * 2**k for r in range(min_res, 2 * min_res) for k in (1, 2, 3, 4)})
        raise ValueError(
            f"image_size={image_size} is not supported with min_res={min_res}: the size must halve "
            f"exactly down to [{min_res}, {2 * min_res}), i.e. r * 2**k with {min_res} <= r < "
            f"{2 * min_res}; supported sizes include {examples[:16]} (with min_res=4: any multiple "
            "of 16 such as 32, 48, 64, 96, 128)"
        )
    return out


def _padding(kernel: int) -> tuple[int, int]:
    """Padding and output_padding so that stride-2 (transposed) convs halve (double) exactly."""
    if kernel < 2:
        raise ValueError(f"kernel={kernel} must be >= 2 for stride-2 convolutions")
    pad = (kernel - 1) // 2
    return pad, 2 - kernel + 2 * pad


class ConvEncoder(nn.Module):
    """Stride-2 conv stack with channels ``depth, 2*depth, ...`` down to ``min_res``.

    Args:
        in_channels: input channels C.
        image_size: square input size S (see :func:`conv_resolutions` for supported sizes).
        depth: channels of the first layer; each next layer doubles them.
        min_res: smallest feature-map size (64 -> 4x4 with the default 4).
        act: activation name.
        norm: channel LayerNorm after each conv (the conv then has no bias).
        kernel: kernel size of every conv.
        channels_last: run in channels_last memory format (faster on CPU and GPU).

    Shapes:
        ``[..., C, S, S]`` float, already normalised ``-> [..., out_dim]``; ``out_shape`` is the
        (channels, h, w) of the last feature map and ``out_dim`` their product.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        depth: int = 32,
        min_res: int = 4,
        act: Activation = "silu",
        norm: bool = True,
        kernel: int = 4,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        resolutions = conv_resolutions(image_size, min_res)
        pad, _ = _padding(kernel)
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(len(resolutions)):
            out = depth * 2**i
            layers.append(nn.Conv2d(channels, out, kernel, stride=2, padding=pad, bias=not norm))
            if norm:
                layers.append(ChannelNorm(out))
            layers.append(make_act(act))
            channels = out
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.image_size = image_size
        self.channels_last = channels_last
        self.out_shape = (channels, resolutions[-1], resolutions[-1])
        self.out_dim = channels * resolutions[-1] ** 2
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-3]
        if x.shape[-3:] != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(
                f"ConvEncoder expects [..., {self.in_channels}, {self.image_size}, "
                f"{self.image_size}] (channels first), got {tuple(x.shape)}"
            )
        x = x.reshape(-1, *x.shape[-3:])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x).reshape(*lead, self.out_dim)


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: Linear to a feature map, then stride-2 transposed convs.

    Args:
        in_dim: input features.
        out_channels: output channels C.
        image_size: square output size S (see :func:`conv_resolutions`).
        depth, min_res, act, norm, kernel, channels_last: as for :class:`ConvEncoder`.

    Shapes:
        ``[..., in_dim] -> [..., C, S, S]`` (no output activation).
    """

    def __init__(
        self,
        in_dim: int,
        out_channels: int,
        image_size: int,
        depth: int = 32,
        min_res: int = 4,
        act: Activation = "silu",
        norm: bool = True,
        kernel: int = 4,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        resolutions = conv_resolutions(image_size, min_res)
        pad, out_pad = _padding(kernel)
        num = len(resolutions)
        channels = depth * 2 ** (num - 1)
        self.in_shape = (channels, resolutions[-1], resolutions[-1])
        self.linear = nn.Linear(in_dim, channels * resolutions[-1] ** 2)
        layers: list[nn.Module] = []
        for i in reversed(range(num)):
            last = i == 0
            out = out_channels if last else depth * 2 ** (i - 1)
            layers.append(
                nn.ConvTranspose2d(channels, out, kernel, 2, pad, out_pad, bias=last or not norm)
            )
            if not last:
                if norm:
                    layers.append(ChannelNorm(out))
                layers.append(make_act(act))
            channels = out
        self.net = nn.Sequential(*layers)
        self.in_dim = in_dim
        self.out_channels = out_channels
        self.image_size = image_size
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = self.linear(x.reshape(-1, x.shape[-1])).reshape(-1, *self.in_shape)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.net(x)
        return x.reshape(*lead, self.out_channels, self.image_size, self.image_size)


_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated at +-2


@torch.no_grad()
def init_fan_avg_(root: nn.Module) -> None:
    """Re-initialises every linear and convolution layer under ``root`` in place: weights from a
    normal truncated at two standard deviations with variance ``1 / fan_avg`` (fan_avg = the
    mean of fan-in and fan-out), biases zero; then every module that declares ``outscale`` has
    its ``out`` layer scaled by it (0: zero-initialised). This is the initialisation of
    DreamerV3's released code (``winit: normal, fan: avg``); torch's default draws weights with
    variance ``1 / (3 fan_in)``.
    """
    for module in root.modules():
        if isinstance(module, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(module.weight)
            std = math.sqrt(2.0 / (fan_in + fan_out)) / _TRUNC_STD
            nn.init.trunc_normal_(module.weight, std=std, a=-2.0 * std, b=2.0 * std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    for module in root.modules():
        scale = getattr(module, "outscale", None)
        if scale is not None and isinstance(getattr(module, "out", None), nn.Linear):
            module.out.weight.mul_(scale)
            module.out.bias.mul_(scale)
