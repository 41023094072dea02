"""Environment families beyond Gymnasium's registry: DeepMind Control and Meta-World v3.

Each family is an optional extra, imported only when one of its ids is used:

* ``dm_control/<domain>-<task>-v0`` (e.g. ``dm_control/walker-walk-v0``): DeepMind Control
  suite tasks through Shimmy's Gymnasium registration (``pip install -e ".[dmc]"``). Their
  Dict observations are flattened into one Box, keys in sorted order; episodes are 1000 steps.
* ``metaworld/<task>-v3`` (e.g. ``metaworld/button-press-v3``): one Meta-World v3 task with
  its 50 goal variations (``Meta-World/MT1``), one drawn per episode from the env's seeded
  generator (``pip install -e ".[metaworld]"``); episodes are 500 steps, ``info["success"]``
  says whether the task is solved.

A missing extra or an unknown task is an :class:`~envs.make.EnvError` with a one-line message.
"""

from __future__ import annotations

import difflib
import importlib
import os
from typing import Any

import gymnasium as gym
import numpy as np

DMC_PREFIX = "dm_control/"
METAWORLD_PREFIX = "metaworld/"

#: Episode length (steps) of each family: dm_control's suite time limit (1000 control steps)
#: and Meta-World's ``max_path_length``.
DMC_EPISODE_STEPS = 1000
METAWORLD_EPISODE_STEPS = 500

#: The camera clips are rendered from. DMC camera 0 is a tracking side view in most domains;
#: the quadruped's camera 0 is egocentric, its camera 2 follows from behind. Meta-World's
#: "corner" camera shows the arm and the whole table.
DMC_CAMERAS = {"quadruped": 2}
METAWORLD_CAMERA = "corner"


def _error(message: str) -> Exception:
    from envs.make import EnvError  # envs.make imports this module: import here, not at the top

    return EnvError(message)


def family(env_id: str) -> str | None:
    """``"dmc"``, ``"metaworld"`` or None (a plain Gymnasium id)."""
    if env_id.startswith(DMC_PREFIX):
        return "dmc"
    if env_id.startswith(METAWORLD_PREFIX):
        return "metaworld"
    return None


def _require(extra: str, *modules: str) -> None:
    """Import ``modules`` or raise the one-line error that names the install command."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            what = "DeepMind Control tasks" if extra == "dmc" else "Meta-World tasks"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise _error(f'{what} need the {extra} extra: pip install -e ".[{extra}]" ({reason})') from None


def _unknown(env_id: str, known: list[str]) -> Exception:
    close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known ids look like {known[0]}"
    return _error(f"unknown environment id {env_id!r}{hint}")


def dmc_ids() -> list[str]:
    """Shimmy's registered DeepMind Control suite ids (imports the dmc extra)."""
    # dm_control picks its OpenGL backend once, on import, and would take GLFW (which needs a
    # display) when MUJOCO_GL is unset; clips are rendered offscreen, as pebble.render does.
    os.environ.setdefault("MUJOCO_GL", "egl")
    _require("dmc", "shimmy", "dm_control")
    import shimmy  # noqa: F401  (registers the dm_control/ ids on import)

    return sorted(k for k in gym.registry if k.startswith(DMC_PREFIX) and k.count("-") >= 2)


def metaworld_ids() -> list[str]:
    """``metaworld/<task>-v3`` for every Meta-World v3 task (imports the metaworld extra)."""
    _require("metaworld", "metaworld")
    import metaworld

    return sorted(METAWORLD_PREFIX + name for name in metaworld.ALL_V3_ENVIRONMENTS)


def check(env_id: str) -> None:
    """Raise ``EnvError`` if ``env_id`` of a family cannot be built (missing extra, unknown task)."""
    kind = family(env_id)
    if kind is None:
        return
    known = dmc_ids() if kind == "dmc" else metaworld_ids()
    if env_id not in known:
        raise _unknown(env_id, known)


def episode_steps(env_id: str) -> int | None:
    """The family's episode length, or None for a Gymnasium id."""
    return {"dmc": DMC_EPISODE_STEPS, "metaworld": METAWORLD_EPISODE_STEPS}.get(family(env_id) or "")


def make(env_id: str, seed: int | None = None, render: tuple[int, int] | None = None, **kwargs: Any) -> gym.Env:
    """Build a family's environment (call :func:`check` first).

    ``seed`` is for Meta-World, whose goal variations and first task are drawn when the
    environment is built (later resets draw from the generator ``reset(seed=...)`` seeds).
    ``render`` = (width, height) makes an ``rgb_array`` renderer for clips.
    """
    if family(env_id) == "dmc":
        return _make_dmc(env_id, render, **kwargs)
    return _make_metaworld(env_id, seed, render, **kwargs)


def _make_dmc(env_id: str, render: tuple[int, int] | None, **kwargs: Any) -> gym.Env:
    import shimmy  # noqa: F401

    if render is not None:
        domain = env_id[len(DMC_PREFIX) :].split("-")[0]
        kwargs |= {
            "render_mode": "rgb_array",
            "render_kwargs": {"width": render[0], "height": render[1], "camera_id": DMC_CAMERAS.get(domain, 0)},
        }
    # The TimeLimit matches dm_control's own limit, so episode_limit() and env-state snapshots see it.
    env = gym.make(env_id, max_episode_steps=DMC_EPISODE_STEPS, **kwargs)
    space = env.observation_space
    if isinstance(space, gym.spaces.Dict):
        # A fixed key order: FlattenObservation concatenates in the Dict space's (sorted) order.
        env = gym.wrappers.FlattenObservation(env)
    return env


def _make_metaworld(env_id: str, seed: int | None, render: tuple[int, int] | None, **kwargs: Any) -> gym.Env:
    import metaworld  # noqa: F401  (registers Meta-World/MT1)

    if render is not None:
        kwargs |= {"render_mode": "rgb_array", "width": render[0], "height": render[1], "camera_name": METAWORLD_CAMERA}
    # MT1 picks the task's goal variations with `seed`; None would make them differ per run.
    task = env_id[len(METAWORLD_PREFIX) :]
    env = gym.make("Meta-World/MT1", env_name=task, seed=0 if seed is None else seed, **kwargs)
    return _UprightRender(env) if render is not None else env


class _UprightRender(gym.Wrapper):
    """Meta-World's cameras are mounted upside down (their images come out flipped vertically)."""

    def render(self) -> Any:
        image: Any = self.env.render()
        return None if image is None else np.ascontiguousarray(image[::-1])
