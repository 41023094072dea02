"""Reward sources: what the RL learner is trained on, handed to the replay buffer explicitly.

A source gives each stored transition its reward (:meth:`RewardSource.score`) and may
replace the rewards of a sampled minibatch (:meth:`RewardSource.minibatch_rewards`):

* :class:`TrueReward`: the environment's reward (the plain-RL baseline and the perfect-reward
  diagnostic, ``bench/diagnostics/oracle_reward.py``);
* :class:`NoReward`: zero, for updates before the first feedback session without pre-training;
* :class:`LearnedReward`: the reward model's mean r_hat(s, a, s') (PEBBLE after pre-training);
  scoring is batched, since one model call costs about as much for 30 rows as for one;
* :class:`pebble.state_entropy.StateEntropyReward`: the k-NN state-entropy reward of each
  minibatch, computed when it is sampled (pre-training).

A variant that changes what the learner sees (RUNE's mean + beta * std) is a new source,
returned by :meth:`pebble.reward_learning.RewardLearner.reward_source`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from pebble.reward_model import RewardModel


class RewardSource:
    """Base class: rows keep the environment's reward and minibatches are left as sampled."""

    #: short name, shown in progress lines
    name = "true reward"
    #: rows are scored in batches before anything reads them (see PreferenceReplayBuffer)
    batched = False
    #: the reward comes from a learned model (its episode returns are logged beside the true ones)
    learned = False

    def score(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, true: np.ndarray) -> np.ndarray:
        """Rewards (N,) of N transitions (N, obs_dim), (N, act_dim), (N, obs_dim), true rewards (N,)."""
        return true

    def minibatch_rewards(self, next_obs: Tensor, stored_obs: np.ndarray) -> Tensor | None:
        """Rewards (B,) replacing those of a sampled minibatch, or None to keep the stored ones.

        ``stored_obs`` holds every stored observation (N, obs_dim)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class TrueReward(RewardSource):
    """The environment's reward."""


class NoReward(RewardSource):
    """No reward at all: what a learner that updates before the first feedback session trains on
    when there is no pre-training (a PrefPPO rollout that ends in the seed steps), so that the
    true reward never reaches it. Rows keep the environment's reward for the teacher."""

    name = "no reward"

    def minibatch_rewards(self, next_obs: Tensor, stored_obs: np.ndarray) -> Tensor | None:
        return torch.zeros(len(next_obs), dtype=next_obs.dtype)


class LearnedReward(RewardSource):
    """The mean over the ensemble of the reward model's reward."""

    name = "learned reward"
    batched = True
    learned = True

    def __init__(self, model: RewardModel) -> None:
        self.model = model

    def score(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, true: np.ndarray) -> np.ndarray:
        return self.model.reward(obs, actions, next_obs)
