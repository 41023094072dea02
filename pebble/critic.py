"""Resetting the critic of an SB3 off-policy algorithm (PEBBLE, Sec. 4.2).

After pre-training on the intrinsic reward, the Q-function estimates a reward that is no
longer optimised; PEBBLE resets it (critic, target critic and the critic's optimiser) and
keeps the actor and, for SAC, the entropy temperature, whose exploration carries over.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm


def reset_critic(model: OffPolicyAlgorithm) -> None:
    """Re-initialise critic weights in place, copy them to the target, and start a fresh optimiser.

    Works for any SB3 algorithm whose policy has ``critic``, ``critic_target`` and
    ``critic.optimizer`` (SAC, TD3, DDPG; sb3-contrib's TQC). Re-initialising in place keeps
    every alias the algorithm holds (``model.critic`` is ``model.policy.critic``) valid.
    """
    policy: Any = model.policy  # SAC/TD3/DDPG policies; typed loosely across algorithms
    if not all(hasattr(policy, name) for name in ("critic", "critic_target")):
        raise TypeError(f"{type(model).__name__} has no critic/critic_target to reset")
    critic: Any = policy.critic
    shared = getattr(policy, "share_features_extractor", False)
    for name, module in critic.named_modules():
        if shared and name.startswith("features_extractor"):
            continue  # the actor's features extractor must keep its weights
        if hasattr(module, "reset_parameters") and module is not critic:
            module.reset_parameters()
    policy.critic_target.load_state_dict(critic.state_dict())
    params = [p for n, p in critic.named_parameters() if not (shared and "features_extractor" in n)]
    old = critic.optimizer
    critic.optimizer = policy.optimizer_class(params, lr=old.param_groups[0]["lr"], **policy.optimizer_kwargs)
