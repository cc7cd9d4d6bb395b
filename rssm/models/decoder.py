"""Observation decoder: predicts every selected observation key from the latent features."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from torch import Tensor, nn

from rssm.kinds import ImageDist, VectorDist
from rssm.models.encoder import check_positive, image_size, select_keys
from rssm.nn.dists import MSE, Distribution, Normal, SymlogMSE
from rssm.nn.layers import MLP, Activation, ConvDecoder

__all__ = ["MultiDecoder"]


def _make_dist(kind: str, mean: Tensor, event_dims: int) -> Distribution:
    if kind == "mse":
        return MSE(mean, event_dims)
    if kind == "symlog_mse":
        return SymlogMSE(mean, event_dims)
    return Normal(mean, 1.0, event_dims)


class MultiDecoder(nn.Module):
    """Reconstructs observations: a transposed CNN for the images, an MLP for the vectors.

    Images are predicted in the encoder's normalised space (``uint8 / 255 - 0.5``, HWC) so the
    target of ``loss`` is ``MultiEncoder.preprocess(obs)[key]``.

    Args:
        feat_dim: size of the latent features (``RSSM.feat_dim``).
        obs_space: the environment's observation space.
        cnn_keys, mlp_keys: regexes of the keys to reconstruct (as in ``MultiEncoder``).
        cnn_depth, cnn_min_res, cnn_kernel: conv stack (mirror of the encoder's).
        mlp_units, mlp_layers: shared MLP trunk of the vector keys.
        image_dist: ``"mse"`` (sum of squared errors, DreamerV3) or ``"normal"`` (negative
            log-likelihood of a unit-variance Gaussian, PlaNet/V1/V2: half the squared error plus a
            constant).
        vector_dist: ``"mse"``, ``"symlog_mse"`` (DreamerV3) or ``"normal"``.
        act, norm: hidden activation and LayerNorm.

    Shapes:
        ``forward(feat [..., F])`` -> dict key -> distribution with batch shape [...] whose mean is
        [..., H, W, C] (images) or [..., *shape] (vectors).
    """

    def __init__(
        self,
        feat_dim: int,
        obs_space: gym.spaces.Dict,
        *,
        cnn_keys: str = "image",
        mlp_keys: str = "state",
        cnn_depth: int = 32,
        cnn_min_res: int = 4,
        cnn_kernel: int = 4,
        mlp_units: int = 512,
        mlp_layers: int = 2,
        image_dist: ImageDist = "mse",
        vector_dist: VectorDist = "mse",
        act: Activation = "silu",
        norm: bool = True,
    ) -> None:
        super().__init__()
        if image_dist not in ("mse", "normal"):
            raise ValueError(f"MultiDecoder: image_dist={image_dist!r}; use 'mse' or 'normal'")
        if vector_dist not in ("mse", "symlog_mse", "normal"):
            raise ValueError(
                f"MultiDecoder: vector_dist={vector_dist!r}; use 'mse', 'symlog_mse' or 'normal'"
            )
        self.cnn_shapes, self.mlp_shapes = select_keys(
            obs_space, cnn_keys, mlp_keys, "MultiDecoder"
        )
        self.cnn_keys, self.mlp_keys = list(self.cnn_shapes), list(self.mlp_shapes)
        self.image_dist, self.vector_dist = image_dist, vector_dist
        self.cnn: ConvDecoder | None = None
        self.mlp: nn.Sequential | None = None
        if self.cnn_keys:
            check_positive("MultiDecoder", cnn_depth=cnn_depth, cnn_kernel=cnn_kernel)
            size = image_size(self.cnn_shapes, cnn_min_res, "MultiDecoder")
            channels = sum(shape[-1] for shape in self.cnn_shapes.values())
            self.cnn = ConvDecoder(
                feat_dim,
                channels,
                size,
                cnn_depth,
                cnn_min_res,
                act=act,
                norm=norm,
                kernel=cnn_kernel,
            )
        if self.mlp_keys:
            self._sizes = [int(np.prod(shape)) for shape in self.mlp_shapes.values()]
            trunk = MLP(feat_dim, None, mlp_units, mlp_layers, act=act, norm=norm)
            self.mlp = nn.Sequential(trunk, nn.Linear(trunk.out_dim, sum(self._sizes)))

    def forward(self, feat: Tensor) -> dict[str, Distribution]:
        """Distributions over every selected key, batch shape ``feat.shape[:-1]``."""
        lead = feat.shape[:-1]
        dists: dict[str, Distribution] = {}
        if self.cnn is not None:
            # CHW -> HWC as a view (the decoder runs channels_last, so this is contiguous).
            images = self.cnn(feat).movedim(-3, -1)
            start = 0
            for key, shape in self.cnn_shapes.items():
                mean = images[..., start : start + shape[-1]]
                dists[key] = _make_dist(self.image_dist, mean, 3)
                start += shape[-1]
        if self.mlp is not None:
            out = self.mlp(feat).split(self._sizes, -1)
            for (key, shape), mean in zip(self.mlp_shapes.items(), out, strict=True):
                dists[key] = _make_dist(self.vector_dist, mean.reshape(*lead, *shape), len(shape))
        return dists
