"""Read and set the simulator state a clip is rendered from, for each kind of MuJoCo environment.

A render state is a flat float64 vector recorded before each step (``info["render_state"]``)
and set again, without stepping, to draw the frame later in another environment:

* Gymnasium MuJoCo tasks: ``(qpos, qvel)`` of ``env.unwrapped.data``;
* DeepMind Control: ``(qpos, qvel)`` of the dm_control ``physics``;
* Meta-World: ``(qpos, qvel, rand_vec)``. The episode's goal variation (``rand_vec``: object
  and goal positions) lives partly in the MuJoCo *model* (body positions), not in qpos, so
  the renderer re-applies it when it changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Simulator:
    """(qpos, qvel) of a MuJoCo model and data (``mujoco.MjModel`` / ``mujoco.MjData``)."""

    def __init__(self, model: Any, data: Any) -> None:
        self.model, self.data = model, data
        self.state_dim = int(model.nq + model.nv)

    def state(self) -> np.ndarray:
        """The render state now."""
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float64)

    def set_state(self, state: np.ndarray) -> None:
        """Put the simulator in ``state`` (positions are computed, no physics step is taken)."""
        import mujoco

        nq = self.model.nq
        self.data.qpos[:] = state[:nq]
        self.data.qvel[:] = state[nq : nq + self.model.nv]
        mujoco.mj_forward(self.model, self.data)


class MetaWorldSimulator(Simulator):
    """(qpos, qvel, rand_vec) of a Meta-World task; setting a new rand_vec re-lays the scene."""

    def __init__(self, env: Any) -> None:
        super().__init__(env.model, env.data)
        self.env = env
        self.rand_dim = int(env._random_reset_space.low.size)
        self.state_dim += self.rand_dim
        self._applied: np.ndarray | None = None

    def _rand_vec(self) -> np.ndarray:
        rand_vec = self.env._last_rand_vec
        return np.zeros(self.rand_dim) if rand_vec is None else np.asarray(rand_vec, np.float64)

    def state(self) -> np.ndarray:
        return np.concatenate([super().state(), self._rand_vec()])

    def set_state(self, state: np.ndarray) -> None:
        rand_vec = np.asarray(state[self.state_dim - self.rand_dim : self.state_dim], np.float64)
        if self._applied is None or not np.array_equal(rand_vec, self._applied):
            # The task's reset_model() moves the object/goal bodies for the frozen rand_vec
            # (and re-homes the hand, which set_state overwrites just after).
            self.env._last_rand_vec, self.env._freeze_rand_vec = rand_vec.copy(), True
            self.env.reset_model()
            self._applied = rand_vec.copy()
        super().set_state(state)


def simulator(env: Any) -> Simulator | None:
    """The :class:`Simulator` of a (wrapped) environment, or None when it is not MuJoCo."""
    base = getattr(env, "unwrapped", env)
    physics = getattr(base, "_env", None) and getattr(base._env, "physics", None)
    if physics is not None:  # Shimmy's dm_control wrapper; physics.model.ptr is the mujoco.MjModel
        return Simulator(physics.model.ptr, physics.data.ptr)
    data = getattr(base, "data", None)
    if data is None or not hasattr(data, "qpos") or not hasattr(base, "model"):
        return None
    if type(base).__module__.startswith("metaworld"):
        return MetaWorldSimulator(base)
    return Simulator(base.model, base.data)


def is_metaworld(env: Any) -> bool:
    """Whether ``env`` (wrapped or not) is a Meta-World task."""
    return type(getattr(env, "unwrapped", env)).__module__.startswith("metaworld")


def is_dmc(env: Any) -> bool:
    """Whether ``env`` (wrapped or not) is a DeepMind Control task through Shimmy."""
    return type(getattr(env, "unwrapped", env)).__module__.startswith("shimmy")
