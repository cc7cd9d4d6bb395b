"""World models: the RSSM, observation encoder/decoder, the world model and its presets."""

from rssm.models.decoder import MultiDecoder
from rssm.models.encoder import MultiEncoder, denormalize_image, normalize_image
from rssm.models.presets import PRESET_SIZES, world_model_config
from rssm.models.rssm import RSSM, imagine
from rssm.models.world_model import (
    DecoderConfig,
    EncoderConfig,
    HeadConfig,
    KLConfig,
    OpenLoop,
    OvershootingConfig,
    RSSMConfig,
    WorldModel,
    WorldModelConfig,
    WorldModelOutput,
)
from rssm.types import RSSMState

__all__ = [
    "PRESET_SIZES",
    "RSSM",
    "DecoderConfig",
    "EncoderConfig",
    "HeadConfig",
    "KLConfig",
    "MultiDecoder",
    "MultiEncoder",
    "OpenLoop",
    "OvershootingConfig",
    "RSSMConfig",
    "RSSMState",
    "WorldModel",
    "WorldModelConfig",
    "WorldModelOutput",
    "denormalize_image",
    "imagine",
    "normalize_image",
    "world_model_config",
]
