"""The critic reset replaces critic, target and optimiser, and keeps actor and temperature."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import DDPG, SAC, TD3

from pebble.critic import reset_critic


@pytest.mark.parametrize("algo", [SAC, TD3, DDPG])
def test_reset_changes_critic_keeps_actor(algo) -> None:
    model = algo("MlpPolicy", gym.make("Pendulum-v1"), learning_starts=50, seed=0, policy_kwargs={"net_arch": [16]})
    model.learn(200)
    actor_before = {k: v.clone() for k, v in model.actor.state_dict().items()}
    critic_before = {k: v.clone() for k, v in model.critic.state_dict().items()}
    ent_before = model.log_ent_coef.detach().clone() if algo is SAC else None
    old_optimizer = model.critic.optimizer
    reset_critic(model)
    assert all(torch.equal(v, model.actor.state_dict()[k]) for k, v in actor_before.items())
    changed = [not torch.equal(v, model.critic.state_dict()[k]) for k, v in critic_before.items()]
    assert all(changed)
    assert all(torch.equal(v, model.critic_target.state_dict()[k]) for k, v in model.critic.state_dict().items())
    assert model.critic.optimizer is not old_optimizer and not model.critic.optimizer.state
    assert model.policy.critic is model.critic
    if ent_before is not None:
        assert torch.equal(ent_before, model.log_ent_coef.detach())
    model.learn(100, reset_num_timesteps=False)  # the new optimiser trains the critic
    assert any(not torch.equal(v, model.critic_target.state_dict()[k]) for k, v in model.critic.state_dict().items())
