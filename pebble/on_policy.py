"""PrefPPO: SB3's PPO trained on the learned reward (the on-policy baseline of PEBBLE and B-Pref).

PPO keeps no replay buffer, so :class:`PrefPPO` keeps a bounded *clip pool* beside it: a
:class:`~pebble.buffer.PreferenceReplayBuffer` holding the transitions of the last
``rollout_pool`` rollouts, with their true rewards, episode ids and simulator states. The
pool is what the rest of pebble sees of a PPO run: query clips are cut from it, the reward
model's input statistics come from it, learned and true episode returns and the reward
correlation are read from it, and checkpoints save it (as ``replay_buffer.pkl``).

Each env step is copied into the pool by :class:`ClipPoolRecorder` (a callback PrefPPO puts
first, so the pool holds a step before any other callback, the feedback session included,
looks at it). When a rollout is complete, :class:`PreferenceRolloutBuffer` rescores it with
the pool's reward source *before* advantages are computed: the rollout's rewards become the
learned rewards, keeping the value bootstrap PPO adds at time-limit truncations (SB3 adds
``gamma * V(terminal obs)`` to the reward itself). A feedback session that falls inside a
rollout therefore trains the reward model on clips up to that step and the whole rollout is
scored by the new model. The true reward reaches the PPO update only with ``--true-reward``.

Pre-training (``--unsup-steps``) works as in B-Pref's PrefPPO: a rollout's reward is the
k-NN state-entropy reward of its next observations against every observation in the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl
from torch import nn

from pebble.buffer import PreferenceReplayBuffer


class PreferenceRolloutBuffer(RolloutBuffer):
    """A ``RolloutBuffer`` that lets its owner rewrite the rewards of a complete rollout before
    returns and advantages are computed from them."""

    #: set by :class:`PrefPPO` (not a constructor argument: SB3 saves those with the model)
    rescore: Callable[[RolloutBuffer], None] | None = None

    def compute_returns_and_advantage(self, last_values: torch.Tensor, dones: np.ndarray) -> None:
        if self.rescore is not None:
            self.rescore(self)
        super().compute_returns_and_advantage(last_values, dones)


class ClipPoolRecorder(BaseCallback):
    """Copies each env step of a PPO rollout into the model's clip pool, as an off-policy
    algorithm stores a transition: the next observation of a finished episode is its terminal
    one, and the action is scaled to [-1, 1] as SAC stores it (the reward model sees actions
    the same way whichever learner collected them)."""

    model: PrefPPO

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        next_obs = np.array(self.locals["new_obs"], copy=True)
        for env, done in enumerate(dones):
            if done and infos[env].get("terminal_observation") is not None:
                next_obs[env] = infos[env]["terminal_observation"]
        action = self.model.policy.scale_action(np.asarray(self.locals["clipped_actions"]))
        reward = np.array(self.locals["rewards"], copy=True)  # PPO adds the bootstrap to it in place later
        self.model.clip_pool.add(self.model._last_obs, next_obs, action, reward, dones, infos)  # type: ignore[arg-type]
        return True


class PrefPPO(PPO):
    """SB3's PPO with a clip pool and rollouts scored by the pool's reward source.

    ``clip_pool_size``: transitions the pool keeps (all env copies together); pebble sets it to
    ``rollout_pool * n_steps * n_envs``. ``render_state_dim``: size of the simulator states
    stored for rendering clips (0: none).
    """

    def __init__(self, policy: Any, env: Any, clip_pool_size: int = 16_384, render_state_dim: int = 0,
                 **kwargs: Any) -> None:  # fmt: skip
        self.clip_pool_size, self.render_state_dim = clip_pool_size, render_state_dim
        kwargs.setdefault("rollout_buffer_class", PreferenceRolloutBuffer)
        super().__init__(policy, env, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.clip_pool_size < self.n_steps * self.n_envs:
            raise ValueError(f"the clip pool ({self.clip_pool_size} steps) must hold a rollout "
                             f"({self.n_steps * self.n_envs} steps)")  # fmt: skip
        self.clip_pool = PreferenceReplayBuffer(
            self.clip_pool_size, self.observation_space, self.action_space, device="cpu", n_envs=self.n_envs,
            render_state_dim=self.render_state_dim,
        )  # fmt: skip
        if isinstance(self.rollout_buffer, PreferenceRolloutBuffer):
            self.rollout_buffer.rescore = self._rescore

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "clip_pool"]

    def _init_callback(self, callback: Any, progress_bar: bool = False) -> BaseCallback:
        recorder = ClipPoolRecorder()
        if isinstance(callback, list):
            callback = CallbackList(callback)
        parts = [recorder] if callback is None else [recorder, callback]
        return super()._init_callback(CallbackList(parts), progress_bar)

    def _rescore(self, rollout: RolloutBuffer) -> None:
        """Replace the true rewards in ``rollout`` (the pool's newest rows) by the pool source's."""
        pool = self.clip_pool
        rows = pool.recent_rows(rollout.buffer_size * pool.n_envs)
        true = pool.true_rewards[rows]
        source = pool.reward_source
        if source.batched:
            pool.score_pending()
            rewards = pool.rewards[rows]
        else:  # a reward computed against the stored states (pre-training), or none
            stored, _, _ = pool.stored_inputs()
            next_obs = torch.as_tensor(pool.next_observations[rows].reshape(-1, stored.shape[1])).float()
            batch = source.minibatch_rewards(next_obs, stored)
            if batch is None:
                return  # the stored rewards are the ones to train on (the true reward baseline)
            rewards = batch.detach().cpu().numpy().reshape(true.shape)
        # the difference is PPO's bootstrap where it added one and exactly 0 elsewhere
        rollout.rewards[:] = rewards + (rollout.rewards - true)

    # The pool is saved and loaded like an off-policy algorithm's replay buffer.
    def save_replay_buffer(self, path: str | Path) -> None:
        save_to_pkl(path, self.clip_pool, self.verbose)

    def load_replay_buffer(self, path: str | Path) -> None:
        self.clip_pool = load_from_pkl(path, self.verbose)


def reset_value_function(model: PPO) -> None:
    """Re-initialise PPO's value network in place as SB3 builds it, and forget the optimiser's
    moment estimates of its parameters (PPO has one optimiser for policy and value)."""
    policy: Any = model.policy
    _reinitialise(policy, [(policy.mlp_extractor.value_net, np.sqrt(2)), (policy.value_net, 1.0)])


def reset_policy(model: PPO) -> None:
    """Re-initialise PPO's policy network, action head and log-std in place, as SB3 builds them."""
    policy: Any = model.policy
    _reinitialise(policy, [(policy.mlp_extractor.policy_net, np.sqrt(2)), (policy.action_net, 0.01)])
    if isinstance(getattr(policy, "log_std", None), nn.Parameter):
        with torch.no_grad():
            policy.log_std.fill_(policy.log_std_init)
        policy.optimizer.state.pop(policy.log_std, None)


def _reinitialise(policy: Any, modules: list[tuple[nn.Module, float]]) -> None:
    for module, gain in modules:
        if policy.ortho_init:  # SB3's orthogonal initialisation with the gain it uses for this part
            module.apply(partial(policy.init_weights, gain=gain))
        else:
            for sub in module.modules():
                if isinstance(sub, nn.Linear):
                    sub.reset_parameters()
        for parameter in module.parameters():
            policy.optimizer.state.pop(parameter, None)
