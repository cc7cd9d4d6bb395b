"""Presets build and carry the papers' numbers; config field names equal constructor arguments."""

from __future__ import annotations

import dataclasses
import inspect

import gymnasium as gym
import numpy as np
import pytest
import torch

from rssm.models import (
    PRESET_SIZES,
    RSSM,
    MultiDecoder,
    MultiEncoder,
    WorldModel,
    WorldModelConfig,
    world_model_config,
)
from rssm.nn.heads import Head


def image_space(size: int = 64) -> gym.spaces.Dict:
    return gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8),
            "reward": gym.spaces.Box(-np.inf, np.inf, (), np.float32),
            "is_first": gym.spaces.Box(0, 1, (), bool),
            "is_terminal": gym.spaces.Box(0, 1, (), bool),
        }
    )


def test_config_field_names_equal_constructor_arguments():
    config = WorldModelConfig()
    targets = {
        "encoder": MultiEncoder.__init__,
        "decoder": MultiDecoder.__init__,
        "rssm": RSSM.__init__,
        "reward_head": Head.__init__,
        "cont_head": Head.__init__,
        "kl": RSSM.kl_loss,
    }
    for name, fn in targets.items():
        params = set(inspect.signature(fn).parameters)
        fields = {f.name for f in dataclasses.fields(getattr(config, name))}
        assert fields <= params, (name, sorted(fields - params))


@pytest.mark.parametrize(
    "name,size",
    [("planet", None), ("dreamer_v1", None), ("dreamer_v2", "dmc"), ("dreamer_v3", "xs")],
)
def test_presets_build_and_run(name, size):
    torch.manual_seed(0)
    model = WorldModel(image_space(), 3, world_model_config(name, size))
    B, T = 2, 3
    batch = {
        "image": torch.randint(0, 256, (B, T, 64, 64, 3), dtype=torch.uint8),
        "action": torch.zeros(B, T, 3),
        "reward": torch.zeros(B, T),
        "is_first": torch.tensor([[True, False, False]] * B),
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
    }
    out = model.loss(batch)
    assert torch.isfinite(out.loss)
    assert all(term.shape == (B, T) for term in out.terms.values())


def test_dreamer_v3_s_builds():
    model = WorldModel(image_space(), 6, world_model_config("dreamer_v3", "s"))
    assert model.rssm.deter_dim == 512 and model.rssm.stoch_dim == 32 * 32
    assert model.encoder.out_dim == 32 * 8 * 4 * 4


def test_preset_numbers():
    planet = world_model_config("planet")
    assert (planet.rssm.latent, planet.rssm.deter, planet.rssm.stoch) == ("gaussian", 200, 30)
    assert planet.rssm.min_std == 0.1 and planet.encoder.bit_depth == 5
    assert (planet.kl.scheme, planet.kl.free_nats, planet.predict_cont) == ("free_nats", 3.0, False)
    v1 = world_model_config("dreamer_v1")
    assert v1.reward_head.units == 400 and v1.kl.free_nats == 3.0
    v2 = world_model_config("dreamer_v2")
    assert (v2.rssm.deter, v2.rssm.stoch, v2.rssm.classes) == (600, 32, 32)
    assert (v2.kl.scheme, v2.kl.balance) == ("balance", 0.8)
    assert world_model_config("dreamer_v2", "dmc").rssm.deter == 200
    table = {"xs": (256, 256, 24, 1), "s": (512, 512, 32, 2), "m": (1024, 640, 48, 3),
             "l": (2048, 768, 64, 4), "xl": (4096, 1024, 96, 5)}  # fmt: skip
    for size, (deter, units, depth, layers) in table.items():
        c = world_model_config("dreamer_v3", size)
        assert (c.rssm.deter, c.rssm.units, c.encoder.cnn_depth, c.encoder.mlp_layers) == (
            deter, units, depth, layers)  # fmt: skip
        assert (c.rssm.gru, c.rssm.unimix, c.rssm.classes) == ("layernorm", 0.01, 32)
        assert c.encoder.symlog_inputs and c.reward_head.dist == "twohot"
        assert c.loss_scales == {"dyn": 0.5, "rep": 0.1} and c.kl.free_nats == 1.0
    big = world_model_config("dreamer_v3", "size400m")
    assert (big.rssm.deter, big.rssm.units, big.rssm.classes, big.encoder.cnn_depth) == (
        12288, 1536, 96, 96)  # fmt: skip
    assert (big.rssm.gru, big.rssm.gru_blocks, big.loss_scales["dyn"]) == ("block", 8, 1.0)
    assert world_model_config("dreamer_v3", "12m") == world_model_config("dreamer_v3", "size12m")
    assert set(PRESET_SIZES["dreamer_v3"]) >= {"xs", "xl", "size1m", "size400m"}


def test_unknown_preset_or_size():
    with pytest.raises(ValueError, match="unknown preset 'dreamer_v4'.*dreamer_v3.*planet"):
        world_model_config("dreamer_v4")
    with pytest.raises(ValueError, match="no size 'xxl'.*'xs'"):
        world_model_config("dreamer_v3", "xxl")
    with pytest.raises(ValueError, match="no size 's'"):
        world_model_config("planet", "s")


def test_presets_are_fresh_objects():
    a = world_model_config("dreamer_v3", "xs")
    a.loss_scales["dyn"] = 9.0
    a.rssm.deter = 1
    b = world_model_config("dreamer_v3", "xs")
    assert b.loss_scales["dyn"] == 0.5 and b.rssm.deter == 256
