"""Snapshot and restore the state of running environments, for exact resume.

For MuJoCo tasks the full integration state (``mj_getState`` with
``mjSTATE_INTEGRATION``: positions, velocities, time, controls, solver warm start) is
saved, with the episode's step count (``TimeLimit``), the environment's RNG and the
``Monitor`` statistics, so a resumed run continues the episode in progress exactly.
Other environments cannot be restored mid-episode: :func:`restore` returns False and the
caller resets them (the episode in progress restarts).

DeepMind Control and Meta-World tasks are such environments. Their tasks keep episode state
outside MuJoCo's integration state: dm_control's step count and task RNG, targets that some
tasks place in the model (reacher, swimmer); Meta-World's object and goal body positions in
the model, its previous-observation frame and path length, and its task-selection wrapper.
Restoring only the MuJoCo state would resume a different episode, so they are not snapshot.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

_MONITOR_FIELDS = ("rewards", "needs_reset", "episode_returns", "episode_lengths", "episode_times", "total_steps")


def _chain(env: gym.Env) -> list[gym.Env]:
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def _mujoco_state(env: gym.Env) -> Any | None:
    try:
        import mujoco
    except ImportError:  # pragma: no cover
        return None
    from envs.sim import is_dmc, is_metaworld

    if is_metaworld(env) or is_dmc(env):
        return None
    base = env.unwrapped
    model, data = getattr(base, "model", None), getattr(base, "data", None)
    if not isinstance(data, mujoco.MjData):
        return None
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = mujoco.mj_stateSize(model, spec)
    import numpy as np

    out = np.empty(state)
    mujoco.mj_getState(model, data, out, spec)
    return out


def snapshot(vec_env: VecEnv) -> list[dict[str, Any]] | None:
    """Per-copy state of a ``DummyVecEnv`` of MuJoCo environments, or None if unsupported."""
    if not isinstance(vec_env, DummyVecEnv):
        return None
    states = []
    for index, env in enumerate(vec_env.envs):
        sim = _mujoco_state(env)
        if sim is None:
            return None
        entry: dict[str, Any] = {"sim": sim, "np_random": env.unwrapped.np_random.bit_generator.state}
        # the seed the VecEnv will pass to this copy's next reset() (None once it has been reset)
        entry["pending_seed"] = vec_env._seeds[index]
        for layer in _chain(env):
            if isinstance(layer, gym.wrappers.TimeLimit):
                entry["elapsed_steps"] = layer._elapsed_steps
            if isinstance(layer, Monitor):
                entry["monitor"] = {k: copy.deepcopy(getattr(layer, k)) for k in _MONITOR_FIELDS}
            if hasattr(layer, "_has_reset"):
                entry["has_reset"] = layer._has_reset
            if hasattr(layer, "_state") and layer.__class__.__name__ == "RenderStateInfo":
                entry["render_state"] = layer._state.copy()
        states.append(entry)
    return states


def restore(vec_env: VecEnv, states: list[dict[str, Any]] | None) -> bool:
    """Put ``states`` (from :func:`snapshot`) back; False if they cannot be restored here."""
    if states is None or not isinstance(vec_env, DummyVecEnv) or len(states) != len(vec_env.envs):
        return False
    import mujoco

    _restore_pending_seeds(vec_env, states)
    for env, entry in zip(vec_env.envs, states):
        base: Any = env.unwrapped
        current = _mujoco_state(env)
        if current is None or len(entry["sim"]) != len(current):
            return False
        mujoco.mj_setState(base.model, base.data, entry["sim"], mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(base.model, base.data)
        base.np_random.bit_generator.state = entry["np_random"]
        _restore_layers(env, entry)
    return True


def _restore_pending_seeds(vec_env: VecEnv, states: list[dict[str, Any]]) -> None:
    """A VecEnv holds the seed it was made with until its first reset(); the rebuilt one must
    hold it exactly when the saved one did, or its next reset (evaluate_policy resets the
    evaluation env) reseeds the restored generator and a resumed run evaluates on other
    episodes. Snapshots of pebble 0.1 have no pending seed: an env that had been reset had none."""
    for index, entry in enumerate(states):
        if "pending_seed" in entry:
            vec_env._seeds[index] = entry["pending_seed"]
        elif entry.get("has_reset"):
            vec_env._seeds[index] = None


def _restore_layers(env: gym.Env, entry: dict[str, Any]) -> None:
    """The wrappers' bookkeeping: step count, Monitor statistics, reset and checker flags."""
    for layer in _chain(env):
        if isinstance(layer, gym.wrappers.TimeLimit) and "elapsed_steps" in entry:
            layer._elapsed_steps = entry["elapsed_steps"]
        if isinstance(layer, Monitor) and "monitor" in entry:
            for key, value in entry["monitor"].items():
                setattr(layer, key, copy.deepcopy(value))
        if hasattr(layer, "_has_reset") and "has_reset" in entry:
            layer._has_reset = entry["has_reset"]
        if isinstance(layer, gym.wrappers.PassiveEnvChecker):
            # Its one-off checks ran in the original process; they need a fresh reset.
            layer.checked_reset = layer.checked_step = True
            if hasattr(layer, "checked_data_reuse"):
                layer.checked_data_reuse = True
        if layer.__class__.__name__ == "RenderStateInfo" and "render_state" in entry:
            layer._state = entry["render_state"].copy()  # type: ignore[attr-defined]
