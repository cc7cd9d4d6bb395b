"""Typed config machinery: building, merging, overrides, presets, files, help and diff."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from rssm import config as cfg
from rssm.models.world_model import WorldModelConfig


@dataclass(frozen=True)
class Inner:
    size: int = 3
    rate: float = 0.5
    kind: Literal["a", "b"] = "a"
    name: str | None = None


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    other: Inner = field(default_factory=lambda: Inner(kind="b"))
    flag: bool = False
    shape: tuple[int, ...] = (64, 64)
    pair: tuple[int, str] = (1, "x")
    keys: list[str] = field(default_factory=lambda: ["image"])
    scales: dict[str, float] = field(default_factory=lambda: {"kl": 1.0})
    logdir: Path | None = None
    maybe: Inner | None = None


@dataclass
class Required:
    count: int
    label: str = "x"


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# --- from_dict ---------------------------------------------------------------------------------


def test_from_dict_builds_nested_and_converts():
    data = {
        "inner": {"size": 5, "rate": 2, "kind": "b", "name": "n"},
        "flag": True,
        "shape": [32, 32, 3],
        "pair": [2, "y"],
        "scales": {"image": 1, "kl": 0.5},
        "logdir": "runs/a",
        "maybe": {"size": 7},
    }
    before = copy.deepcopy(data)
    out = cfg.from_dict(Outer, data)
    assert out.inner == Inner(size=5, rate=2.0, kind="b", name="n")
    assert type(out.inner.rate) is float
    assert out.other == Inner(kind="b")  # untouched section keeps its parent's default factory
    assert out.shape == (32, 32, 3) and out.pair == (2, "y")
    assert out.scales == {"image": 1.0, "kl": 0.5} and type(out.scales["image"]) is float
    assert out.logdir == Path("runs/a") and out.maybe == Inner(size=7)
    assert data == before, "from_dict modified its input"
    out.scales["x"] = 3.0
    assert "x" not in data["scales"], "result shares a dict with the input"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"flag": 1}, ["'flag'", "bool", "1", "int"]),
        ({"flag": "true"}, ["'flag'", "bool", "'true'"]),
        ({"inner": {"size": True}}, ["'inner.size'", "int", "True", "bool"]),
        ({"inner": {"size": 2.0}}, ["'inner.size'", "int", "2.0", "float"]),
        ({"inner": {"rate": "abc"}}, ["'inner.rate'", "float", "'abc'"]),
        ({"inner": {"rate": False}}, ["'inner.rate'", "float", "False"]),
        ({"inner": {"kind": "c"}}, ["'inner.kind'", "'a'", "'b'", "'c'"]),
        ({"inner": {"name": 3}}, ["'inner.name'", "str", "3"]),
        ({"inner": 3}, ["'inner'", "Inner", "3"]),
        ({"shape": "64"}, ["'shape'", "tuple[int, ...]", "'64'"]),
        ({"shape": [64, "x"]}, ["'shape[1]'", "int", "'x'"]),
        ({"pair": [1]}, ["'pair'", "tuple[int, str]", "2 items"]),
        ({"keys": ["a", 1]}, ["'keys[1]'", "str", "1"]),
        ({"scales": {"kl": "big"}}, ["'scales.kl'", "float", "'big'"]),
        ({"scales": [1.0]}, ["'scales'", "dict[str, float]"]),
        ({"maybe": {"kind": "z"}}, ["'maybe.kind'", "'a'", "'b'"]),
    ],
)
def test_from_dict_rejects_wrong_types_naming_key_type_and_value(data, words):
    message = error_of(cfg.from_dict, Outer, data)
    for word in words:
        assert word in message, (word, message)


def test_from_dict_unknown_key_names_dotted_key_and_closest_names():
    message = error_of(cfg.from_dict, Outer, {"inner": {"sise": 1}})
    assert "'inner.sise'" in message and "'inner.size'" in message
    message = error_of(cfg.from_dict, Outer, {"flg": True})
    assert "'flg'" in message and "'flag'" in message


def test_from_dict_required_fields():
    assert cfg.from_dict(Required, {"count": 2}) == Required(count=2)
    assert "count" in error_of(cfg.from_dict, Required, {"label": "y"})


def test_from_dict_accepts_ints_for_floats_but_never_bools_for_ints():
    assert cfg.from_dict(Inner, {"rate": 1}).rate == 1.0
    assert "bool" in error_of(cfg.from_dict, Inner, {"size": False})
    assert cfg.from_dict(Inner, {"name": None}).name is None


# --- merge -------------------------------------------------------------------------------------


def test_merge_returns_new_instance_and_never_mutates():
    base = Outer()
    data = {"inner": {"size": 9}, "scales": {"image": 2.0}, "keys": ["a", "b"]}
    base_before, data_before = copy.deepcopy(base), copy.deepcopy(data)
    out = cfg.merge(base, data)
    assert base == base_before and data == data_before
    assert out.inner == Inner(size=9) and out.other == base.other  # frozen section, partial update
    assert out.scales == {"kl": 1.0, "image": 2.0}, "dict fields merge key by key"
    assert out.keys == ["a", "b"], "lists replace"
    assert out.scales is not base.scales and out.keys is not base.keys
    out.scales["kl"] = 5.0
    assert base.scales["kl"] == 1.0


def test_merge_builds_absent_optional_section_and_sets_it_to_none():
    out = cfg.merge(Outer(), {"maybe": {"rate": 0.25}})
    assert out.maybe == Inner(rate=0.25)
    assert cfg.merge(out, {"maybe": {"size": 1}}).maybe == Inner(size=1, rate=0.25)
    assert cfg.merge(out, {"maybe": None}).maybe is None


def test_merge_rejects_unknown_and_wrong_values():
    assert "'inner.kindd'" in error_of(cfg.merge, Outer(), {"inner": {"kindd": "a"}})
    assert "'scales.x'" in error_of(cfg.merge, Outer(), {"scales": {"x": "y"}})


# --- apply_overrides ---------------------------------------------------------------------------


def test_overrides_both_forms_in_order_and_typed():
    base = Outer()
    tokens = ["--inner.size", "7", "--inner.rate=1e-4", "--shape", "[8, 8]", "--inner.size=8"]
    before = list(tokens)
    out = cfg.apply_overrides(base, tokens)
    assert tokens == before and base == Outer()
    assert out.inner.size == 8, "a later override wins"
    assert out.inner.rate == pytest.approx(1e-4) and type(out.inner.rate) is float
    assert out.shape == (8, 8)
    assert cfg.diff(base, out) == {
        "inner.size": (3, 8),
        "inner.rate": (0.5, 1e-4),
        "shape": ((64, 64), (8, 8)),
    }


def test_overrides_yaml_values_fall_back_to_raw_text_for_strings():
    out = cfg.apply_overrides(
        Outer(), ["--inner.name", "512", "--keys", "[a, b]", "--flag", "true"]
    )
    assert out.inner.name == "512" and out.keys == ["a", "b"] and out.flag is True
    assert cfg.apply_overrides(Outer(), ["--inner.name", "null"]).inner.name is None
    assert cfg.apply_overrides(Outer(), ["--logdir", "runs/x"]).logdir == Path("runs/x")


def test_overrides_set_dict_entries_and_accept_mappings():
    out = cfg.apply_overrides(Outer(), ["--scales.image", "2"])
    assert out.scales == {"kl": 1.0, "image": 2.0}
    out = cfg.apply_overrides(Outer(), {"--inner.size": "4", "flag": True, "maybe.kind": "b"})
    assert out.inner.size == 4 and out.flag is True and out.maybe == Inner(kind="b")


@pytest.mark.parametrize(
    ("tokens", "words"),
    [
        (["--inner.size"], ["--inner.size", "needs a value"]),
        (["--inner.size", "--flag", "true"], ["--inner.size", "needs a value"]),
        (["inner.size", "3"], ["'inner.size'", "--key value"]),
        (["--inner.sizee", "3"], ["'inner.sizee'", "'inner.size'"]),
        (["--size", "3"], ["'size'", "'inner.size'"]),
        (["--inner.size.x", "3"], ["'inner.size'", "not a section"]),
        (["--inner.size", "3.5"], ["'inner.size'", "int", "3.5"]),
        (["--flag", "1"], ["'flag'", "bool", "1"]),
        (["--inner.kind", "c"], ["'inner.kind'", "'a'", "'b'"]),
    ],
)
def test_override_errors_name_the_key(tokens, words):
    message = error_of(cfg.apply_overrides, Outer(), tokens)
    for word in words:
        assert word in message, (word, message)


def test_override_dash_and_underscore_are_not_interchangeable():
    message = error_of(cfg.apply_overrides, WorldModelConfig(), ["--predict-cont", "false"])
    assert "'predict-cont'" in message and "'predict_cont'" in message
    assert "not interchangeable" in message


def test_overrides_reject_a_plain_string():
    with pytest.raises(TypeError, match="list of tokens"):
        cfg.apply_overrides(Outer(), "--flag true")


# --- the world model's real config -------------------------------------------------------------


def test_world_model_config_round_trip_and_single_leaf_override():
    base = WorldModelConfig(loss_scales={"image": 1.0})
    plain = cfg.to_dict(base)
    assert cfg.from_dict(WorldModelConfig, plain) == base
    out = cfg.apply_overrides(base, ["--rssm.deter", "256"])
    assert out.rssm.deter == 256 and base.rssm.deter == 512
    assert cfg.diff(base, out) == {"rssm.deter": (512, 256)}
    assert cfg.apply_overrides(base, ["--rssm.latent=gaussian"]).rssm.latent == "gaussian"


def test_world_model_config_errors():
    base = WorldModelConfig()
    message = error_of(cfg.apply_overrides, base, ["--rssm.latent", "gausian"])
    assert "'rssm.latent'" in message and "'gaussian'" in message and "'categorical'" in message
    message = error_of(cfg.apply_overrides, base, ["--rssm.detr", "3"])
    assert "'rssm.detr'" in message and "'rssm.deter'" in message
    message = error_of(cfg.apply_overrides, base, ["--kl.free_nats", "abc"])
    assert "'kl.free_nats'" in message and "float" in message and "'abc'" in message


def test_world_model_help_lists_every_leaf():
    text = cfg.help_text(WorldModelConfig)
    leaves = cfg.flatten(WorldModelConfig())
    assert len(leaves) == len(text.splitlines())
    for key in leaves:
        assert f"--{key} " in text, key
    assert (
        "--cont_head.dist" in text and "binary" in text.split("--cont_head.dist")[1].split("\n")[0]
    )


# --- presets -----------------------------------------------------------------------------------


def write_presets(directory: Path, **fragments: str) -> Path:
    for name, text in fragments.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


def test_presets_apply_in_order_later_wins(tmp_path):
    directory = write_presets(
        tmp_path,
        first="inner: {size: 5, rate: 1e-3}\nscales: {image: 2}\n",
        second="inner:\n  size: 6\nscales: {reward: 3}\nflag: true\n",
        empty="",
    )
    assert cfg.available_presets(directory) == ["empty", "first", "second"]
    out = cfg.load_presets(Outer, ["first", "empty", "second"], directory=directory)
    assert out.inner == Inner(size=6, rate=1e-3)
    assert out.scales == {"kl": 1.0, "image": 2.0, "reward": 3.0} and out.flag is True
    out = cfg.load_presets(Outer, ["second", "first"], directory=directory)
    assert out.inner.size == 5
    base = Outer(flag=False, keys=["x"])
    out = cfg.load_presets(Outer, ["second"], directory=directory, base=base)
    assert out.keys == ["x"] and out.flag is True and base.flag is False
    assert cfg.load_presets(Outer, [], directory=directory) == Outer()


def test_preset_errors(tmp_path):
    directory = write_presets(tmp_path, first="inner: {size: 5}\n", bad="inner: {sise: 5}\n")
    message = error_of(cfg.load_presets, Outer, ["frist"], directory=directory)
    assert "'frist'" in message and "bad, first" in message and "'first'" in message
    message = error_of(cfg.load_presets, Outer, ["bad"], directory=directory)
    assert "'bad'" in message and "'inner.sise'" in message and "'inner.size'" in message
    (tmp_path / "list.yaml").write_text("- 1\n")
    assert "mapping" in error_of(cfg.load_presets, Outer, ["list"], directory=directory)
    assert "none" in error_of(cfg.load_presets, Outer, ["x"], directory=tmp_path / "missing")


# --- files -------------------------------------------------------------------------------------


def test_save_load_round_trip_is_atomic(tmp_path):
    config = Outer(
        inner=Inner(rate=float("inf"), name="n"),
        shape=(1, 2),
        logdir=Path("runs/a"),
        maybe=Inner(kind="b"),
        scales={"image": 1e-5},
    )
    path = tmp_path / "run" / "config.yaml"
    cfg.save(config, path)
    cfg.save(config, path)  # overwriting works too
    assert os.listdir(path.parent) == ["config.yaml"], "a temp file was left behind"
    loaded = cfg.load(Outer, path)
    assert loaded == config and math.isinf(loaded.inner.rate)
    assert cfg.to_dict(loaded)["shape"] == [1, 2] and cfg.to_dict(loaded)["logdir"] == "runs/a"


def test_failed_save_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    cfg.save(Outer(), path)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        cfg.save(Outer(flag=True), path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["config.yaml"]
    assert cfg.load(Outer, path) == Outer()


def test_load_errors_name_file_and_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("inner: {size: big}\n")
    message = error_of(cfg.load, Outer, path)
    assert str(path) in message and "'inner.size'" in message and "'big'" in message


# --- inspection --------------------------------------------------------------------------------


def test_describe_every_leaf_with_type_and_default():
    rows = {key: (tp, default) for key, tp, default in cfg.describe(Outer)}
    assert rows["inner.size"] == ("int", "3")
    assert rows["inner.kind"] == ("{a,b}", "a")
    assert rows["other.kind"] == ("{a,b}", "b"), "section defaults come from the default factory"
    assert rows["inner.name"] == ("str | None", "null")
    assert rows["shape"] == ("tuple[int, ...]", "[64, 64]")
    assert rows["scales"] == ("dict[str, float]", "{kl: 1.0}")
    assert rows["maybe"] == ("Inner | None", "null")
    assert rows["logdir"] == ("Path | None", "null")
    assert len(rows) == 4 + 4 + 7
    assert cfg.describe(Required)[0] == ("count", "int", "(required)")
    current = {k: d for k, _, d in cfg.describe(Outer(flag=True))}
    assert current["flag"] == "true", "an instance describes its current values"


def test_help_text_is_aligned():
    lines = cfg.help_text(Outer).splitlines()
    assert len(lines) == len(cfg.describe(Outer))
    type_columns = {
        line.index(tp) for line, (_, tp, _) in zip(lines, cfg.describe(Outer), strict=True)
    }
    assert len(type_columns) == 1, lines
    assert lines[0].split() == ["--inner.size", "int", "3"]


def test_diff():
    a = Outer()
    assert cfg.diff(a, copy.deepcopy(a)) == {}
    b = dataclasses.replace(a, inner=Inner(size=4), scales={"kl": 2.0}, maybe=Inner())
    assert cfg.diff(a, b) == {
        "inner.size": (3, 4),
        "scales": ({"kl": 1.0}, {"kl": 2.0}),
        "maybe": (None, cfg.to_dict(Inner())),
    }
    nan = Outer(inner=Inner(rate=float("nan")))
    assert cfg.diff(nan, copy.deepcopy(nan)) == {}
    with pytest.raises(TypeError):
        cfg.diff(a, Inner())


def test_train_schedule_conflicts_name_both_keys_and_their_sources():
    from rssm.run.run_config import check_train_schedule
    from rssm.run.train import Config

    def compose(presets, overrides):
        config = cfg.apply_overrides(cfg.load_presets(Config, presets), overrides)
        check_train_schedule(config, cfg.layers(presets, overrides))
        return config

    # a ratio given after a preset's every/steps schedule replaces it: the later layer decides
    assert compose(["dreamer_v1"], ["--run.train_ratio", "512"]).run.train_ratio == 512
    # a preset that turns the ratio off and sets every/steps (cpu after dreamer_v3) is fine
    assert compose(["dreamer_v3", "cpu"], []).run.train_every == 500
    # a schedule given at or after the ratio would be ignored silently: an error
    with pytest.raises(ValueError, match=r"run.train_every \(from --run.train_every\).*"
                       r"run.train_ratio=512 \(from preset 'dreamer_v3'\)"):  # fmt: skip
        compose(["dreamer_v3"], ["--run.train_every", "100"])
    with pytest.raises(ValueError, match=r"run.train_steps \(from --run.train_steps\)"):
        compose(["planet"], {"run.train_ratio": 64, "run.train_steps": 5})
    # turning the ratio off makes every/steps the schedule again
    config = compose(["dreamer_v3"], ["--run.train_ratio", "null", "--run.train_every", "100"])
    assert config.run.train_ratio is None and config.run.train_every == 100


def test_field_docs_come_from_attributes_and_from_the_documented_constructor():
    from rssm.run.train import Config

    docs = cfg.field_docs(Config)
    assert docs["run.train_ratio"].startswith("replayed rows per collected row")
    assert docs["env.image_size"] == "height and width of the image observation"
    # RSSMConfig holds "arguments of RSSM": its entries come from RSSM's Args section
    assert docs["world_model.rssm.deter"] == "size D of the deterministic GRU state"
    # an entry naming several fields documents each of them
    assert docs["dreamer.actor_lr"] == docs["dreamer.actor_eps"] == "Adam of the actor"
    assert "``" not in "".join(docs.values()) and ":class:" not in "".join(docs.values())
