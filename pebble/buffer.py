"""The PEBBLE replay buffer: an SB3 ``ReplayBuffer`` that knows true and learned rewards.

Beside SB3's arrays it stores, for every row and environment column, the environment's
true reward, an episode id and the global env step. Its ``rewards`` array (what the RL
algorithm learns from) holds, depending on :attr:`reward_mode`:

* ``"env"``: the true reward (the plain-RL baseline);
* ``"intrinsic"``: ignored; minibatches get the k-NN state-entropy reward of their next
  states, computed at sampling time against every stored observation (pre-training);
* ``"learned"``: r_hat(s, a, s') of the current reward model, rewritten for *every* stored
  row and every env column by :meth:`relabel` (unlike the reference, which skips rows
  after the buffer wraps, BPref issue #7). Rows stored between relabellings are scored in
  batches, not one model call per env step (a call costs about as much for 30 rows as for
  one): a new row is scored before any minibatch, episode return, checkpoint or change of
  ``reward_fn`` can see it. Code that reads ``rewards`` directly calls
  :meth:`score_pending` first.

It also cuts trajectory-aligned clips that never cross an episode boundary
(:meth:`sample_clips`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from pebble.state_entropy import StateEntropyReward
from teachers.contract import Clip

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (obs, act, next_obs) -> reward


class NonFiniteError(ValueError):
    """The environment produced NaN or infinite observations or rewards."""


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


@dataclass
class FinishedEpisode:
    """True and learned return of one training episode (same transitions; learned is NaN before feedback)."""

    true_return: float
    learned_return: float
    length: int
    env_step: int


class PreferenceReplayBuffer(ReplayBuffer):
    """Replay buffer with true rewards, episode ids, relabelling and clip sampling."""

    #: rows scored together at the latest (usually a minibatch touches one much sooner)
    MAX_PENDING_ROWS = 1024

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        knn_k: int = 5,
        render_state_dim: int = 0,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError("PreferenceReplayBuffer needs separate next observations (optimize_memory_usage=False)")
        super().__init__(
            buffer_size, observation_space, action_space, device, n_envs, False, handle_timeout_termination
        )
        shape = (self.buffer_size, self.n_envs)
        self.true_rewards = np.zeros(shape, dtype=np.float32)
        self.episode_ids = np.zeros(shape, dtype=np.int64)
        self.env_steps = np.zeros(shape, dtype=np.int64)
        # Simulator states to render clips for a person (see envs.RenderStateInfo); only
        # allocated when a teacher needs videos, so scripted runs pay nothing.
        self.render_states = np.zeros((*shape, render_state_dim), dtype=np.float64) if render_state_dim else None
        self.reward_mode: Literal["env", "intrinsic", "learned"] = "env"
        self._reward_fn: RewardFn | None = None
        # Rows stored in "learned" mode and not scored yet: always the last ``_pending`` rows
        # before ``pos``, since rows are stored in order and scored all at once.
        self._pending = 0
        self.entropy = StateEntropyReward(knn_k)
        self.total_steps = 0  # env steps added (all columns together)
        self._episode_counter = np.zeros(self.n_envs, dtype=np.int64)
        self._running_true = np.zeros(self.n_envs, dtype=np.float64)
        self._episode_start = np.zeros(self.n_envs, dtype=np.int64)  # row where each env's episode began
        self._running_length = np.zeros(self.n_envs, dtype=np.int64)
        self.finished_episodes: list[FinishedEpisode] = []

    # ------------------------------------------------------------------ storing
    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        if not (np.all(np.isfinite(next_obs)) and np.all(np.isfinite(reward))):
            raise NonFiniteError("the environment returned non-finite observations or rewards (NaN or inf)")
        pos = self.pos
        true = np.asarray(reward, dtype=np.float32).reshape(self.n_envs)
        self.total_steps += self.n_envs
        super().add(obs, next_obs, action, reward, done, infos)
        self.true_rewards[pos] = true
        self.episode_ids[pos] = self._episode_counter
        self.env_steps[pos] = self.total_steps
        if self.render_states is not None:
            self.render_states[pos] = [info.get("render_state", 0.0) for info in infos]
        if self.reward_mode == "learned" and self._reward_fn is not None:
            self._pending = min(self._pending + 1, self.buffer_size)
            if self._pending >= self.MAX_PENDING_ROWS:  # bounded even if nothing samples
                self.score_pending()
        self._running_true += true
        self._running_length += 1
        for env in np.flatnonzero(np.asarray(done).reshape(self.n_envs)):
            length = int(self._running_length[env])
            learned = math.nan
            if self.reward_mode == "learned" and length <= self.buffer_size:
                # Summed from the stored rows, so an episode that began before the last
                # relabelling is scored entirely by the current reward model.
                self.score_pending()
                rows = (self._episode_start[env] + np.arange(length)) % self.buffer_size
                learned = float(self.rewards[rows, env].sum())
            self.finished_episodes.append(
                FinishedEpisode(float(self._running_true[env]), learned, length, self.total_steps)
            )
            self._running_true[env] = self._running_length[env] = 0
            self._episode_start[env] = self.pos
            self._episode_counter[env] += 1

    @property
    def reward_fn(self) -> RewardFn | None:
        """The learned reward that scores rows stored in ``"learned"`` mode."""
        return self._reward_fn

    @reward_fn.setter
    def reward_fn(self, fn: RewardFn | None) -> None:
        self.score_pending()  # rows stored so far keep the reward of the function they were stored under
        self._reward_fn = fn

    def score_pending(self) -> int:
        """Write the learned reward of every row stored since the last scoring (all env
        columns), in one batched call; returns the rows scored."""
        if not self._pending:
            return 0
        rows = (self.pos - self._pending + np.arange(self._pending)) % self.buffer_size
        self._pending = 0
        if self._reward_fn is None:
            return 0
        flat = len(rows) * self.n_envs
        reward = self._reward_fn(
            self.observations[rows].reshape(flat, -1),
            self.actions[rows].reshape(flat, -1),
            self.next_observations[rows].reshape(flat, -1),
        )
        self.rewards[rows] = np.asarray(reward, dtype=self.rewards.dtype).reshape(len(rows), self.n_envs)
        return len(rows)

    def start_new_episodes(self) -> None:
        """Treat the next stored step of every env as the start of a new episode (after a resume
        that could not restore the environments), so clips never join two episodes."""
        self._episode_counter += 1
        self._running_true[:] = 0
        self._running_length[:] = 0
        self._episode_start[:] = self.pos

    _ROW_ARRAYS = (
        "observations",
        "next_observations",
        "actions",
        "rewards",
        "dones",
        "timeouts",
        "true_rewards",
        "episode_ids",
        "env_steps",
        "render_states",
    )

    def __getstate__(self) -> dict[str, Any]:
        # Checkpoints pickle the buffer: save only the filled rows (SB3 preallocates the whole
        # capacity), and not the reward function, a method of the reward model saved on its own.
        self.score_pending()
        state = self.__dict__.copy()
        state["_reward_fn"] = None
        if not self.full:
            for name in self._ROW_ARRAYS:
                if state.get(name) is not None:
                    state[name] = state[name][: self.pos].copy()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "reward_fn" in state:  # a checkpoint from before rows were scored in batches
            state["_reward_fn"] = state.pop("reward_fn")
        self.__dict__.update(state)
        self._pending = 0  # scored before saving
        if not self.full:
            for name in self._ROW_ARRAYS:
                rows = getattr(self, name, None)
                if rows is not None and len(rows) < self.buffer_size:
                    full = np.zeros((self.buffer_size, *rows.shape[1:]), dtype=rows.dtype)
                    full[: len(rows)] = rows
                    setattr(self, name, full)

    def drain_finished_episodes(self) -> list[FinishedEpisode]:
        done, self.finished_episodes = self.finished_episodes, []
        return done

    # ----------------------------------------------------------------- sampling
    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        if self._pending and ((self.pos - 1 - batch_inds) % self.buffer_size < self._pending).any():
            self.score_pending()  # a row this recent is still pending
        samples = super()._get_samples(batch_inds, env)
        if self.reward_mode != "intrinsic":
            return samples
        reference = torch.as_tensor(self.observations[: self.size()].reshape(-1, self.obs_shape[0])).float()
        reward = self.entropy(samples.next_observations.cpu().float(), reference)
        return samples._replace(rewards=reward.reshape(-1, 1).to(samples.rewards.device))

    # -------------------------------------------------------------- relabelling
    def relabel(self, reward_fn: RewardFn, chunk: int = 65536) -> int:
        """Rewrite the learned reward of every stored row (all env columns); returns rows relabelled.

        Rows are flattened over (row, env) and passed to ``reward_fn`` in chunks, which runs
        without gradients (see :meth:`pebble.reward_model.RewardModel.reward`).
        """
        self._pending = 0  # every row is scored below
        obs, act, nxt = self.stored_inputs()
        flat = self.rewards[: self.size()].reshape(-1)  # a view: writes land in self.rewards
        for start in range(0, len(flat), chunk):
            part = slice(start, start + chunk)
            flat[part] = reward_fn(obs[part], act[part], nxt[part])
        return len(flat)

    def stored_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observations, actions and next observations of every stored row, flattened over env
        columns (views)."""
        rows = self.size()
        flat = rows * self.n_envs
        return (
            self.observations[:rows].reshape(flat, -1),
            self.actions[:rows].reshape(flat, -1),
            self.next_observations[:rows].reshape(flat, -1),
        )

    def chronological_rows(self) -> np.ndarray:
        """Row indices of stored data, oldest first."""
        if self.full:
            return (self.pos + np.arange(self.buffer_size)) % self.buffer_size
        return np.arange(self.pos)

    def recent_rows(self, count: int) -> np.ndarray:
        rows = self.chronological_rows()
        return rows[-max(1, count // self.n_envs) :]

    # -------------------------------------------------------------------- clips
    def window_starts(self, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every valid clip start: (chronological position, env column, real steps in the clip).

        A window of ``length`` steps starting at a row is valid if it stays inside the
        stored part of one episode, or if the episode *terminated* before the window ends:
        the rest is then padding, the absorbing state after termination (true and learned
        reward 0). Windows of truncated or unfinished episodes must be complete, since
        their future is unknown. The last window of every episode is included.
        """
        rows = self.chronological_rows()
        n = len(rows)
        positions, envs, real = [], [], []
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        terminated = (self.dones > 0) & (self.timeouts == 0)
        index = np.arange(n)
        for env in range(self.n_envs):
            ep = self.episode_ids[rows, env]
            ends = np.flatnonzero(np.append(ep[1:] != ep[:-1], True))
            run_end = ends[np.searchsorted(ends, index)]
            remaining = run_end - index + 1
            run_terminated = terminated[rows[run_end], env]
            valid = (remaining >= length) | run_terminated
            positions.append(index[valid])
            envs.append(np.full(int(valid.sum()), env))
            real.append(np.minimum(remaining[valid], length))
        return np.concatenate(positions), np.concatenate(envs), np.concatenate(real)

    def sample_clips(self, count: int, length: int, rng: np.random.Generator, recent: int = 0) -> Segments:
        """``count`` clips drawn uniformly (with replacement) from all valid windows.

        With ``recent > 0`` only windows that start within the last ``recent`` stored steps
        (all environment copies together) are drawn, so that queries show what the agent
        does now; the whole buffer is used while that part holds no valid window.
        """
        positions, envs, real = self.window_starts(length)
        if len(positions) == 0:
            raise ValueError(f"no stored episode piece is long enough for a clip of {length} steps yet")
        if recent > 0:
            first = self.size() - max(1, recent // self.n_envs)  # positions count stored rows, oldest first
            inside = positions >= first
            if inside.any():
                positions, envs, real = positions[inside], envs[inside], real[inside]
        pick = rng.integers(len(positions), size=count)
        return self.gather(positions[pick], envs[pick], real[pick], length)

    def gather(self, positions: np.ndarray, envs: np.ndarray, real: np.ndarray, length: int) -> Segments:
        """Copy clips out of the buffer; steps beyond ``real`` become zeroed padding."""
        rows = self.chronological_rows()
        offsets = np.arange(length)
        mask = offsets[None, :] < real[:, None]
        chrono = positions[:, None] + np.minimum(offsets[None, :], real[:, None] - 1)
        idx = rows[chrono]
        col = envs[:, None]
        obs = self.observations[idx, col] * mask[..., None]
        act = self.actions[idx, col] * mask[..., None]
        nxt = self.next_observations[idx, col] * mask[..., None]
        true = self.true_rewards[idx, col] * mask
        start = self.env_steps[idx[:, 0], envs]
        states = None if self.render_states is None else self.render_states[idx, col]
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
