"""PrefPPO (--algo ppo): rollouts are trained on the reward source, never on the true reward;
the clip pool holds the recent rollouts; resets; exact resume; it learns."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cli_runs import pebble
from stable_baselines3.common.callbacks import BaseCallback

from envs.make import make_vec_env
from pebble import PebbleAgent
from pebble.config import Config, override
from pebble.learners import OnPolicyLearner, build_model, make_learner
from pebble.on_policy import PrefPPO, reset_policy, reset_value_function
from pebble.reward_sources import NoReward, RewardSource

TINY = dict(algo="ppo", net_arch=[16, 16], batch_size=64, algo_kwargs={"n_steps": 128}, threads=1)


class Constant(RewardSource):
    """A batched source that gives every transition the same reward."""

    name, batched, learned = "constant", True, True

    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, true: np.ndarray) -> np.ndarray:
        return np.full(len(obs), self.value, dtype=np.float32)


def ppo(env_id: str = "InvertedPendulum-v5", n_envs: int = 1, **settings: Any) -> tuple[PrefPPO, OnPolicyLearner]:
    config = override(Config(), env=env_id, n_envs=n_envs, **{**TINY, **settings})
    model = build_model(config, make_vec_env(env_id, n_envs, 0, max_episode_steps=50))
    assert isinstance(model, PrefPPO)
    learner = make_learner(model)
    assert isinstance(learner, OnPolicyLearner)
    return model, learner


class AtRolloutEnd(BaseCallback):
    """Keeps the rollout's rewards and the value of each truncated episode's terminal
    observation as they are when advantages are computed (before the PPO update)."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        model: Any = self.model
        pool = model.clip_pool
        rows = pool.recent_rows(pool.n_envs * model.n_steps)
        self.truncated = pool.timeouts[rows].astype(bool)
        terminal = torch.as_tensor(pool.next_observations[rows][self.truncated]).float()
        with torch.no_grad():
            self.bootstrap = model.gamma * model.policy.predict_values(terminal).numpy().reshape(-1)
        self.rewards = model.rollout_buffer.rewards.copy()


def test_rollout_rewards_are_the_sources_with_ppos_bootstrap_at_truncations() -> None:
    model, learner = ppo("Pendulum-v1", n_envs=2)  # never terminates: every episode ends truncated at 50
    learner.use_reward(Constant(0.25))
    seen = AtRolloutEnd()
    model.learn(total_timesteps=256, callback=seen)  # one rollout of 128 steps per env
    assert seen.truncated.sum() == 2 * 2  # steps 50 and 100 of each env
    # Away from truncations the true reward (negative, a swing-up cost) is gone: exactly the source's value.
    assert np.all(seen.rewards[~seen.truncated] == np.float32(0.25))
    # At a truncation PPO adds gamma * V(terminal observation) to the reward; that part is kept.
    # float32 sums: 0.25 + ((r + b) - r) differs from 0.25 + b by a few ulps of r + b (|r| < 17)
    np.testing.assert_allclose(seen.rewards[seen.truncated], 0.25 + seen.bootstrap, atol=1e-5)


def test_before_feedback_without_pretraining_ppo_trains_on_no_reward() -> None:
    model, learner = ppo()
    learner.use_reward(NoReward())
    model.learn(total_timesteps=128)
    assert np.all(model.rollout_buffer.rewards[:-1] == 0)  # the last step may carry a bootstrap
    assert model.clip_pool.true_rewards[: model.clip_pool.size()].sum() > 0  # the teacher keeps the true reward


def test_clip_pool_keeps_the_last_rollouts_with_scaled_actions() -> None:
    model, learner = ppo("Pendulum-v1", rollout_pool=2)  # actions in [-2, 2]
    model.learn(total_timesteps=128 * 3)
    pool = model.clip_pool
    assert pool.full and pool.buffer_size == 2 * 128
    steps = pool.env_steps[pool.chronological_rows()].reshape(-1)
    assert steps.tolist() == list(range(129, 3 * 128 + 1))  # the two newest rollouts, in order
    assert np.abs(pool.actions).max() <= 1.0  # stored in [-1, 1], as SAC stores them
    obs, act, nxt = learner.stored_inputs()
    assert obs.shape == (256, 3) and act.shape == (256, 1) and nxt.shape == (256, 3)


def _value_and_policy(model: PrefPPO) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    p: Any = model.policy
    value = [t.detach().clone() for t in [*p.mlp_extractor.value_net.parameters(), *p.value_net.parameters()]]
    policy = [t.detach().clone() for t in [*p.mlp_extractor.policy_net.parameters(), *p.action_net.parameters()]]
    return value, policy


@pytest.mark.parametrize("reset, changed", [(reset_value_function, "value"), (reset_policy, "policy")])
def test_a_reset_changes_its_network_only_and_forgets_its_adam_moments(reset: Any, changed: str) -> None:
    model, _ = ppo()
    model.learn(total_timesteps=256)  # trained: the optimiser holds moments for every parameter
    value, policy = _value_and_policy(model)
    reset(model)
    new_value, new_policy = _value_and_policy(model)
    same = {
        "value": all(torch.equal(a, b) for a, b in zip(value, new_value)),
        "policy": all(torch.equal(a, b) for a, b in zip(policy, new_policy)),
    }
    assert not same[changed] and same[{"value": "policy", "policy": "value"}[changed]]
    p: Any = model.policy
    part = p.value_net if changed == "value" else p.action_net
    assert all(param not in p.optimizer.state for param in part.parameters())
    model.learn(total_timesteps=128, reset_num_timesteps=False)  # and training goes on


def test_ppo_on_the_jax_backend_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    from pebble.cli import main

    assert main(["train", "--algo", "ppo", "--backend", "jax", "--total-steps", "3000"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--algo ppo runs on --backend torch only" in err


RUN = [
    "--env", "InvertedPendulum-v5", "--algo", "ppo", "--algo-kwargs", "n_steps=256", "--total-steps", "2048",
    "--seed-steps", "256", "--max-feedback", "24", "--num-interact", "512", "--segment-length", "10",
    "--eval-freq", "1024", "--eval-episodes", "2", "--log-interval", "0", "--net-arch", "16", "--reward-hidden",
    "16", "--batch-size", "64", "--threads", "1", "--checkpoint-freq", "512",
]  # fmt: skip


@pytest.mark.slow
def test_sigkill_then_resume_matches_the_uninterrupted_ppo_run(tmp_path: Path) -> None:
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    assert pebble(["train", *RUN, "--run-dir", str(reference)]).returncode == 0
    killed = pebble(["train", *RUN, "--run-dir", str(crashed)], crash_at="learned_step:1300")
    assert killed.returncode == -signal.SIGKILL
    resumed = pebble(["resume", str(crashed)])
    assert resumed.returncode == 0, resumed.stderr
    weights = [torch.load(d / "reward_model.pt", weights_only=False)["ensemble"] for d in (reference, crashed)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    policies = [PrefPPO.load(d / "policy.zip").policy.state_dict() for d in (reference, crashed)]
    assert all(torch.equal(policies[0][k], policies[1][k]) for k in policies[0])
    summaries = [json.loads((d / "summary.json").read_text()) for d in (reference, crashed)]
    assert summaries[0]["final_eval_return"] == summaries[1]["final_eval_return"]
    assert summaries[0]["labels"] == summaries[1]["labels"] == 24


@pytest.mark.slow
def test_prefppo_learns_inverted_pendulum_from_preferences() -> None:
    # A random policy balances InvertedPendulum for about 5-10 steps (return = steps upright).
    # A broken reward (zero, random, or the sign flipped) leaves PPO at or below that; 60 oracle
    # labels over 10k steps take it far beyond. The threshold is 5x the random policy measured here.
    from stable_baselines3.common.evaluation import evaluate_policy

    agent = PebbleAgent("InvertedPendulum-v5", total_steps=10240, max_feedback=60, num_interact=2048,
                        seed_steps=2048, segment_length=20, eval_freq=0, log_interval=0, print_fn=lambda _: None,
                        **{**TINY, "algo_kwargs": {"n_steps": 1024}, "net_arch": [64, 64]})  # fmt: skip
    env = make_vec_env("InvertedPendulum-v5", 1, 123)
    random_returns = []
    for _ in range(20):
        env.reset()
        done, total = False, 0.0
        while not done:
            _, reward, dones, _ = env.step(np.array([env.action_space.sample()]))
            total, done = total + float(reward[0]), bool(dones[0])
        random_returns.append(total)
    agent.learn()
    learned, _ = evaluate_policy(agent.model, env, n_eval_episodes=5, deterministic=True)
    assert learned > 5 * np.mean(random_returns), (learned, np.mean(random_returns))
