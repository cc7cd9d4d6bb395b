"""Observation encoder over a dict of modalities: a CNN over image keys, an MLP over vector keys.

This is the boundary where observation keys are chosen: ``cnn_keys`` and ``mlp_keys`` are regular
expressions matched in full against the keys of the observation space (``"image"``,
``"image|depth"``, ``".*"``; an empty string selects nothing). ``reward``, ``is_first``,
``is_last``, ``is_terminal`` and ``log_*`` keys are never encoded.
"""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from rssm.nn.functional import symlog
from rssm.nn.layers import MLP, Activation, ConvEncoder, conv_resolutions

__all__ = ["MultiEncoder", "denormalize_image", "normalize_image", "select_keys"]

RESERVED_KEYS = frozenset({"reward", "is_first", "is_last", "is_terminal"})


def normalize_image(image: Tensor, bit_depth: int = 8, noise: bool = False) -> Tensor:
    """uint8 image -> float in [-0.5, 0.5).

    With ``bit_depth < 8`` the image is quantised as in PlaNet: ``floor(x / 2^(8-b)) / 2^b - 0.5``
    and, if ``noise``, uniform dequantisation noise ``U(0, 2^-b)`` is added (used on training
    batches). With 8 bits: ``x / 255 - 0.5`` and no noise.

    Args:
        image: uint8 [..., H, W, C].
        bit_depth: bits kept per channel, 1..8.
        noise: add dequantisation noise (only with ``bit_depth < 8``).

    Returns:
        Float tensor (default dtype) of the same shape.
    """
    x = image.to(torch.get_default_dtype())
    if bit_depth >= 8:
        return x / 255.0 - 0.5
    levels = 2.0**bit_depth
    x = torch.floor(x / 2.0 ** (8 - bit_depth)) / levels
    if noise:
        x = x + torch.rand_like(x) / levels
    return x - 0.5


def denormalize_image(x: Tensor, bit_depth: int = 8) -> Tensor:
    """Inverse of :func:`normalize_image`: float [..., H, W, C] -> uint8 (clamped, rounded).

    For ``bit_depth < 8`` the scale is 256, so a prediction of the dequantised mean (bin centre)
    maps back to the middle of its 8-bit range rather than a darker value.
    """
    scale = 255.0 if bit_depth >= 8 else 256.0
    return ((x + 0.5) * scale).round_().clamp_(0, 255).to(torch.uint8)


def _describe(obs_space: gym.spaces.Dict) -> str:
    return ", ".join(
        f"{k}: {getattr(s, 'shape', None)} {getattr(s, 'dtype', type(s).__name__)}"
        for k, s in obs_space.spaces.items()
    )


def select_keys(
    obs_space: gym.spaces.Dict, cnn_keys: str, mlp_keys: str, owner: str = "MultiEncoder"
) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """Split the observation keys into image keys and vector keys, checking their spaces.

    Args:
        obs_space: the environment's observation space.
        cnn_keys: regex (full match) of image keys: uint8 Box spaces of shape (H, W, C).
        mlp_keys: regex (full match) of vector keys: Box spaces of any other shape.
        owner: name used in error messages.

    Returns:
        ``(cnn, mlp)``: dicts key -> shape, in the space's key order.

    Raises:
        ValueError: a selected key with an unusable space, or no key selected at all.
    """
    if not isinstance(obs_space, gym.spaces.Dict):
        raise TypeError(f"{owner}: obs_space must be a gymnasium.spaces.Dict, got {obs_space!r}")
    for name, pattern in (("cnn_keys", cnn_keys), ("mlp_keys", mlp_keys)):
        try:
            re.compile(pattern)
        except (re.error, TypeError) as err:
            raise ValueError(
                f"{owner}: {name}={pattern!r} is not a valid regular expression ({err}); use e.g. "
                "'image', 'image|depth', '.*' or '' (none)"
            ) from None
    cnn: dict[str, tuple[int, ...]] = {}
    mlp: dict[str, tuple[int, ...]] = {}
    ignored: list[str] = []
    for key, space in obs_space.spaces.items():
        if key in RESERVED_KEYS or key.startswith("log_"):
            continue
        is_cnn, is_mlp = bool(re.fullmatch(cnn_keys, key)), bool(re.fullmatch(mlp_keys, key))
        if not (is_cnn or is_mlp):
            ignored.append(key)
            continue
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(
                f"{owner}: key {key!r} has space {space!r}; only Box spaces can be encoded. "
                f"Exclude it from cnn_keys={cnn_keys!r} / mlp_keys={mlp_keys!r}"
            )
        image_like = len(space.shape) == 3 and space.dtype == np.uint8
        if is_cnn:
            if not image_like:
                raise ValueError(
                    f"{owner}: key {key!r} matches cnn_keys={cnn_keys!r} but has shape "
                    f"{space.shape} and dtype {space.dtype}; images must be uint8 (H, W, C). "
                    "Convert it to uint8 HWC in an env wrapper or remove it from cnn_keys"
                )
            cnn[key] = tuple(space.shape)
        elif image_like:
            raise ValueError(
                f"{owner}: key {key!r} matches mlp_keys={mlp_keys!r} but looks like an image "
                f"(uint8 {space.shape}); add it to cnn_keys instead"
            )
        else:
            mlp[key] = tuple(space.shape)
    if not cnn and not mlp:
        raise ValueError(
            f"{owner}: no observation key matches cnn_keys={cnn_keys!r} or mlp_keys="
            f"{mlp_keys!r}; the observation space has {{{_describe(obs_space)}}}. Set cnn_keys "
            "and/or mlp_keys (regexes matched in full, e.g. mlp_keys='.*')"
        )
    if ignored and owner == "MultiEncoder":  # said once per model, by its encoder
        warnings.warn(
            f"observation keys {ignored} match neither cnn_keys={cnn_keys!r} nor mlp_keys="
            f"{mlp_keys!r}: the model does not see them. Select them with "
            "world_model.encoder/decoder.cnn_keys (images) or .mlp_keys (vectors), regexes "
            "matched in full such as 'image|camera'",
            UserWarning,
            3,
        )
    sizes = {shape[:2] for shape in cnn.values()}
    if len(sizes) > 1:
        raise ValueError(
            f"{owner}: image keys have different sizes {cnn}; resize them to one (H, W) in an env "
            "wrapper or select one with cnn_keys"
        )
    return cnn, mlp


def image_size(cnn: dict[str, tuple[int, ...]], min_res: int, owner: str) -> int:
    """The common square size of the selected images, checked against the conv stack."""
    key, (height, width, _) = next(iter(cnn.items()))
    if height != width:
        raise ValueError(
            f"{owner}: image {key!r} has shape {(height, width)}; the CNN needs square images. "
            "Resize it in an env wrapper (e.g. to 64x64)"
        )
    try:
        conv_resolutions(height, min_res)
    except ValueError as err:
        raise ValueError(f"{owner}: image {key!r} of shape {cnn[key]}: {err}") from None
    return height


def check_positive(owner: str, **values: int) -> None:
    """Raise ValueError naming the first of ``values`` that is not a positive int."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{owner}: {name}={value!r} must be a positive int")


def check_obs(obs: dict[str, Tensor], shapes: dict[str, tuple[int, ...]], owner: str) -> None:
    """Raise ValueError unless every key is present with trailing shape ``shapes[key]``."""
    for key, shape in shapes.items():
        if key not in obs:
            raise ValueError(
                f"{owner}: observation key {key!r} is missing; got keys {sorted(obs)}. "
                "Check the env's observation space or the cnn_keys/mlp_keys regexes"
            )
        value = obs[key]
        if value.dim() < len(shape) or tuple(value.shape[value.dim() - len(shape) :]) != shape:
            raise ValueError(
                f"{owner}: observation {key!r} has shape {tuple(value.shape)}, expected "
                f"[..., {', '.join(map(str, shape))}] as in the observation space"
            )


class MultiEncoder(nn.Module):
    """Embeds a dict of observations: CNN over the (channel-stacked) images, MLP over vectors.

    Args:
        obs_space: the environment's observation space (a ``gymnasium.spaces.Dict``).
        cnn_keys: regex of image keys (uint8 HWC, all of one square size).
        mlp_keys: regex of vector keys (flattened and concatenated).
        cnn_depth: channels of the first conv layer (doubling per layer).
        cnn_min_res: the conv stack halves the image down to this resolution.
        cnn_kernel: kernel size of the convs.
        mlp_units: hidden width of the vector MLP.
        mlp_layers: hidden layers of the vector MLP (0: the raw vector is the embedding).
        symlog_inputs: apply symlog to vector inputs (DreamerV3).
        bit_depth: image quantisation bits (PlaNet: 5), see :func:`normalize_image`.
        act: activation name.
        norm: LayerNorm after hidden layers.

    Shapes:
        ``forward(obs)``: images uint8 [..., H, W, C], vectors [..., *shape] -> [..., out_dim].
    """

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        *,
        cnn_keys: str = "image",
        mlp_keys: str = "state",
        cnn_depth: int = 32,
        cnn_min_res: int = 4,
        cnn_kernel: int = 4,
        mlp_units: int = 512,
        mlp_layers: int = 2,
        symlog_inputs: bool = False,
        bit_depth: int = 8,
        act: Activation = "silu",
        norm: bool = True,
    ) -> None:
        super().__init__()
        if not 1 <= bit_depth <= 8:
            raise ValueError(f"MultiEncoder: bit_depth={bit_depth} must be in 1..8 (PlaNet: 5)")
        self.cnn_shapes, self.mlp_shapes = select_keys(obs_space, cnn_keys, mlp_keys)
        self.cnn_keys, self.mlp_keys = list(self.cnn_shapes), list(self.mlp_shapes)
        self.bit_depth, self.symlog_inputs = bit_depth, symlog_inputs
        self.out_dim = 0
        self.cnn: ConvEncoder | None = None
        self.mlp: MLP | None = None
        if self.cnn_keys:
            check_positive("MultiEncoder", cnn_depth=cnn_depth, cnn_kernel=cnn_kernel)
            size = image_size(self.cnn_shapes, cnn_min_res, "MultiEncoder")
            channels = sum(shape[-1] for shape in self.cnn_shapes.values())
            self.cnn = ConvEncoder(
                channels, size, cnn_depth, cnn_min_res, act=act, norm=norm, kernel=cnn_kernel
            )
            self.out_dim += self.cnn.out_dim
        if self.mlp_keys:
            in_dim = sum(int(np.prod(shape)) for shape in self.mlp_shapes.values())
            self.mlp = MLP(in_dim, None, mlp_units, mlp_layers, act=act, norm=norm)
            self.out_dim += self.mlp.out_dim

    def preprocess(self, obs: dict[str, Tensor], noise: bool = False) -> dict[str, Tensor]:
        """Selected keys as float network inputs (images normalised, vectors cast).

        Args:
            obs: observation dict; images uint8 [..., H, W, C].
            noise: add PlaNet dequantisation noise to the images (with ``bit_depth < 8``).

        Returns:
            Dict of the selected keys: images float [..., H, W, C] in [-0.5, 0.5), vectors float
            (not yet symlogged). These are also the decoder's targets.
        """
        check_obs(obs, {**self.cnn_shapes, **self.mlp_shapes}, "MultiEncoder")
        out = {}
        for key in self.cnn_keys:
            if obs[key].dtype != torch.uint8:
                raise ValueError(
                    f"MultiEncoder: image {key!r} has dtype {obs[key].dtype}, expected uint8 "
                    f"[..., H, W, C] (shape {tuple(obs[key].shape)}); keep images uint8 until "
                    "the encoder"
                )
            out[key] = normalize_image(obs[key], self.bit_depth, noise)
        for key in self.mlp_keys:
            out[key] = obs[key].to(torch.get_default_dtype())
        return out

    def encode(self, inputs: dict[str, Tensor]) -> Tensor:
        """Embed preprocessed inputs (see :meth:`preprocess`) -> [..., out_dim]."""
        outs = []
        if self.cnn is not None:
            images = [inputs[key] for key in self.cnn_keys]
            x = images[0] if len(images) == 1 else torch.cat(images, -1)
            # HWC -> CHW as a view: its strides are channels_last, which the CNN runs in.
            outs.append(self.cnn(x.movedim(-1, -3)))
        if self.mlp is not None:
            vectors = []
            for key, shape in self.mlp_shapes.items():
                value = inputs[key]
                vectors.append(value.reshape(*value.shape[: value.dim() - len(shape)], -1))
            x = vectors[0] if len(vectors) == 1 else torch.cat(vectors, -1)
            outs.append(self.mlp(symlog(x) if self.symlog_inputs else x))
        return outs[0] if len(outs) == 1 else torch.cat(outs, -1)

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        """Embed raw observations (no dequantisation noise) -> [..., out_dim]."""
        return self.encode(self.preprocess(obs))
