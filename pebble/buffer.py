"""The PEBBLE replay buffer: an SB3 ``ReplayBuffer`` that knows true and learned rewards.

Beside SB3's arrays it stores, for every row and environment column, the environment's
true reward, an episode id and the global env step (and, for a person's videos, the
simulator state). Its ``rewards`` array (what the RL algorithm learns from) is filled by the
:class:`~pebble.reward_sources.RewardSource` it is given (:meth:`use_reward_source`):

* a source that scores rows (the learned reward) rewrites *every* stored row and every env
  column on :meth:`relabel` (unlike the reference, which skips rows after the buffer wraps,
  BPref issue #7). Rows stored between relabellings are scored in batches, not one model
  call per env step, in fixed blocks, so that a row's reward does not depend on when it was
  scored: a new row is scored before any minibatch, episode return, checkpoint or change of
  source can see it. Code that reads ``rewards`` directly calls
  :meth:`score_pending` first;
* a source may instead replace each sampled minibatch's rewards (the state-entropy reward of
  pre-training, computed against every stored observation).

Clips for the teacher are cut from it by :mod:`pebble.clips`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from pebble.reward_sources import RewardSource, TrueReward


class NonFiniteError(ValueError):
    """The environment produced NaN or infinite observations or rewards."""


@dataclass
class FinishedEpisode:
    """True return of one training episode and its return under the buffer's reward source
    (``learned_return``: what the RL learner saw; NaN if the episode outgrew the buffer)."""

    true_return: float
    learned_return: float
    length: int
    env_step: int


class PreferenceReplayBuffer(ReplayBuffer):
    """Replay buffer with true rewards, episode ids and an explicit reward source."""

    #: rows scored together at the latest (usually a minibatch touches one much sooner)
    MAX_PENDING_ROWS = 1024
    #: rows per scoring batch (see :meth:`score_pending`)
    SCORE_BLOCK = 256

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        render_state_dim: int = 0,
        reward_source: RewardSource | None = None,
        knn_k: int | None = None,  # accepted, unused: pebble 0.1 checkpoints rebuild the buffer with it
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
        self._source: RewardSource = reward_source if reward_source is not None else TrueReward()
        # Rows stored under a batched source and not scored yet: always the last ``_pending``
        # rows before ``pos``, since rows are stored in order and scored all at once.
        self._pending = 0
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
        if self._source.batched:
            self._pending = min(self._pending + 1, self.buffer_size)
            if self._pending >= self.MAX_PENDING_ROWS:  # bounded even if nothing samples
                self.score_pending()
        self._running_true += true
        self._running_length += 1
        for env in np.flatnonzero(np.asarray(done).reshape(self.n_envs)):
            length = int(self._running_length[env])
            learned = math.nan
            if length <= self.buffer_size:
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
    def reward_source(self) -> RewardSource:
        """Where the rows' rewards come from (set with :meth:`use_reward_source`)."""
        return self._source

    def use_reward_source(self, source: RewardSource, relabel: bool = True) -> None:
        """Train on ``source`` from now on; with ``relabel``, rewrite every stored row with it.

        Without ``relabel`` (a resumed run, whose rows were saved already scored), rows stored
        so far keep the reward they were stored under.
        """
        if relabel:
            self._source = source
            self.relabel()
        else:
            self.score_pending()
            self._source = source

    def score_pending(self) -> int:
        """Write the learned reward of every row stored since the last scoring (all env
        columns); returns the rows scored.

        Rows are scored in blocks of :data:`SCORE_BLOCK` rows aligned to the count of rows ever
        stored, each block one batch of that fixed size in which every row has a fixed place
        (rows not stored yet are zeros). A matrix product's rounding depends on the batch's
        shape and on a row's place in it, so a row scored in a batch whose size depended on
        *when* scoring happened would get a reward that differs in the last bits between a run
        and the same run resumed from a checkpoint taken at another moment (or logged at
        another interval), and the two would drift apart. This way a row's reward depends on
        the row and the model only.
        """
        if not self._pending:
            return 0
        end = self.total_steps // self.n_envs  # rows ever stored
        start, block = end - self._pending, self.SCORE_BLOCK
        self._pending = 0
        for first in range(start - start % block, end, block):
            lo, hi = max(start, first), min(end, first + block)
            rows = np.arange(lo, hi) % self.buffer_size
            places = slice((lo - first) * self.n_envs, (hi - first) * self.n_envs)
            inputs = []
            for array in (self.observations, self.actions, self.next_observations, self.true_rewards):
                padded = np.zeros((block * self.n_envs, *array.shape[2:]), dtype=array.dtype)
                padded[places] = array[rows].reshape(-1, *array.shape[2:])
                inputs.append(padded)
            reward = np.asarray(self._source.score(*inputs), dtype=self.rewards.dtype)[places]
            self.rewards[rows] = reward.reshape(len(rows), self.n_envs)
        return end - start

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
        # capacity), and not the reward source (the reward model is saved on its own; the
        # loop hands the source back on resume).
        self.score_pending()
        state = self.__dict__.copy()
        state["_source"] = None
        if not self.full:
            for name in self._ROW_ARRAYS:
                if state.get(name) is not None:
                    state[name] = state[name][: self.pos].copy()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for legacy in ("reward_fn", "_reward_fn", "reward_mode"):  # checkpoints of pebble 0.1
            state.pop(legacy, None)
        #: pebble 0.1 kept the state-entropy statistics here; the pre-training phase takes them over
        self.legacy_entropy = state.pop("entropy", None)
        self.__dict__.update(state)
        self._source = TrueReward()  # until the loop hands back the run's source
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
        stored = self.observations[: self.size()].reshape(-1, self.obs_shape[0])
        reward = self._source.minibatch_rewards(samples.next_observations.cpu().float(), stored)
        if reward is None:
            return samples
        return samples._replace(rewards=reward.reshape(-1, 1).to(samples.rewards.device))

    # -------------------------------------------------------------- relabelling
    def relabel(self, chunk: int = 65536) -> int:
        """Rewrite the reward of every stored row (all env columns) with the reward source;
        returns the rows relabelled. Rows are flattened over (row, env) and scored in chunks."""
        self._pending = 0  # every row is scored below
        obs, act, nxt = self.stored_inputs()
        true = self.true_rewards[: self.size()].reshape(-1)
        flat = self.rewards[: self.size()].reshape(-1)  # a view: writes land in self.rewards
        for start in range(0, len(flat), chunk):
            part = slice(start, start + chunk)
            flat[part] = self._source.score(obs[part], act[part], nxt[part], true[part])
        return len(flat)

    def stored_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observations, actions and next observations of every stored row, flattened over env
        columns (views)."""
        rows = self.size()
        flat = rows * self.n_envs
        return (  # explicit widths: an empty buffer has no -1 to infer
            self.observations[:rows].reshape(flat, self.observations.shape[2]),
            self.actions[:rows].reshape(flat, self.actions.shape[2]),
            self.next_observations[:rows].reshape(flat, self.next_observations.shape[2]),
        )

    def chronological_rows(self) -> np.ndarray:
        """Row indices of stored data, oldest first."""
        if self.full:
            return (self.pos + np.arange(self.buffer_size)) % self.buffer_size
        return np.arange(self.pos)

    def recent_rows(self, count: int) -> np.ndarray:
        rows = self.chronological_rows()
        return rows[-max(1, count // self.n_envs) :]
