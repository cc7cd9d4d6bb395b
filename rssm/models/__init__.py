"""World models: the RSSM, observation encoder/decoder, the world model and its presets."""

from rssm._lazy import attach

_EXPORTS = {
    "PRESET_SIZES": "rssm.models.presets",
    "RSSM": "rssm.models.rssm",
    "DecoderConfig": "rssm.models.configs",
    "EncoderConfig": "rssm.models.configs",
    "HeadConfig": "rssm.models.configs",
    "KLConfig": "rssm.models.configs",
    "MultiDecoder": "rssm.models.decoder",
    "MultiEncoder": "rssm.models.encoder",
    "OpenLoop": "rssm.models.world_model",
    "OvershootingConfig": "rssm.models.configs",
    "RSSMConfig": "rssm.models.configs",
    "RSSMState": "rssm.types",
    "WorldModel": "rssm.models.world_model",
    "WorldModelConfig": "rssm.models.configs",
    "WorldModelOutput": "rssm.models.world_model",
    "denormalize_image": "rssm.models.encoder",
    "imagine": "rssm.models.rssm",
    "normalize_image": "rssm.models.encoder",
    "world_model_config": "rssm.models.presets",
}
__getattr__, __dir__ = attach(globals(), _EXPORTS)

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
