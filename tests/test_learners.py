"""The learner seam: SB3 off-policy algorithms with PEBBLE's buffer, relabelled and reset on request."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.make import make_vec_env
from pebble.config import ALGO_NAMES, Config
from pebble.learners import ALGORITHMS, OffPolicyLearner, build_off_policy
from pebble.reward_sources import RewardSource, TrueReward


def test_every_algorithm_name_has_its_sb3_class() -> None:
    assert set(ALGORITHMS) == set(ALGO_NAMES)


class Doubled(RewardSource):
    batched = learned = True

    def score(self, obs: np.ndarray, act: np.ndarray, nxt: np.ndarray, true: np.ndarray) -> np.ndarray:
        return 2 * true


@pytest.mark.parametrize("algo", ALGO_NAMES)
def test_an_off_policy_learner_relabels_its_buffer_and_ends_pre_training(algo: str) -> None:
    config = Config(env="InvertedPendulum-v5", seed=0)
    config.algo.algo, config.algo.net_arch, config.algo.batch_size = algo, [16], 32  # type: ignore[assignment]
    config.pretrain.seed_steps = 50
    model = build_off_policy(config, make_vec_env(config.env, 1, 0))
    learner = OffPolicyLearner(model)
    learner.use_reward(TrueReward(), relabel=False)
    model.learn(120)
    learned, true = learner.recent_rewards(1000)
    np.testing.assert_array_equal(learned, true)
    learner.use_reward(Doubled())  # every stored row, at once
    learned, true = learner.recent_rewards(1000)
    np.testing.assert_array_equal(learned, 2 * true)
    assert learner.reward_source.learned and len(learned) == model.replay_buffer.size() == 120
    critic = {k: v.clone() for k, v in model.critic.state_dict().items()}
    updates = model._n_updates
    learner.end_pretraining(critic=True, actor=False, extra_updates=7)
    assert model._n_updates == updates + 7  # the extra updates ran on the relabelled buffer
    assert any(not torch.equal(v, model.critic.state_dict()[k]) for k, v in critic.items())
