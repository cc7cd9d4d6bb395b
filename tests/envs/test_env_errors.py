"""User mistakes give short, specific errors; importing rssm.envs imports no optional suite."""

import os
import subprocess
import sys

import pytest

from rssm.envs import SUITES, env_spec, list_envs, make_env


def raises_here(error, match, name, **options):
    """The error is raised by rssm itself, not deep inside a suite's own code."""
    with pytest.raises(error, match=match) as info:
        make_env(name, **options)
    assert not any("site-packages" in str(entry.path) for entry in info.traceback), info.traceback
    return info.value


def test_importing_rssm_envs_imports_no_optional_suite():
    code = (
        "import sys, rssm.envs; "
        "print([m for m in ('dm_control', 'mujoco', 'ale_py', 'pygame', 'Box2D') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_suites_and_list_envs():
    assert SUITES == ("builtin", "gym", "dmc", "atari")
    assert list_envs("builtin") == ["pointmass", "pointmass-discrete", "echo"]
    assert "CartPole-v1" in list_envs("gym")
    with pytest.raises(ValueError, match="builtin, gym, dmc, atari"):
        list_envs("nope")


def test_unknown_suite_lists_the_known_suites():
    error = raises_here(ValueError, "builtin, gym, dmc, atari", "mujoco:walker-walk")
    assert "mujoco:walker-walk" in str(error)
    raises_here(ValueError, "suite:id", "pointmass")


def test_unknown_builtin_env_names_the_closest():
    raises_here(ValueError, "pointmass", "builtin:pointmas")


def test_unknown_gym_id_names_the_closest():
    raises_here(ValueError, "CartPole-v1", "gym:CartPol-v1")
    raises_here(ValueError, "CartPole-v1", "gym:CartPole-v7")


def test_unknown_dmc_task_names_the_closest():
    pytest.importorskip("dm_control")
    raises_here(ValueError, "cartpole-swingup", "dmc:cartpole-swingupp")
    raises_here(ValueError, "walker-walk", "dmc:walkr-walk")


def test_unknown_atari_game_names_the_closest():
    pytest.importorskip("ale_py")
    raises_here(ValueError, "pong", "atari:pongg")


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [("dmc:cartpole-swingup", "dm_control", "dmc"), ("atari:pong", "ale_py", "atari")],
)
def test_missing_suite_names_the_install_command(monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    error = raises_here(ImportError, "pip install", name)
    assert f'pip install "rssm[{extra}]"' in str(error)


def test_missing_pygame_names_the_classic_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    env = make_env("gym:Pendulum-v1", obs="pixels")
    with pytest.raises(ImportError, match=r'pip install "rssm\[classic\]"'):
        env.reset()


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"image_size": 0}, "image_size"),
        ({"image_size": -8}, "image_size"),
        ({"image_size": (64, 0)}, "image_size"),
        ({"image_size": (64, 64, 3)}, "image_size"),
        ({"image_size": None}, "image_size"),
        ({"action_repeat": 0}, "action_repeat"),
        ({"action_repeat": 1.5}, "action_repeat"),
        ({"noop_max": -1}, "noop_max"),
        ({"time_limit": 0}, "time_limit"),
        ({"seed": "zero"}, "seed"),
        ({"grayscale": "yes"}, "grayscale"),
        ({"obs": "rgb"}, "obs"),
        ({"num_actions": 4}, "num_actions"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_builtin_options_name_the_option(options, option):
    raises_here(ValueError, option, "builtin:pointmass", **options)


def test_bad_options_of_other_suites_name_the_option():
    raises_here(ValueError, "obs", "gym:CartPole-v1", obs="proprio")
    raises_here(ValueError, "grayscale", "gym:CartPole-v1", grayscale=True)
    raises_here(ValueError, "not_an_arg", "gym:CartPole-v1", not_an_arg=1)
    raises_here(ValueError, "length", "builtin:echo", length=0)


def test_bad_dmc_options_name_the_option():
    pytest.importorskip("dm_control")
    raises_here(ValueError, "obs", "dmc:cartpole-swingup", obs="vector")
    raises_here(ValueError, "fast_render", "dmc:cartpole-swingup", fast_render="yes")
    raises_here(ValueError, "continuous", "dmc:cartpole-swingup", continuous=False)


def test_env_spec_needs_an_env_from_make_env():
    import gymnasium

    with pytest.raises(TypeError, match="make_env"):
        env_spec(gymnasium.make("CartPole-v1"))


def test_an_unknown_gymnasium_id_suggests_the_module_form():
    with pytest.raises(ValueError, match=r"gym:<module>:NoSuchEnv-v0, which imports <module>"):
        make_env("gym:NoSuchEnv-v0")


def test_pixels_of_a_pygame_env_print_no_display_noise():
    pytest.importorskip("pygame")
    code = (
        "from rssm.envs import make_env\n"
        "env = make_env('gym:CartPole-v1', obs='pixels', image_size=16)\n"
        "obs, _ = env.reset(seed=0)\n"
        "assert obs['image'].shape == (16, 16, 3) and obs['image'].std() > 0\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "XDG_RUNTIME_DIR")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "XDG_RUNTIME_DIR" not in done.stderr + done.stdout, done.stderr
