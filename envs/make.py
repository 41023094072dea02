"""Build Gymnasium environments for training, evaluation and teachers.

Any registered Gymnasium id works (``gymnasium.make``). Ids of packages that register
on import can be given as ``"package:EnvId"`` (Gymnasium's own convention), so custom
environments need no change to pebble. DeepMind Control (``dm_control/<domain>-<task>-v0``)
and Meta-World (``metaworld/<task>-v3``) ids are built by :mod:`envs.families` (optional extras).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from envs import families
from envs.sim import simulator

#: The MuJoCo locomotion tasks pebble is tuned and benchmarked on. Hopper, Walker2d,
#: Ant and Humanoid terminate early when the robot falls (docs/algorithm.md, "Termination").
LOCOMOTION = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "Swimmer-v5")

#: Small MuJoCo tasks used for quick checks and the end-to-end test.
QUICK = ("InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Reacher-v5", "Pusher-v5")


def _mujoco_warning(message: str) -> None:
    """Route MuJoCo's C-level warnings through Python's ``warnings`` (filterable, testable).

    Gymnasium's own HalfCheetah asset uses the deprecated ``settotalmass`` attribute, which
    MuJoCo >= 3.3 reports on every load; that one message is not actionable for users.
    """
    if "settotalmass" not in message:
        warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


def _install_mujoco_warning_handler() -> None:
    try:
        import mujoco
    except ImportError:  # pragma: no cover - mujoco is a dependency, but envs work without it
        return
    mujoco.set_mju_user_warning(_mujoco_warning)


_install_mujoco_warning_handler()


class EnvError(ValueError):
    """An environment id that cannot be built; the message is one line."""


def check_env_id(env_id: str) -> None:
    """Raise :class:`EnvError` with close suggestions if ``env_id`` is not registered."""
    if families.family(env_id):
        families.check(env_id)
        return
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            __import__(module)
        except ImportError as exc:
            raise EnvError(f"cannot import {module!r} for environment {env_id!r}: {exc}") from None
    if name in gym.registry:
        return
    close = difflib.get_close_matches(name, list(gym.registry), n=3, cutoff=0.6)
    hint = (
        f"; did you mean {', '.join(close)}?"
        if close
        else "; see `python -c 'import gymnasium; gymnasium.pprint_registry()'`"
    )
    raise EnvError(f"unknown environment id {env_id!r}{hint}")


class RenderStateInfo(gym.Wrapper):
    """Puts the MuJoCo state *before* each step into ``info["render_state"]``.

    The state is (qpos, qvel), and for Meta-World the episode's goal variation too
    (:mod:`envs.sim`). The replay buffer stores it beside the observation the action was
    taken in, so that a clip can later be rendered frame by frame (for a person judging videos).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        sim = simulator(env)
        if sim is None:
            raise EnvError(
                f"{env.spec.id if env.spec else env!r} is not a MuJoCo environment: clips cannot be rendered"
            )
        self._sim = sim
        self.state_dim = sim.state_dim
        self._state = self._read()

    def _read(self) -> np.ndarray:
        return self._sim.state()

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._state = self._read()
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        before = self._state
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._state = self._read()
        info["render_state"] = before
        return obs, reward, terminated, truncated, info


def render_state_dim(env_id: str) -> int:
    """Size of the render state of a MuJoCo environment ((qpos, qvel), :mod:`envs.sim`)."""
    check_env_id(env_id)
    env = families.make(env_id) if families.family(env_id) else gym.make(env_id)
    try:
        return RenderStateInfo(env).state_dim
    finally:
        env.close()


def make_env(env_id: str, seed: int | None = None, record_render_state: bool = False, **kwargs: Any) -> gym.Env:
    """One environment, wrapped in SB3's ``Monitor`` (true episodic return and length).

    ``record_render_state`` adds :class:`RenderStateInfo` (MuJoCo tasks only).
    """
    check_env_id(env_id)
    try:
        env = families.make(env_id, seed, **kwargs) if families.family(env_id) else gym.make(env_id, **kwargs)
    except Exception as exc:  # a registered id whose dependencies are missing, bad kwargs...
        raise EnvError(f"cannot build environment {env_id!r}: {str(exc).splitlines()[0]}") from None
    if not isinstance(env.observation_space, gym.spaces.Box) or not isinstance(env.action_space, gym.spaces.Box):
        raise EnvError(f"{env_id!r} must have Box observation and action spaces (continuous control)")
    if record_render_state:
        env = RenderStateInfo(env)
    env = Monitor(env)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def make_vec_env(env_id: str, n_envs: int, seed: int, record_render_state: bool = False, **kwargs: Any) -> VecEnv:
    """``n_envs`` copies in a ``DummyVecEnv``, copy i seeded with ``seed + i``."""
    check_env_id(env_id)

    def factory(rank: int) -> Callable[[], gym.Env]:
        # Meta-World draws its goal variations when built, so its copies are built seeded;
        # every copy is (re)seeded by the VecEnv's first reset below all the same.
        build_seed = seed + rank if families.family(env_id) == "metaworld" else None
        return lambda: make_env(env_id, seed=build_seed, record_render_state=record_render_state, **kwargs)

    vec = DummyVecEnv([factory(i) for i in range(n_envs)])
    vec.seed(seed)
    return vec


def vec_env_of(env: gym.Env, seed: int, record_render_state: bool = False) -> VecEnv:
    """A ``DummyVecEnv`` around one environment object the user built (checked, monitored, seeded)."""
    if not isinstance(env.observation_space, gym.spaces.Box) or not isinstance(env.action_space, gym.spaces.Box):
        raise EnvError(f"{env!r} must have Box observation and action spaces (continuous control)")
    if record_render_state:
        env = RenderStateInfo(env)
    vec = DummyVecEnv([lambda: Monitor(env)])
    vec.seed(seed)
    return vec


def eval_env_of(env: gym.Env, seed: int) -> VecEnv:
    """A separate copy of a user's environment for evaluation, made from its spec."""
    if env.spec is None:
        raise EnvError(f"{env!r} has no spec to make an evaluation copy from: pass a registered id instead")
    return vec_env_of(gym.make(env.spec), seed)


def recorded_state_dim(vec_env: VecEnv) -> int:
    """Size of the simulator state :class:`RenderStateInfo` records (0 when it is not there)."""
    try:
        return int(vec_env.get_attr("state_dim")[0])
    except AttributeError:
        return 0


def position_entries(vec_env: VecEnv) -> int | None:
    """How many leading observation entries are joint positions: ``qpos`` of a Gymnasium MuJoCo
    task's ``observation_structure`` (v5 tasks put them first), None when the task does not say."""
    try:
        structure = vec_env.env_method("get_wrapper_attr", "observation_structure", indices=[0])[0]
    except AttributeError:
        return None
    positions = structure.get("qpos") if isinstance(structure, dict) else None
    return int(positions) if positions else None


def episode_limit(env: gym.Env | VecEnv) -> int | None:
    """The TimeLimit of an environment (steps), or None when it has none."""
    spec = env.get_attr("spec")[0] if isinstance(env, VecEnv) else env.spec
    if spec is None:
        return None
    return spec.max_episode_steps or families.episode_steps(spec.id)


def finite_or_raise(array: np.ndarray, what: str) -> None:
    """Raise :class:`EnvError` if an environment produced NaN or infinite values."""
    if not np.all(np.isfinite(array)):
        raise EnvError(f"the environment returned non-finite {what} (NaN or inf)")
