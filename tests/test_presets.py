"""Every preset loads, every sensible combination builds, and the YAML presets agree with the
Python world-model presets and the papers' parameter counts."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from rssm import config as config_lib
from rssm.agents import PlanetAgent
from rssm.behavior import ActorCritic
from rssm.models import WorldModel, world_model_config
from rssm.models.presets import V3_2025_SIZES, V3_SIZES
from rssm.run.train import Config

ALGORITHMS = ["planet", "dreamer_v1", "dreamer_v2", "dreamer_v3"]
SUITES = [None, "dmc_vision", "dmc_proprio", "atari"]
SIZES = [*V3_SIZES, *V3_2025_SIZES]
# DreamerV3 2023 paper: parameter counts of the sizes (millions).
PAPER_2023 = {"xs": 8, "s": 18, "m": 37, "l": 77, "xl": 200}

IMAGE = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
STATE = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)


def obs_space(suite: str | None) -> gym.spaces.Dict:
    return gym.spaces.Dict({"state": STATE} if suite == "dmc_proprio" else {"image": IMAGE})


def build_on_meta(config: Config, suite: str | None) -> int:
    """World model and (for Dreamer) actor-critic without allocating memory; returns params."""
    discrete = suite == "atari"
    with torch.device("meta"):
        model = WorldModel(obs_space(suite), 6, config.world_model)
        modules = [model]
        if config.agent == "dreamer":
            behavior = ActorCritic(
                model.rssm.feat_dim, 6, config.dreamer.actor_critic, discrete=discrete
            )
            modules += [behavior.actor, behavior.critic]
    return sum(p.numel() for module in modules for p in module.parameters())


def test_every_preset_loads_on_its_own():
    names = config_lib.available_presets()
    assert {"planet", "dreamer_v1", "dreamer_v2", "dreamer_v3", "debug", "cpu"} <= set(names)
    assert {"dmc_vision", "dmc_proprio", "atari", *SIZES} <= set(names)
    for name in names:
        assert isinstance(config_lib.load_presets(Config, [name]), Config), name


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_algorithm_and_suite_compose_and_build(algorithm, suite):
    names = [algorithm] + ([suite] if suite else [])
    config = config_lib.load_presets(Config, names)
    assert config.agent == ("planet" if algorithm == "planet" else "dreamer")
    if suite is not None:
        assert config.env.name.startswith(("dmc:", "atari:"))
    if algorithm == "planet" and suite == "atari":  # CEM plans continuous actions only
        with pytest.raises(ValueError, match="discrete"):
            PlanetAgent(obs_space(suite), 6, config.world_model, config.planet, discrete=True)
        return
    assert build_on_meta(config, suite) > 5e5  # full-size models (debug is < 2e5)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_debug_is_tiny_after_any_algorithm(algorithm):
    config = config_lib.load_presets(Config, [algorithm, "debug"])
    assert config.run.train_ratio is None and config.run.steps == 200
    assert build_on_meta(config, None) < 200_000


@pytest.mark.parametrize("size", SIZES)
def test_v3_sizes_compose_with_suites(size):
    config = config_lib.load_presets(Config, ["dreamer_v3", "dmc_vision", size])
    assert config.world_model == world_model_config("dreamer_v3", size)
    units = config.world_model.rssm.units
    assert config.dreamer.actor_critic.actor.units == units
    assert config.dreamer.actor_critic.critic.units == units
    params = build_on_meta(config, "dmc_vision") / 1e6
    if size in PAPER_2023:  # the 2023 table's counts, within 10%
        assert 0.9 < params / PAPER_2023[size] < 1.1, (size, params)
    else:  # the 2025 names are nominal; the 2023 conv stack makes ours up to ~25% larger
        nominal = float(size.removeprefix("size").removesuffix("m"))
        assert 0.8 < params / nominal < 1.3, (size, params)


# world_model_config(name, size) loads the YAML presets; what it returns for every name and size
# is pinned (captured from the Python builders it replaced), parameter counts with it.
WORLD_MODELS = Path(__file__).parent / "golden" / "world_model_presets.json"


def test_world_model_configs_equal_the_pinned_ones():
    from rssm.models.presets import PRESET_SIZES

    golden = json.loads(WORLD_MODELS.read_text())
    seen = []
    for name, sizes in PRESET_SIZES.items():
        for size in sizes:
            key = f"{name}:{size}" if size else name
            got = json.loads(json.dumps(dataclasses.asdict(world_model_config(name, size)),
                                        sort_keys=True, default=str))  # fmt: skip
            assert got == golden[key], key
            seen.append(key)
    assert sorted(seen) == sorted(golden)


@pytest.mark.parametrize(
    ("stack", "name", "size"),
    [(["planet"], "planet", None), (["dreamer_v1"], "dreamer_v1", None),
     (["dreamer_v2"], "dreamer_v2", "atari"), (["dreamer_v2", "v2_dmc"], "dreamer_v2", "dmc"),
     (["dreamer_v3"], "dreamer_v3", "s"),
     (["dreamer_v3", "dmc_proprio", "xs"], "dreamer_v3", "xs")],
)  # fmt: skip
def test_run_presets_hold_the_named_world_models(stack, name, size):
    config = config_lib.load_presets(Config, stack)
    assert config.world_model == world_model_config(name, size)


def test_v2_dmc_states_the_papers_dmc_setting():
    config = config_lib.load_presets(Config, ["dreamer_v2", "v2_dmc"])
    model, ac = config.world_model, config.dreamer.actor_critic
    assert (model.rssm.deter, model.encoder.cnn_depth, model.predict_cont) == (200, 32, False)
    assert model.kl.free_nats == 1.0 and model.loss_scales == {"kl": 1.0}
    assert (ac.entropy, ac.discount, ac.actor_grad_cont) == (1e-4, 0.99, "dynamics")


def test_world_model_config_returns_a_fresh_copy():
    a = world_model_config("dreamer_v3", "xs")
    a.rssm.deter = 7
    assert world_model_config("dreamer_v3", "xs").rssm.deter == 256


def test_versions_differ_by_options_of_shared_parts():
    v1, v2, v3 = (config_lib.load_presets(Config, [f"dreamer_v{i}"]) for i in (1, 2, 3))
    ac1, ac2, ac3 = (v.dreamer.actor_critic for v in (v1, v2, v3))
    assert ac1.actor_grad_cont == "dynamics" and ac1.actor.dist_cont == "tanh_normal"
    assert ac1.critic.dist == "normal" and not ac1.return_norm
    assert ac2.slow_target and ac2.slow_critic_every == 100
    assert ac3.critic.dist == "twohot" and ac3.return_norm and ac3.actor_grad_disc == "reinforce"
    assert v3.run.train_ratio == 512 and (v3.replay.batch_size, v3.replay.length) == (16, 64)
    assert v1.world_model.rssm.latent == "gaussian" and v3.world_model.rssm.latent == "categorical"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_cpu_is_small_after_any_algorithm(algorithm):
    config = config_lib.load_presets(Config, [algorithm, "cpu"])
    assert config.run.train_ratio is None and config.env.name == "builtin:pointmass"
    assert build_on_meta(config, None) < 3_000_000  # (64x64 images here; the preset uses 32)


# Every algorithm alone, with each suite/speed preset, and DreamerV3 with each size (alone and
# after dmc_proprio): what they resolve to is pinned, so that rewriting a preset (e.g. as a diff
# with pattern keys) changes nothing by accident.
GOLDEN = Path(__file__).parent / "golden" / "resolved_presets.json"
_ALGOS = ["planet", "dreamer_v1", "dreamer_v2", "dreamer_v3"]
_SIZES = ["xxs", "xs", "s", "m", "l", "xl", "size1m", "size12m", "size25m", "size50m",
          "size100m", "size200m", "size400m"]  # fmt: skip
COMBOS = (
    [[a] for a in _ALGOS]
    + [[a, extra] for extra in ("cpu", "debug", "dmc_proprio", "dmc_vision", "atari")
       for a in _ALGOS]
    + [["dreamer_v3", s] for s in _SIZES]
    + [["dreamer_v3", "dmc_proprio", s] for s in _SIZES]
)  # fmt: skip


def _resolved(names: list[str]) -> dict:
    """The keys a preset stack sets away from the defaults, as plain JSON values."""
    changed = config_lib.diff(Config(), config_lib.load_presets(Config, names))
    return json.loads(json.dumps({k: b for k, (_, b) in changed.items()}, default=str))


def test_presets_resolve_to_the_pinned_configs():
    if os.environ.get("RSSM_REGENERATE_GOLDEN"):  # after a deliberate change of a preset
        golden = {"+".join(names): _resolved(names) for names in COMBOS}
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert sorted(golden) == sorted("+".join(names) for names in COMBOS)
    for names in COMBOS:
        want, got = golden["+".join(names)], _resolved(names)
        changed = {k: (want.get(k), got.get(k)) for k in want.keys() | got.keys()
                   if want.get(k) != got.get(k)}  # fmt: skip
        assert not changed, f"{'+'.join(names)} resolves differently: {changed}"


def test_pattern_keys_set_every_match_and_explicit_keys_win(tmp_path):
    (tmp_path / "wide.yaml").write_text(
        "patterns:\n  '.*\\.(units|mlp_units)': 96\nworld_model:\n  rssm: {units: 32}\n"
    )
    v3 = config_lib.load_presets(Config, ["dreamer_v3"])
    config = config_lib.load_presets(Config, ["wide"], directory=tmp_path, base=v3)
    assert config.world_model.encoder.mlp_units == 96
    assert config.dreamer.actor_critic.critic.units == 96
    assert config.world_model.rssm.units == 32, "the explicit key wins over the pattern"
    (tmp_path / "bad.yaml").write_text("patterns:\n  'world_model\\.nothing': 1\n")
    with pytest.raises(ValueError, match=r"preset 'bad'.*matches no config key"):
        config_lib.load_presets(Config, ["bad"], directory=tmp_path)


@pytest.mark.parametrize(
    ("name", "base"), [("dreamer_v2", "dreamer_v3"), ("dreamer_v1", "dreamer_v2")]
)
def test_an_algorithm_preset_states_exactly_its_differences_from_its_base(name, base):
    """The keys a diff preset sets are the keys where its resolved config differs from its
    base's: nothing repeated, nothing missing."""
    from rssm.config.core import Replace, _read_yaml

    def dotted(data, prefix=""):  # a !replace mapping is one value, as the diff sees it
        for key, value in data.items():
            if isinstance(value, dict) and not isinstance(value, Replace):
                yield from dotted(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    data = dict(_read_yaml(config_lib.PRESETS_DIR / f"{name}.yaml"))
    assert data.pop("base") == base
    stated = set(dotted(data))
    resolved = config_lib.diff(config_lib.load_presets(Config, [base]),
                               config_lib.load_presets(Config, [name]))  # fmt: skip
    assert stated == set(resolved)
    assert config_lib.presets.with_bases([name]) == [*config_lib.presets.with_bases([base]), name]


def test_bases_are_applied_first_and_cycles_and_unknown_bases_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("seed: 1\nreplay: {batch_size: 7}\n")
    (tmp_path / "b.yaml").write_text("base: a\nseed: 2\n")
    (tmp_path / "c.yaml").write_text("base: [b]\nworld_model: {loss_scales: !replace {kl: 2.0}}\n")
    config = config_lib.load_presets(Config, ["c"], directory=tmp_path)
    assert (config.seed, config.replay.batch_size) == (2, 7)
    assert config.world_model.loss_scales == {"kl": 2.0}  # the base's keys are gone
    merged = config_lib.merge(config, {"world_model": {"loss_scales": {"dyn": 1.0}}})
    assert merged.world_model.loss_scales == {"kl": 2.0, "dyn": 1.0}  # a plain mapping updates
    (tmp_path / "d.yaml").write_text("base: e\n")
    (tmp_path / "e.yaml").write_text("base: d\n")
    with pytest.raises(ValueError, match=r"each other's base: d -> e -> d"):
        config_lib.load_presets(Config, ["d"], directory=tmp_path)
    (tmp_path / "f.yaml").write_text("base: nope\n")
    with pytest.raises(ValueError, match=r"unknown preset 'nope' \(the base of 'f'\)"):
        config_lib.load_presets(Config, ["f"], directory=tmp_path)
