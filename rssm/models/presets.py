"""Named world-model configurations of the papers (REFERENCE.md): versions are presets, not forks.

``world_model_config(name, size)`` returns a fresh :class:`WorldModelConfig`; the observation keys
default to ``image`` (CNN) and ``state`` (MLP) and are usually overridden per environment suite.

Deviations shared by all presets (docs/paper_deviations.md): the conv stacks use "same" padding
down to 4x4, so a 64x64 image gives a ``cnn_depth * 8 * 16`` embedding (4096 at depth 32, where
PlaNet/V1 had 1024 from valid padding down to 2x2); PlaNet's latent overshooting
(``WorldModelConfig.overshooting``) is off; the 2025 DreamerV3 sizes reuse the 2023 conv stack
(channel doubling, kernel 4) with ``depth = classes`` and an 8-block LayerNorm GRU, not the 2025
encoder.
"""

from __future__ import annotations

from collections.abc import Callable

from rssm.models.configs import (
    DecoderConfig,
    EncoderConfig,
    HeadConfig,
    KLConfig,
    RSSMConfig,
    WorldModelConfig,
)

__all__ = ["PRESET_SIZES", "world_model_config"]

# DreamerV3 2023 table: deter, units, cnn depth, mlp layers (32x32 categoricals).
V3_SIZES: dict[str, tuple[int, int, int, int]] = {
    "xs": (256, 256, 24, 1),
    "s": (512, 512, 32, 2),
    "m": (1024, 640, 48, 3),
    "l": (2048, 768, 64, 4),
    "xl": (4096, 1024, 96, 5),
}
# DreamerV3 2025 table: deter, hidden units, classes (= cnn depth); 32 groups, 8 GRU blocks.
V3_2025_SIZES: dict[str, tuple[int, int, int]] = {
    "size1m": (512, 64, 4),
    "size12m": (2048, 256, 16),
    "size25m": (3072, 384, 24),
    "size50m": (4096, 512, 32),
    "size100m": (6144, 768, 48),
    "size200m": (8192, 1024, 64),
    "size400m": (12288, 1536, 96),
}
PRESET_SIZES: dict[str, tuple[str | None, ...]] = {
    "planet": (None,),
    "dreamer_v1": (None,),
    "dreamer_v2": ("atari", "dmc"),
    "dreamer_v3": (*V3_SIZES, *V3_2025_SIZES),
}
_DEFAULT_SIZE = {"dreamer_v2": "atari", "dreamer_v3": "s"}


def _planet(size: str | None) -> WorldModelConfig:
    """PlaNet (Hafner et al. 2019): Gaussian 200/30, free nats 3, 5-bit images, no continue head."""
    return WorldModelConfig(
        encoder=EncoderConfig(
            cnn_depth=32, mlp_units=300, mlp_layers=2, bit_depth=5, act="relu", norm=False
        ),
        decoder=DecoderConfig(
            cnn_depth=32,
            mlp_units=300,
            mlp_layers=2,
            image_dist="normal",
            vector_dist="normal",
            act="relu",
            norm=False,
        ),
        rssm=RSSMConfig(
            latent="gaussian",
            deter=200,
            stoch=30,
            units=200,
            gru="gru",
            min_std=0.1,
            unimix=0.0,
            act="elu",
            norm=False,
        ),
        reward_head=HeadConfig(dist="normal", units=300, layers=2, act="relu", norm=False),
        cont_head=HeadConfig(dist="binary", units=300, layers=2, act="relu", norm=False),
        predict_cont=False,
        kl=KLConfig(scheme="free_nats", free_nats=3.0),
    )


def _dreamer_v1(size: str | None) -> WorldModelConfig:
    """Dreamer V1 (Hafner et al. 2020): PlaNet's model with 8-bit images and 400-unit heads."""
    config = _planet(size)
    config.encoder.bit_depth = 8
    config.encoder.mlp_units = config.decoder.mlp_units = 400
    config.reward_head = HeadConfig(dist="normal", units=400, layers=2, act="elu", norm=False)
    config.cont_head = HeadConfig(dist="binary", units=400, layers=3, act="elu", norm=False)
    return config


def _dreamer_v2(size: str | None) -> WorldModelConfig:
    """DreamerV2 (Hafner et al. 2021): 32x32 categoricals, KL balancing 0.8.

    ``atari``: deter 600, CNN depth 48, no free nats, KL scale 0.1, continue scale 5.
    ``dmc``: deter 200, CNN depth 32, free nats 1, KL scale 1, no continue head.
    """
    atari = size == "atari"
    deter, depth = (600, 48) if atari else (200, 32)
    head = HeadConfig(dist="normal", units=400, layers=4, act="elu", norm=False)
    return WorldModelConfig(
        encoder=EncoderConfig(cnn_depth=depth, mlp_units=400, mlp_layers=4, act="elu", norm=False),
        decoder=DecoderConfig(
            cnn_depth=depth,
            mlp_units=400,
            mlp_layers=4,
            image_dist="normal",
            vector_dist="normal",
            act="elu",
            norm=False,
        ),
        # V2 normalises only the GRU; here the RSSM's input/output layers are normalised too.
        rssm=RSSMConfig(
            latent="categorical",
            deter=deter,
            stoch=32,
            classes=32,
            units=deter,
            gru="layernorm",
            unimix=0.0,
            act="elu",
            norm=True,
        ),
        reward_head=head,
        cont_head=HeadConfig(dist="binary", units=400, layers=4, act="elu", norm=False),
        predict_cont=atari,
        kl=KLConfig(scheme="balance", free_nats=0.0 if atari else 1.0, balance=0.8),
        loss_scales={"kl": 0.1, "cont": 5.0} if atari else {"kl": 1.0},
    )


def _dreamer_v3(size: str | None) -> WorldModelConfig:
    """DreamerV3: symlog inputs, two-hot reward, dyn/rep KL with free bits, unimix 1%.

    2023 sizes ``xs s m l xl`` (LayerNorm GRU, dyn 0.5, rep 0.1) and 2025 sizes ``size1m ...
    size400m`` (8-block GRU, hidden = MLP units, classes = CNN depth, dyn 1.0, rep 0.1).
    """
    assert size is not None, "dreamer_v3 needs a size"
    if size in V3_SIZES:
        deter, units, depth, layers = V3_SIZES[size]
        classes, head_layers, gru, blocks, dyn = 32, layers, "layernorm", 1, 0.5
    else:
        deter, units, classes = V3_2025_SIZES[size]
        depth, layers, head_layers, gru, blocks, dyn = classes, 3, 1, "block", 8, 1.0
    return WorldModelConfig(
        encoder=EncoderConfig(
            cnn_depth=depth, mlp_units=units, mlp_layers=layers, symlog_inputs=True
        ),
        decoder=DecoderConfig(
            cnn_depth=depth,
            mlp_units=units,
            mlp_layers=layers,
            image_dist="mse",
            vector_dist="symlog_mse",
        ),
        rssm=RSSMConfig(
            latent="categorical",
            deter=deter,
            stoch=32,
            classes=classes,
            units=units,
            gru=gru,
            gru_blocks=blocks,
            unimix=0.01,
            initial="learned",
            action_clip=1.0,
        ),
        reward_head=HeadConfig(
            dist="twohot", units=units, layers=head_layers, bins=255, outscale=0.0
        ),
        cont_head=HeadConfig(dist="binary", units=units, layers=head_layers),
        predict_cont=True,
        kl=KLConfig(scheme="dyn_rep", free_nats=1.0),
        loss_scales={"dyn": dyn, "rep": 0.1},
    )


_BUILDERS: dict[str, Callable[[str | None], WorldModelConfig]] = {
    "planet": _planet,
    "dreamer_v1": _dreamer_v1,
    "dreamer_v2": _dreamer_v2,
    "dreamer_v3": _dreamer_v3,
}


def world_model_config(name: str, size: str | None = None) -> WorldModelConfig:
    """A fresh world-model config of a paper preset.

    Args:
        name: ``planet``, ``dreamer_v1``, ``dreamer_v2`` or ``dreamer_v3``.
        size: ``dreamer_v2``: ``atari`` (default) or ``dmc``; ``dreamer_v3``: ``xs s m l xl``
            (2023, default ``s``) or ``size1m size12m size25m size50m size100m size200m
            size400m`` (2025; ``12m`` is accepted for ``size12m``); None for the others.

    Raises:
        ValueError: unknown name or size (the message lists the known ones).
    """
    if name not in _BUILDERS:
        raise ValueError(f"world_model_config: unknown preset {name!r}; known: {sorted(_BUILDERS)}")
    if size is None:
        size = _DEFAULT_SIZE.get(name)
    elif f"size{size}" in PRESET_SIZES[name]:
        size = f"size{size}"
    if size not in PRESET_SIZES[name]:
        known = [s for s in PRESET_SIZES[name] if s is not None] or ["None (no sizes)"]
        raise ValueError(f"world_model_config: {name!r} has no size {size!r}; known: {known}")
    return _BUILDERS[name](size)
