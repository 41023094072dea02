"""Resetting the networks of an SB3 off-policy algorithm after pre-training (PEBBLE, Sec. 4.2).

After pre-training on the intrinsic reward, the Q-function estimates a reward that is no
longer optimised; PEBBLE resets it (critic, target critic and the critic's optimiser) and
keeps the actor and, for SAC, the entropy temperature, whose exploration carries over.
``reset_actor`` also starts the policy afresh, for tasks where the pre-trained behaviour is
a trap (docs/performance.md: on HalfCheetah it flips the cheetah onto its back); the
temperature has a reset of its own (:func:`pebble.temperature.reset_temperature`).

The functions here reset torch networks (Stable-Baselines3, sb3-contrib) in place; an SBX
(JAX) algorithm, whose networks are immutable train states, is handed to
:mod:`pebble.jax_resets`.
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from torch import nn


def is_jax(model: OffPolicyAlgorithm) -> bool:
    """Whether ``model`` is an SBX algorithm (its networks are JAX train states)."""
    return hasattr(model.policy, "actor_state")


def reset_critic(model: OffPolicyAlgorithm) -> None:
    """Re-initialise critic weights in place, copy them to the target, and start a fresh optimiser.

    Works for any SB3 algorithm whose policy has ``critic`` and ``critic.optimizer`` (SAC,
    TD3, DDPG; sb3-contrib's TQC, and CrossQ, which has no target critic and whose batch
    renormalisation statistics start afresh too). Re-initialising in place keeps every alias
    the algorithm holds (``model.critic`` is ``model.policy.critic``) valid.
    """
    if is_jax(model):
        from pebble import jax_resets

        return jax_resets.reset_critic(model)
    policy: Any = model.policy  # SAC/TD3/DDPG policies; typed loosely across algorithms
    if not hasattr(policy, "critic"):
        raise TypeError(f"{type(model).__name__} has no critic to reset")
    critic: Any = policy.critic
    shared = getattr(policy, "share_features_extractor", False)
    _reinitialise(critic, skip="features_extractor" if shared else None)
    if getattr(policy, "critic_target", None) is not None:
        policy.critic_target.load_state_dict(critic.state_dict())
    params = [p for n, p in critic.named_parameters() if not (shared and "features_extractor" in n)]
    critic.optimizer = _fresh_optimizer(policy, critic.optimizer, params)


def reset_actor(model: OffPolicyAlgorithm) -> None:
    """Re-initialise the actor (and its target, TD3/DDPG) in place with a fresh optimiser.

    Together with :func:`reset_critic` and :func:`pebble.temperature.reset_temperature` the RL
    agent starts from scratch on a buffer that keeps every pre-training transition. With a
    shared features extractor, resetting the actor resets the extractor the critic uses too.
    """
    if is_jax(model):
        from pebble import jax_resets

        return jax_resets.reset_actor(model)
    policy: Any = model.policy
    if not hasattr(policy, "actor"):
        raise TypeError(f"{type(model).__name__} has no actor to reset")
    actor: Any = policy.actor
    _reinitialise(actor)
    if getattr(policy, "actor_target", None) is not None:
        policy.actor_target.load_state_dict(actor.state_dict())
    actor.optimizer = _fresh_optimizer(policy, actor.optimizer, list(actor.parameters()))


def _fresh_optimizer(policy: Any, old: torch.optim.Optimizer, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """A new optimiser of the policy's class over ``params``, at ``old``'s current learning rate
    (SB3 schedules may have changed it since construction), with no moment estimates."""
    return policy.optimizer_class(params, lr=old.param_groups[0]["lr"], **policy.optimizer_kwargs)


def _reinitialise(module: nn.Module, skip: str | None = None) -> None:
    """Reset the parameters of every submodule that can (Linear layers, batch normalisation),
    except ``skip``; CrossQ's batch renormalisation layers start from unit scale, zero bias
    and empty running statistics, as when built."""
    for name, sub in module.named_modules():
        if (skip and name.startswith(skip)) or sub is module:
            continue
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
        elif hasattr(sub, "ra_mean"):  # sb3-contrib's BatchRenorm, which has no reset method
            with torch.no_grad():
                sub.ra_mean.zero_()
                sub.ra_var.fill_(1.0)
                sub.steps.zero_()
                sub.scale.fill_(1.0)
                sub.bias.zero_()
