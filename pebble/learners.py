"""The RL learner behind a seam: what the PEBBLE loop needs from an SB3 algorithm.

The loop never touches SB3 internals; it asks a :class:`Learner` to

* train on a reward source (:meth:`Learner.use_reward`): an off-policy learner relabels its
  whole replay buffer; an on-policy learner (PrefPPO) would score each rollout with the
  source before computing advantages (a ``RolloutBuffer`` subclass whose
  ``compute_returns_and_advantage`` calls ``source.score`` first);
* offer clips for queries (:meth:`Learner.clip_pool`): the replay buffer, or a bounded pool
  of recent rollouts;
* report finished training episodes, the stored inputs the reward model is standardised
  with, and recent (learned, true) rewards for the correlation diagnostic;
* reset networks and run extra updates when pre-training ends.

:class:`OffPolicyLearner` is the one implementation today: SAC, TD3 or DDPG with
:class:`~pebble.buffer.PreferenceReplayBuffer`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from stable_baselines3 import DDPG, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from pebble.buffer import FinishedEpisode, PreferenceReplayBuffer
from pebble.clips import BufferClipPool, ClipPool
from pebble.config import AlgoName, Config
from pebble.resets import reset_actor, reset_critic
from pebble.reward_sources import RewardSource
from pebble.timing import Timings

#: The SB3 classes behind ``--algo`` (names: :data:`pebble.config.AlgoName`).
ALGORITHMS: dict[AlgoName, type[OffPolicyAlgorithm]] = {"sac": SAC, "td3": TD3, "ddpg": DDPG}


class Learner(ABC):
    """An SB3 algorithm as the PEBBLE loop sees it."""

    model: BaseAlgorithm

    @abstractmethod
    def use_reward(self, source: RewardSource, relabel: bool = True) -> None:
        """Train on ``source`` from now on (``relabel``: rewrite what is stored with it)."""

    @property
    @abstractmethod
    def reward_source(self) -> RewardSource:
        """The source the learner trains on now."""

    @abstractmethod
    def clip_pool(self, length: int, recent: int = 0) -> ClipPool:
        """Candidate clips of ``length`` steps (``recent``: from the last N steps only)."""

    @abstractmethod
    def finished_episodes(self) -> list[FinishedEpisode]:
        """Training episodes finished since the last call."""

    @abstractmethod
    def stored_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observations, actions and next observations of the stored transitions."""

    @abstractmethod
    def recent_rewards(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(reward the learner trains on, true reward) of the last ``count`` stored transitions."""

    @abstractmethod
    def recent_true_rewards(self, count: int) -> np.ndarray:
        """True reward of the last ``count`` stored transitions."""

    @abstractmethod
    def restart_episodes(self) -> None:
        """Start new episodes (a resume that could not restore the environments)."""

    @abstractmethod
    def end_pretraining(self, critic: bool, actor: bool, extra_updates: int) -> None:
        """Reset networks and run ``extra_updates`` updates on the relabelled data."""


class OffPolicyLearner(Learner):
    """An SB3 off-policy algorithm whose replay buffer is a :class:`PreferenceReplayBuffer`."""

    model: OffPolicyAlgorithm

    def __init__(self, model: OffPolicyAlgorithm, timings: Timings | None = None) -> None:
        if not isinstance(model.replay_buffer, PreferenceReplayBuffer):
            raise TypeError("the algorithm's replay buffer must be a PreferenceReplayBuffer")
        self.model = model
        self.buffer: PreferenceReplayBuffer = model.replay_buffer
        self.timings = timings if timings is not None else Timings()

    def use_reward(self, source: RewardSource, relabel: bool = True) -> None:
        with self.timings.measure("relabel") if relabel else contextlib.nullcontext():
            self.buffer.use_reward_source(source, relabel=relabel)

    @property
    def reward_source(self) -> RewardSource:
        return self.buffer.reward_source

    def clip_pool(self, length: int, recent: int = 0) -> ClipPool:
        return BufferClipPool(self.buffer, length, recent)

    def finished_episodes(self) -> list[FinishedEpisode]:
        return self.buffer.drain_finished_episodes()

    def stored_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.buffer.stored_inputs()

    def recent_rewards(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        self.buffer.score_pending()
        rows = self.buffer.recent_rows(count)
        return self.buffer.rewards[rows].reshape(-1), self.buffer.true_rewards[rows].reshape(-1)

    def recent_true_rewards(self, count: int) -> np.ndarray:
        return self.buffer.true_rewards[self.buffer.recent_rows(count)].reshape(-1)

    def restart_episodes(self) -> None:
        env = self.model.get_env()
        assert env is not None
        self.model._last_obs = env.reset()  # type: ignore[assignment]
        self.model._last_episode_starts = np.ones(env.num_envs, dtype=bool)
        self.buffer.start_new_episodes()

    def end_pretraining(self, critic: bool, actor: bool, extra_updates: int) -> None:
        if critic:
            reset_critic(self.model)
        if actor:
            reset_actor(self.model)
        if extra_updates and self.buffer.size() > 0:
            self.model.train(gradient_steps=extra_updates, batch_size=self.model.batch_size)


def build_off_policy(config: Config, env: Any, render_state_dim: int = 0) -> OffPolicyAlgorithm:
    """The SB3 algorithm with PEBBLE's replay buffer and the configured hyperparameters."""
    a = config.algo
    kwargs: dict[str, Any] = dict(
        learning_rate=a.learning_rate,
        buffer_size=a.buffer_size,
        learning_starts=config.pretrain.seed_steps,
        batch_size=a.batch_size,
        tau=a.tau,
        gamma=a.gamma,
        train_freq=a.train_freq,
        gradient_steps=a.gradient_steps,
        replay_buffer_class=PreferenceReplayBuffer,
        replay_buffer_kwargs={"render_state_dim": render_state_dim},
        policy_kwargs={"net_arch": list(a.net_arch)},
        seed=config.seed,
        device="cpu",
        verbose=0,
    )
    if a.algo in ("td3", "ddpg"):
        n_actions = env.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(n_actions), 0.1 * np.ones(n_actions))
    return ALGORITHMS[a.algo]("MlpPolicy", env, **kwargs)
