"""The critic reset replaces critic, target and optimiser, and keeps actor and temperature;
the actor reset starts the policy afresh and keeps the temperature (which has a reset of its
own, tests/test_pretraining_options.py): on torch (SB3, sb3-contrib)
and on JAX (SBX) alike."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import TQC, CrossQ
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
    temperature = model.log_ent_coef.item() if algo is SAC else None
    reset_actor(model)
    assert all(not torch.equal(v, model.actor.state_dict()[k]) for k, v in actor_before.items())
    assert all(torch.equal(v, model.critic.state_dict()[k]) for k, v in critic_before.items())
    assert model.actor.optimizer is not old_optimizer and not model.actor.optimizer.state
    assert model.policy.actor is model.actor
    if algo is SAC:
        assert model.log_ent_coef.item() == temperature  # kept: --reset-temperature is separate
    else:
        assert all(torch.equal(v, model.actor_target.state_dict()[k]) for k, v in model.actor.state_dict().items())
    trained = {k: v.clone() for k, v in model.actor.state_dict().items()}
    model.learn(100, reset_num_timesteps=False)  # the new optimiser trains the new actor
    assert any(not torch.equal(v, model.actor.state_dict()[k]) for k, v in trained.items())


@pytest.mark.parametrize("algo", [TQC, CrossQ])
def test_sb3_contrib_resets_change_the_critic_keep_the_actor(algo) -> None:
    model = algo("MlpPolicy", gym.make("Pendulum-v1"), learning_starts=50, seed=0, policy_kwargs={"net_arch": [16]})
    model.learn(150)
    actor_before = {k: v.clone() for k, v in model.actor.state_dict().items()}
    critic_before = {k: v.clone() for k, v in model.critic.state_dict().items() if v.is_floating_point()}
    reset_critic(model)
    assert all(torch.equal(v, model.actor.state_dict()[k]) for k, v in actor_before.items())
    critic = model.critic.state_dict()
    # every weight is redrawn; CrossQ's batch statistics, trained away from their start, go back to it
    assert all(not torch.equal(v, critic[k]) for k, v in critic_before.items())
    if algo is CrossQ:
        assert all(torch.equal(v, torch.zeros_like(v)) for k, v in critic.items() if k.endswith("ra_mean"))
        assert all(int(v) == 0 for k, v in critic.items() if k.endswith("steps"))
    else:
        assert all(torch.equal(v, model.critic_target.state_dict()[k]) for k, v in critic.items())
    reset_actor(model)
    actor = model.actor.state_dict()
    assert all(not torch.equal(v, actor[k]) for k, v in actor_before.items() if v.is_floating_point())
    model.learn(60, reset_num_timesteps=False)  # the fresh optimisers train


def _leaves(tree) -> list[np.ndarray]:
    import jax

    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))


def _critic_states(model) -> dict:
    return {n: s for n, s in vars(model.policy).items() if n.startswith("qf") and n.endswith("_state")}


@pytest.mark.parametrize("name", ["SAC", "TD3", "DDPG", "TQC", "CrossQ"])
def test_jax_resets_change_the_critic_keep_the_actor_and_keep_training(name: str) -> None:
    sbx = pytest.importorskip("sbx")
    model = getattr(sbx, name)("MlpPolicy", gym.make("Pendulum-v1"), learning_starts=50, seed=0,
                               policy_kwargs={"net_arch": [16]})  # fmt: skip
    model.learn(150)
    actor, critics = model.policy.actor_state, _critic_states(model)
    ent = getattr(model, "ent_coef_state", None)
    reset_critic(model)
    assert model.policy.actor_state is actor  # the actor is untouched
    if ent is not None:
        assert model.ent_coef_state is ent  # and so is the temperature
    for n, old in critics.items():
        new = getattr(model.policy, n)
        # every critic weight redrawn (CrossQ's batch statistics, kept apart from them, restart too)
        assert not any(np.array_equal(x, y) for x, y in zip(_leaves(old.params), _leaves(new.params), strict=True))
        assert int(new.step) == 0 and new.apply_fn is old.apply_fn
        if hasattr(new, "target_params"):
            assert _same(new.params, new.target_params)
    reset_actor(model)
    assert not _same(model.policy.actor_state.params, actor.params)
    if ent is not None:  # the temperature has a reset of its own
        assert model.ent_coef_state is ent
    actor, critics = model.policy.actor_state, _critic_states(model)
    model.learn(60, reset_num_timesteps=False)  # the fresh optimisers train the fresh networks
    assert not _same(model.policy.actor_state.params, actor.params)
    assert all(not _same(getattr(model.policy, n).params, s.params) for n, s in critics.items())
