"""The resets of :mod:`pebble.resets` for SBX (JAX) algorithms.

SBX keeps each network as an immutable flax train state on the policy (``actor_state``;
``qf_state``, or ``qf1_state`` and ``qf2_state`` for TQC), with target parameters inside the
state (``RLTrainState``) and, for CrossQ, batch-normalisation statistics
(``BatchNormTrainState``). A reset builds a fresh policy of the same class and settings
with a key split from the algorithm's own (so a seed's run stays reproducible), and swaps its
new states in. Each new state keeps the old one's apply function and optimiser definition
(static fields of the state): the compiled update steps then stay valid and nothing is
compiled again; the optimiser starts with no moment estimates.
"""

from __future__ import annotations

import copy
from typing import Any

import jax


def reset_critic(model: Any) -> None:
    """Fresh critic parameters (targets equal to them), optimiser state and, for CrossQ, batch
    statistics; the actor and the entropy temperature are kept."""
    policy = model.policy
    fresh = _fresh_policy(model)
    names = [name for name in vars(policy) if name.startswith("qf") and name.endswith("_state")]
    if not names:
        raise TypeError(f"{type(model).__name__} has no critic state to reset")
    for name in names:
        setattr(policy, name, _renewed(getattr(policy, name), getattr(fresh, name)))


def reset_actor(model: Any) -> None:
    """Fresh actor parameters (and target, TD3/DDPG) and optimiser state (the temperature is
    :func:`pebble.temperature.reset_temperature`'s)."""
    policy = model.policy
    fresh = _fresh_policy(model)
    policy.actor_state = _renewed(policy.actor_state, fresh.actor_state)


def _fresh_policy(model: Any) -> Any:
    """A newly built policy of ``model``'s class and settings, from a key split off ``model.key``.

    Building samples the spaces; copies are passed so that the algorithm's own action-space
    RNG (saved in checkpoints) does not move.
    """
    policy = model.policy_class(
        copy.deepcopy(model.observation_space), copy.deepcopy(model.action_space), model.lr_schedule,
        **model.policy_kwargs,
    )  # fmt: skip
    model.key, key = jax.random.split(model.key)
    policy.build(key, model.lr_schedule, model.qf_learning_rate)
    return policy


def _renewed(old: Any, fresh: Any) -> Any:
    """``fresh``'s parameters (and targets, batch statistics) with ``old``'s apply function and
    optimiser definition, and a fresh optimiser state."""
    return fresh.replace(apply_fn=old.apply_fn, tx=old.tx, opt_state=old.tx.init(fresh.params))
