"""Unsupervised pre-training, PEBBLE's first phase (Sec. 4.1), and its end (Sec. 4.2).

For ``unsup_steps`` steps after the seed steps the learner trains on the k-NN state-entropy
reward (:class:`~pebble.state_entropy.StateEntropyReward`, a reward source computed for
each minibatch), so that the first clips the teacher sees are diverse. When the first
feedback session has relabelled the buffer with the learned reward, pre-training ends:

* the critic is reset (new critic, new target, new optimiser): its Q-values estimate a
  reward that is no longer optimised; the actor and SAC's temperature are kept, so the
  exploration carries over (``--reset-actor`` starts the policy afresh too,
  ``--reset-temperature`` the temperature);
* ``extra_updates`` RL updates run on the relabelled buffer before the next env step
  (the reference runs 100).

RIME's warm start (``--warm-start-epochs``) instead makes the reward model regress the
intrinsic reward of the stored transitions before it sees the first labels, so that the
learned reward starts where the critic's Q-values were trained and the critic can be kept
(``--no-reset-critic``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pebble.config import PretrainConfig
from pebble.learners import Learner
from pebble.reward_sources import NoReward, RewardSource
from pebble.state_entropy import KnnFeatures, StateEntropyReward
from pebble.tensorboard import ScalarWriter


class Pretraining:
    """The pre-training phase: its reward source, its end, its TensorBoard tags."""

    def __init__(self, config: PretrainConfig, positions: int | None = None) -> None:
        """``positions``: how many leading observation entries are joint positions (``--knn-features positions``)."""
        self.config = config
        features = KnnFeatures(config.knn_features, positions)
        self.entropy = StateEntropyReward(config.knn_k, features, config.intrinsic_reward)

    @property
    def enabled(self) -> bool:
        return self.config.unsup_steps > 0

    def reward_source(self) -> RewardSource:
        """What the learner trains on from the first update until the first feedback session:
        nothing without pre-training (an off-policy learner makes no update before it; PrefPPO
        may, if a rollout ends in the seed steps)."""
        return self.entropy if self.enabled else NoReward()

    def finish(self, learner: Learner) -> None:
        """End pre-training: reset what the config says and run the extra updates."""
        c = self.config
        learner.end_pretraining(critic=c.reset_critic, actor=c.reset_actor, extra_updates=c.extra_updates,
                                temperature=c.reset_temperature)  # fmt: skip

    @property
    def warm_start_epochs(self) -> int:
        """Epochs of the reward model's warm start when pre-training ends (0: none, or no pre-training)."""
        return self.config.warm_start_epochs if self.enabled else 0

    def intrinsic_rewards(self, obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """The intrinsic reward (N,) of N stored transitions, whose observations ``obs`` are the
        k-NN reference, at the running statistics reached (which they leave unchanged)."""
        reference = torch.as_tensor(obs).float()
        return self.entropy(torch.as_tensor(next_obs).float(), reference, update=False).numpy()

    def log(self, writer: ScalarWriter, step: int) -> None:
        """``pretrain/*``: the k-NN distances and the intrinsic reward of the last minibatch."""
        writer.add_scalar("pretrain/knn_distance_mean", self.entropy.last_distance_mean, step)
        writer.add_scalar("pretrain/knn_running_std", self.entropy.running_std, step)
        writer.add_scalar("pretrain/intrinsic_reward_mean", self.entropy.last_reward_mean, step)

    def state_dict(self) -> dict[str, Any]:
        return {"entropy": self.entropy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entropy.load_state_dict(state["entropy"])
