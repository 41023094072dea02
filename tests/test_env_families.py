"""DeepMind Control (through Shimmy) and Meta-World v3: building, seeding, clips, errors, success rate.

Both extras are in ``.[dev]``: these tests fail, never skip, when one is missing, so CI cannot
pass without having run them. Rendering uses EGL (``MUJOCO_GL=egl``, Mesa without a GPU).
"""

from __future__ import annotations

import os
import sys
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control is imported: it picks its backend once

import gymnasium as gym
import numpy as np
import pytest

from envs import EnvError, RenderStateInfo, check_env_id, make_env, make_vec_env, render_state_dim
from envs import state as env_state
from envs.make import episode_limit
from envs.sim import MetaWorldSimulator, simulator
from pebble.render import ClipRenderer

WALKER = "dm_control/walker-walk-v0"
BUTTON = "metaworld/button-press-v3"


def record(env_id: str, steps: int, seed: int = 0) -> tuple[gym.Env, np.ndarray]:
    """``steps`` render states of random actions, recorded by RenderStateInfo."""
    env = make_env(env_id, seed=seed, record_render_state=True)
    states = []
    for _ in range(steps):
        *_, terminated, truncated, info = env.step(env.action_space.sample())
        states.append(info["render_state"])
        assert not (terminated or truncated)
    return env, np.array(states)


def assert_frames(frames: list[np.ndarray], size: tuple[int, int]) -> None:
    for frame in frames:
        assert frame.shape == (size[1], size[0], 3) and frame.dtype == np.uint8
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 50, "a frame of (nearly) one colour"
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 0.5, "the clip does not move"


# ---------------------------------------------------------------------------- DeepMind Control
def test_dmc_walker_builds_flat_box_spaces_and_1000_step_episodes() -> None:
    env = make_env(WALKER, seed=0)
    assert isinstance(env.observation_space, gym.spaces.Box) and env.observation_space.shape == (24,)
    assert isinstance(env.action_space, gym.spaces.Box) and env.action_space.shape == (6,)
    assert episode_limit(env) == 1000
    first, _ = env.reset(seed=7)
    obs, reward, *_ = env.step(env.action_space.sample())
    assert obs.shape == (24,) and np.isfinite(reward)
    again, _ = env.reset(seed=7)
    np.testing.assert_array_equal(first, again)
    assert render_state_dim(WALKER) == 18  # walker: 9 qpos + 9 qvel


def test_dmc_vec_env_is_deterministic_for_a_fixed_seed() -> None:
    a, b, other = make_vec_env(WALKER, 2, seed=3), make_vec_env(WALKER, 2, seed=3), make_vec_env(WALKER, 2, seed=4)
    assert episode_limit(a) == 1000
    obs_a, obs_b = a.reset(), b.reset()
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.array_equal(obs_a[0], obs_a[1]) and not np.array_equal(obs_a, other.reset())
    actions = np.full((2, 6), 0.3, np.float32)
    np.testing.assert_array_equal(a.step(actions)[0], b.step(actions)[0])


def test_dmc_clip_frames_render_from_recorded_states() -> None:
    _, states = record(WALKER, 100)
    assert states.shape == (100, 18)
    with ClipRenderer(WALKER, 64, 48) as renderer:
        frames = [renderer.frame(states[t]) for t in (0, 50, 99)]
    assert_frames(frames, (64, 48))


# ---------------------------------------------------------------------------- Meta-World
def test_metaworld_button_press_builds_box_spaces_and_500_step_episodes() -> None:
    env = make_env(BUTTON, seed=0)
    assert isinstance(env.observation_space, gym.spaces.Box) and env.observation_space.shape == (39,)
    assert isinstance(env.action_space, gym.spaces.Box) and env.action_space.shape == (4,)
    assert episode_limit(env) == 500
    obs, reward, _, _, info = env.step(env.action_space.sample())
    assert obs.shape == (39,) and np.isfinite(reward) and "success" in info


def test_metaworld_goals_are_deterministic_for_a_fixed_seed() -> None:
    a, b, other = make_vec_env(BUTTON, 2, seed=3), make_vec_env(BUTTON, 2, seed=3), make_vec_env(BUTTON, 2, seed=4)
    assert episode_limit(a) == 500
    obs_a, obs_b, obs_other = a.reset(), b.reset(), other.reset()
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.array_equal(obs_a, obs_other), "another seed should draw other goal variations"
    actions = np.full((2, 4), 0.5, np.float32)
    np.testing.assert_array_equal(a.step(actions)[0], b.step(actions)[0])
    # a later episode draws its goal from the seeded generator too
    for vec in (a, b):
        vec.env_method("reset")
    goals = [np.array([e.unwrapped._last_rand_vec for e in v.envs]) for v in (a, b)]
    np.testing.assert_array_equal(*goals)


def test_metaworld_render_state_carries_the_goal_variation() -> None:
    """A renderer built with another goal puts the object where the recorded episode had it."""
    env, states = record(BUTTON, 100, seed=1)
    sim = simulator(env)
    assert isinstance(sim, MetaWorldSimulator) and states.shape == (100, sim.state_dim)
    assert render_state_dim(BUTTON) == sim.state_dim
    xpos = sim.data.xpos.copy()  # after the last step
    final = sim.state()
    elsewhere = make_env(BUTTON, seed=2)
    other = simulator(elsewhere)
    assert other is not None and not np.allclose(other.data.xpos, xpos)
    other.set_state(final)
    placed = sim.model.body_mocapid < 0  # the mocap target the hand is driven to is not drawn, nor stored
    np.testing.assert_allclose(other.data.xpos[placed], xpos[placed], atol=1e-9)


def test_metaworld_clip_frames_render_from_recorded_states() -> None:
    _, states = record(BUTTON, 100)
    with ClipRenderer(BUTTON, 64, 48) as renderer:
        frames = [renderer.frame(states[t]) for t in (0, 50, 99)]
    assert_frames(frames, (64, 48))


def test_metaworld_evaluation_logs_the_success_rate() -> None:
    from stable_baselines3 import SAC

    from pebble.callbacks import Evaluation
    from pebble.timing import Timings

    class Recorder:
        def __init__(self) -> None:
            self.scalars: dict[str, list[tuple[int, float]]] = {}

        def add_scalar(self, tag: str, value: Any, step: int | None = None) -> None:
            self.scalars.setdefault(tag, []).append((int(step or 0), float(value)))

        def flush(self) -> None: ...

        def close(self) -> None: ...

    eval_env = make_vec_env(BUTTON, 1, seed=10_000)
    model = SAC("MlpPolicy", eval_env, seed=0, policy_kwargs={"net_arch": [8]})
    writer = Recorder()
    evaluation = Evaluation(eval_env, 100, 1, writer, Timings())
    evaluation.init_callback(model)
    model.num_timesteps = 100
    evaluation.on_step()
    [(step, rate)] = writer.scalars["eval/success_rate"]
    assert step == writer.scalars["eval/true_return"][0][0] == 100
    assert 0.0 <= rate <= 1.0 and rate == evaluation.last_success_rate
    assert set(evaluation.state_dict()) == {"next", "last"}  # checkpoints keep their layout


def test_gymnasium_evaluation_logs_no_success_rate() -> None:
    from stable_baselines3 import SAC

    from pebble.callbacks import Evaluation
    from pebble.tensorboard import NullWriter
    from pebble.timing import Timings

    eval_env = make_vec_env("Pendulum-v1", 1, seed=0)
    model = SAC("MlpPolicy", eval_env, seed=0, policy_kwargs={"net_arch": [8]})
    evaluation = Evaluation(eval_env, 100, 1, NullWriter(), Timings())
    evaluation.init_callback(model)
    evaluation.evaluate()
    assert np.isnan(evaluation.last_success_rate)


# ---------------------------------------------------------------------------- resume, errors
@pytest.mark.parametrize("env_id", [WALKER, BUTTON])
def test_env_state_of_a_family_is_not_restored_mid_episode(env_id: str) -> None:
    vec = make_vec_env(env_id, 1, seed=0, record_render_state=True)
    vec.reset()
    assert env_state.snapshot(vec) is None
    assert env_state.restore(make_vec_env(env_id, 1, seed=0), env_state.snapshot(vec)) is False


@pytest.mark.parametrize(
    ("env_id", "module", "extra"),
    [(WALKER, "shimmy", "dmc"), (WALKER, "dm_control", "dmc"), (BUTTON, "metaworld", "metaworld")],
)
def test_a_missing_extra_is_a_one_line_error_naming_the_install(
    env_id: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    for build in (lambda: check_env_id(env_id), lambda: make_env(env_id)):
        with pytest.raises(EnvError) as raised:
            build()
        message = str(raised.value)
        assert "\n" not in message and f'pip install -e ".[{extra}]"' in message


@pytest.mark.parametrize(
    ("wrong", "right"),
    [("dm_control/walker-wlak-v0", WALKER), ("dm_control/cheetah-runn-v0", "dm_control/cheetah-run-v0"),
     ("metaworld/button-pres-v3", BUTTON), ("metaworld/door-open-v2", "metaworld/door-open-v3")],
)  # fmt: skip
def test_an_unknown_task_gives_close_suggestions(wrong: str, right: str) -> None:
    with pytest.raises(EnvError, match="did you mean") as raised:
        check_env_id(wrong)
    assert right in str(raised.value) and "\n" not in str(raised.value)


def test_the_documented_tasks_exist() -> None:
    for task in ("walker-walk", "cheetah-run", "quadruped-walk"):
        check_env_id(f"dm_control/{task}-v0")
    for task in ("button-press", "door-open", "drawer-open", "window-open", "sweep-into"):
        check_env_id(f"metaworld/{task}-v3")
    assert isinstance(RenderStateInfo(make_env("dm_control/cheetah-run-v0")), RenderStateInfo)
