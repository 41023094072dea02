"""The critic reset replaces critic, target and optimiser, and keeps actor and temperature;
the actor reset starts the policy (and SAC's temperature) afresh."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import DDPG, SAC, TD3

from pebble.resets import reset_actor, reset_critic


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


@pytest.mark.parametrize("algo", [SAC, TD3])
def test_reset_actor_starts_the_policy_afresh(algo) -> None:
    model = algo("MlpPolicy", gym.make("Pendulum-v1"), learning_starts=50, seed=0, policy_kwargs={"net_arch": [16]})
    model.learn(300)
    actor_before = {k: v.clone() for k, v in model.actor.state_dict().items()}
    critic_before = {k: v.clone() for k, v in model.critic.state_dict().items()}
    old_optimizer = model.actor.optimizer
    if algo is SAC:
        assert model.log_ent_coef.item() < -0.01  # the temperature has moved from its start, 1.0
    reset_actor(model)
    assert all(not torch.equal(v, model.actor.state_dict()[k]) for k, v in actor_before.items())
    assert all(torch.equal(v, model.critic.state_dict()[k]) for k, v in critic_before.items())
    assert model.actor.optimizer is not old_optimizer and not model.actor.optimizer.state
    assert model.policy.actor is model.actor
    if algo is SAC:
        assert model.log_ent_coef.item() == 0.0 and not model.ent_coef_optimizer.state
    else:
        assert all(torch.equal(v, model.actor_target.state_dict()[k]) for k, v in model.actor.state_dict().items())
    trained = {k: v.clone() for k, v in model.actor.state_dict().items()}
    model.learn(100, reset_num_timesteps=False)  # the new optimiser trains the new actor
    assert any(not torch.equal(v, model.actor.state_dict()[k]) for k, v in trained.items())
