"""Clips for the teacher, cut from the replay buffer: trajectory-aligned, never across episodes.

A :class:`ClipPool` is where query selection draws candidate clips from: every valid window
of the buffer, or only its most recent steps (``--query-window``, a first step toward QPA's
policy-aligned queries). An on-policy learner would offer a pool over its recent rollouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pebble.buffer import PreferenceReplayBuffer
from teachers.contract import Clip


@dataclass
class Segments:
    """A batch of N clips of length H, as arrays (padding zeroed, ``mask`` False there)."""

    obs: np.ndarray  # (N, H, obs_dim)
    actions: np.ndarray  # (N, H, act_dim)
    true_rewards: np.ndarray  # (N, H)
    mask: np.ndarray  # (N, H) bool
    env_index: np.ndarray  # (N,)
    start_step: np.ndarray  # (N,)
    render_states: np.ndarray | None = None  # (N, H, state_dim) simulator states, when recorded
    next_obs: np.ndarray | None = None  # (N, H, obs_dim), the observation each action led to

    def __len__(self) -> int:
        return len(self.obs)

    def take(self, index: np.ndarray) -> Segments:
        return Segments(**{k: None if a is None else a[index] for k, a in vars(self).items()})  # type: ignore[arg-type]

    def clip(self, i: int) -> Clip:
        return Clip(
            observations=self.obs[i],
            actions=self.actions[i],
            true_rewards=self.true_rewards[i],
            mask=self.mask[i],
            env_index=int(self.env_index[i]),
            start_step=int(self.start_step[i]),
            render_states=None if self.render_states is None else self.render_states[i],
            next_observations=None if self.next_obs is None else self.next_obs[i],
        )


class ClipPool(Protocol):
    """Where candidate clips come from."""

    def sample(self, count: int, rng: np.random.Generator) -> Segments:
        """``count`` clips drawn uniformly, with replacement."""
        ...


class BufferClipPool:
    """Clips of ``length`` steps from a replay buffer; with ``recent > 0`` only windows that start
    within its last ``recent`` stored steps (all environment copies together)."""

    def __init__(self, buffer: PreferenceReplayBuffer, length: int, recent: int = 0) -> None:
        self.buffer, self.length, self.recent = buffer, length, recent

    def sample(self, count: int, rng: np.random.Generator) -> Segments:
        return sample_clips(self.buffer, count, self.length, rng, self.recent)


def window_starts(buffer: PreferenceReplayBuffer, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every valid clip start: (chronological position, env column, real steps in the clip).

    A window of ``length`` steps starting at a row is valid if it stays inside the
    stored part of one episode, or if the episode *terminated* before the window ends:
    the rest is then padding, the absorbing state after termination (true and learned
    reward 0). Windows of truncated or unfinished episodes must be complete, since
    their future is unknown. The last window of every episode is included.
    """
    rows = buffer.chronological_rows()
    n = len(rows)
    positions, envs, real = [], [], []
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    terminated = (buffer.dones > 0) & (buffer.timeouts == 0)
    index = np.arange(n)
    for env in range(buffer.n_envs):
        ep = buffer.episode_ids[rows, env]
        ends = np.flatnonzero(np.append(ep[1:] != ep[:-1], True))
        run_end = ends[np.searchsorted(ends, index)]
        remaining = run_end - index + 1
        run_terminated = terminated[rows[run_end], env]
        valid = (remaining >= length) | run_terminated
        positions.append(index[valid])
        envs.append(np.full(int(valid.sum()), env))
        real.append(np.minimum(remaining[valid], length))
    return np.concatenate(positions), np.concatenate(envs), np.concatenate(real)


def sample_clips(
    buffer: PreferenceReplayBuffer, count: int, length: int, rng: np.random.Generator, recent: int = 0
) -> Segments:
    """``count`` clips drawn uniformly (with replacement) from all valid windows.

    With ``recent > 0`` only windows that start within the last ``recent`` stored steps
    (all environment copies together) are drawn, so that queries show what the agent
    does now; the whole buffer is used while that part holds no valid window.
    """
    positions, envs, real = window_starts(buffer, length)
    if len(positions) == 0:
        raise ValueError(f"no stored episode piece is long enough for a clip of {length} steps yet")
    if recent > 0:
        first = buffer.size() - max(1, recent // buffer.n_envs)  # positions count stored rows, oldest first
        inside = positions >= first
        if inside.any():
            positions, envs, real = positions[inside], envs[inside], real[inside]
    pick = rng.integers(len(positions), size=count)
    return gather(buffer, positions[pick], envs[pick], real[pick], length)


def gather(
    buffer: PreferenceReplayBuffer, positions: np.ndarray, envs: np.ndarray, real: np.ndarray, length: int
) -> Segments:
    """Copy clips out of the buffer; steps beyond ``real`` become zeroed padding."""
    rows = buffer.chronological_rows()
    offsets = np.arange(length)
    mask = offsets[None, :] < real[:, None]
    chrono = positions[:, None] + np.minimum(offsets[None, :], real[:, None] - 1)
    idx = rows[chrono]
    col = envs[:, None]
    obs = buffer.observations[idx, col] * mask[..., None]
    act = buffer.actions[idx, col] * mask[..., None]
    nxt = buffer.next_observations[idx, col] * mask[..., None]
    true = buffer.true_rewards[idx, col] * mask
    start = buffer.env_steps[idx[:, 0], envs]
    states = None if buffer.render_states is None else buffer.render_states[idx, col]
    return Segments(
        obs.astype(np.float32),
        act.astype(np.float32),
        true,
        mask,
        envs.copy(),
        start,
        states,
        nxt.astype(np.float32),
    )
