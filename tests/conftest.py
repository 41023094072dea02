"""Shared fixtures: tiny spaces and buffers so that unit tests need no simulator."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from pebble.buffer import PreferenceReplayBuffer

OBS_DIM, ACT_DIM = 3, 2


def make_buffer(size: int, n_envs: int = 1) -> PreferenceReplayBuffer:
    obs_space = spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    act_space = spaces.Box(-1, 1, (ACT_DIM,), np.float32)
    return PreferenceReplayBuffer(size, obs_space, act_space, device="cpu", n_envs=n_envs)


def fill(buffer: PreferenceReplayBuffer, episode_lengths: list[list[int]], terminated: bool = True) -> None:
    """Add episodes of the given lengths (one list per env column, stepped in lockstep).

    Observation = (global row counter, env, step in episode); reward = step in episode.
    An episode ends terminated (or truncated if ``terminated`` is False).
    """
    n_envs = buffer.n_envs
    plans = [[(length, t) for length in lengths for t in range(length)] for lengths in episode_lengths]
    steps = min(len(p) for p in plans)
    for i in range(steps):
        obs = np.zeros((n_envs, OBS_DIM), np.float32)
        done = np.zeros(n_envs, bool)
        infos = []
        reward = np.zeros(n_envs, np.float32)
        for e in range(n_envs):
            length, t = plans[e][i]
            obs[e] = (i, e, t)
            reward[e] = t
            done[e] = t == length - 1
            infos.append({"TimeLimit.truncated": bool(done[e] and not terminated)})
        buffer.add(obs, obs + 0.5, np.full((n_envs, ACT_DIM), 0.1, np.float32), reward, done, infos)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
