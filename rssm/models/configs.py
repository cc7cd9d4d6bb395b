"""Typed configuration of a world model (presets: :mod:`rssm.models.presets`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rssm.kinds import Activation, GRUKind, ImageDist, Init, Initial, KLScheme, Latent, VectorDist

__all__ = [
    "DecoderConfig",
    "EncoderConfig",
    "HeadConfig",
    "KLConfig",
    "OvershootingConfig",
    "RSSMConfig",
    "WorldModelConfig",
]


@dataclass
class EncoderConfig:
    """Arguments of :class:`~rssm.models.encoder.MultiEncoder` (besides ``obs_space``)."""

    cnn_keys: str = "image"
    mlp_keys: str = "state"
    cnn_depth: int = 32
    cnn_min_res: int = 4
    cnn_kernel: int = 4
    mlp_units: int = 512
    mlp_layers: int = 2
    symlog_inputs: bool = False
    bit_depth: int = 8
    act: Activation = "silu"
    norm: bool = True


@dataclass
class DecoderConfig:
    """Arguments of :class:`~rssm.models.decoder.MultiDecoder` (besides feat dim and space)."""

    cnn_keys: str = "image"
    mlp_keys: str = "state"
    cnn_depth: int = 32
    cnn_min_res: int = 4
    cnn_kernel: int = 4
    mlp_units: int = 512
    mlp_layers: int = 2
    image_dist: ImageDist = "mse"
    vector_dist: VectorDist = "mse"
    act: Activation = "silu"
    norm: bool = True


@dataclass
class RSSMConfig:
    """Arguments of :class:`~rssm.models.rssm.RSSM` (besides action and embed dims)."""

    latent: Latent = "categorical"
    deter: int = 512
    stoch: int = 32
    classes: int = 32
    units: int = 512
    gru: GRUKind = "layernorm"
    gru_layers: int = 1
    gru_blocks: int = 1
    min_std: float = 0.1
    unimix: float = 0.01
    initial: Initial = "zeros"
    act: Activation = "silu"
    norm: bool = True
    action_clip: float = 0.0


@dataclass
class HeadConfig:
    """Arguments of :class:`~rssm.nn.heads.Head` (besides input dim and shape)."""

    dist: Literal["normal", "mse", "symlog_mse", "binary", "twohot"] = "twohot"
    units: int = 512
    layers: int = 2
    act: Activation = "silu"
    norm: bool = True
    std: float = 1.0
    bins: int = 255
    outscale: float = 1.0


@dataclass
class KLConfig:
    """Keyword arguments of :meth:`~rssm.models.rssm.RSSM.kl_loss`."""

    scheme: KLScheme = "dyn_rep"
    free_nats: float = 1.0
    balance: float = 0.8


@dataclass
class OvershootingConfig:
    """Latent overshooting (PlaNet, Hafner et al. 2019, §4): train multi-step prior predictions.

    For every start row ``t`` and distance ``d = 2 .. distance`` with ``t + d`` inside the sequence
    and no episode start in rows ``t+1 .. t+d``, the posterior at ``t`` is rolled forward open loop
    through the prior with the replayed actions (``RSSM.imagine``, sampled latents), and
    ``KL(sg(q(s_{t+d})) || p(s_{t+d} | s_{t+d-1}))`` of that rollout is clipped at ``kl.free_nats``.
    The loss term ``overshoot`` [B, T] holds, per start row, the mean over its valid distances (0
    where none); the one-step KL (``d = 1``) stays the ``kl`` / ``dyn`` term. The target
    posteriors are detached (as in PlaNet), the start posterior is not. Cost: ``distance`` prior
    steps from each of the B*T posteriors per update.

    Attributes:
        distance: the longest open-loop distance D (PlaNet's ablations: the sequence length - 1);
            0 or 1 turns overshooting off.
        reward: also predict the rewards from the open-loop states (term ``overshoot_reward``, the
            reward head's loss on the same rows).
    """

    distance: int = 0
    reward: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.distance, bool) or not isinstance(self.distance, int):
            raise ValueError(f"overshooting.distance must be an int, got {self.distance!r}")
        if self.distance < 0:
            raise ValueError(
                f"overshooting.distance={self.distance} must be >= 0 (0 or 1: off, D >= 2: "
                "open-loop distances 2..D)"
            )

    @property
    def enabled(self) -> bool:
        return self.distance >= 2

    @property
    def terms(self) -> list[str]:
        """The loss terms overshooting adds (none when off)."""
        if not self.enabled:
            return []
        return ["overshoot"] + (["overshoot_reward"] if self.reward else [])


@dataclass
class WorldModelConfig:
    """Everything that defines a world model; presets live in :mod:`rssm.models.presets`.

    Attributes:
        encoder, decoder, rssm: constructor arguments of those modules.
        reward_head: the reward head (``twohot``: symlog two-hot, V3; ``normal``/``mse``: V1/V2).
        cont_head: the continue head (``binary``), used when ``predict_cont``.
        predict_cont: learn a continue head (off for PlaNet, and for DMC in V2).
        kl: the KL scheme, see :meth:`RSSM.kl_loss`.
        overshooting: latent overshooting (off by default), see :class:`OvershootingConfig`.
        loss_scales: weight per loss term; keys are observation keys, ``reward``, ``cont`` and
            ``kl`` (schemes ``free_nats``/``balance``) or ``dyn``/``rep`` (``dyn_rep``), plus
            ``overshoot`` (and ``overshoot_reward``) with overshooting. Missing keys weigh 1;
            unknown keys are an error.
        init: ``fan_avg`` re-initialises every layer as DreamerV3's released code does
            (:func:`~rssm.nn.layers.init_fan_avg_`); ``torch`` keeps torch's defaults.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    rssm: RSSMConfig = field(default_factory=RSSMConfig)
    reward_head: HeadConfig = field(default_factory=HeadConfig)
    cont_head: HeadConfig = field(default_factory=lambda: HeadConfig(dist="binary"))
    predict_cont: bool = True
    kl: KLConfig = field(default_factory=KLConfig)
    overshooting: OvershootingConfig = field(default_factory=OvershootingConfig)
    loss_scales: dict[str, float] = field(default_factory=dict)
    init: Init = "torch"
