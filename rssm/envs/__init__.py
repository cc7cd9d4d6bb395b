"""Environments: ``make_env("suite:id", ...)`` over a dict of suites with lazy imports.

Every step of an env made here yields the observation dict of DESIGN.md §3: modality keys
(``image`` uint8 HWC, ``state`` float32 1-D) plus ``reward``, ``is_first``, ``is_last`` and
``is_terminal``. Importing this package imports none of the optional suites (dm_control, mujoco,
ale_py, pygame); see docs/adding_an_env.md.
"""

from rssm.envs.make import SUITES, EnvSpec, env_spec, list_envs, make_env

__all__ = ["SUITES", "EnvSpec", "env_spec", "list_envs", "make_env"]
