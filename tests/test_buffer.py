"""Replay buffer: its reward source fills every stored row, relabelling covers the whole buffer."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import ACT_DIM, OBS_DIM, fill, make_buffer

from pebble.buffer import PreferenceReplayBuffer
from pebble.reward_sources import RewardSource, TrueReward


def obs_sum_reward(obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    return (obs.sum(1) + act.sum(1) + 10 * next_obs.sum(1)).astype(np.float32)


class CountingReward(RewardSource):
    """A learned-reward stand-in: ``obs_sum_reward`` scaled, counting its calls and the rows it scored."""

    batched = learned = True

    def __init__(self, scale: float = 1.0) -> None:
        self.scale, self.calls, self.rows = scale, 0, 0

    def score(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray, true: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.rows += len(obs)
        return self.scale * obs_sum_reward(obs, act, next_obs)


@pytest.mark.parametrize("n_envs", [1, 2])
def test_relabel_covers_whole_buffer_after_wraparound(n_envs: int) -> None:
    buffer = make_buffer(size=50, n_envs=n_envs)
    fill(buffer, [[30] * 4] * n_envs)  # 120 steps per env: wraps the 50-row buffer twice
    assert buffer.full
    buffer.use_reward_source(CountingReward(), relabel=False)
    buffer.rewards[:] = -999.0  # stale rewards everywhere
    rows = buffer.relabel(chunk=7)  # a chunk size that does not divide the rows
    assert rows == buffer.buffer_size * n_envs == 50  # SB3 splits the capacity over the envs
    expected = buffer.observations.sum(-1) + buffer.actions.sum(-1) + 10 * buffer.next_observations.sum(-1)
    np.testing.assert_allclose(buffer.rewards, expected, rtol=1e-6)


def expected_reward(buffer: PreferenceReplayBuffer, rows: np.ndarray | slice, scale: float = 1.0) -> np.ndarray:
    return scale * (
        buffer.observations[rows].sum(-1) + buffer.actions[rows].sum(-1) + 10 * buffer.next_observations[rows].sum(-1)
    )


@pytest.mark.parametrize("n_envs", [1, 2])
def test_minibatches_only_ever_see_learned_rewards_scored_in_batches(n_envs: int, rng: np.random.Generator) -> None:
    buffer = make_buffer(size=400, n_envs=n_envs)
    reward = CountingReward()
    buffer.use_reward_source(reward, relabel=False)
    steps = 0
    for _ in range(30):  # one long episode, stored and sampled in turn as SAC does
        obs = rng.normal(size=(n_envs, OBS_DIM)).astype(np.float32)
        act = rng.uniform(-1, 1, (n_envs, ACT_DIM)).astype(np.float32)
        nxt = rng.normal(size=(n_envs, OBS_DIM)).astype(np.float32)
        buffer.add(obs, nxt, act, np.ones(n_envs), np.zeros(n_envs), [{}] * n_envs)  # no episode ends
        steps += 1
        batch = buffer.sample(16)
        obs, act, nxt = (t.numpy() for t in (batch.observations, batch.actions, batch.next_observations))
        want = obs.sum(-1) + act.sum(-1) + 10 * nxt.sum(-1)
        np.testing.assert_allclose(
            batch.rewards.numpy().ravel(), want, rtol=1e-6, atol=1e-5
        )  # float32 sums of normal numbers; near 0 only atol applies
    assert buffer.score_pending() <= steps
    np.testing.assert_allclose(buffer.rewards[:steps], expected_reward(buffer, slice(0, steps)), rtol=1e-6, atol=1e-5)
    # in batches, not one call per step; each batch one fixed-size block (see the next test)
    assert reward.calls < steps
    assert reward.rows == reward.calls * buffer.SCORE_BLOCK * n_envs


class MatmulReward(RewardSource):
    """A reward computed as a network would compute it: float32 matrix products."""

    batched = learned = True

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.w1 = torch.randn(2 * OBS_DIM + ACT_DIM, 64, generator=gen)
        self.w2 = torch.randn(64, 1, generator=gen)

    def score(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray, true: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.concatenate([obs, act, next_obs], axis=1), dtype=torch.float32)
        return (torch.tanh(x @ self.w1) @ self.w2).numpy().ravel()


@pytest.mark.parametrize("n_envs", [1, 2])
def test_a_rows_learned_reward_does_not_depend_on_when_it_was_scored(n_envs: int, rng: np.random.Generator) -> None:
    """A run resumed from a checkpoint taken at another step (or logged at another interval)
    scores its rows at other moments; their rewards must still agree bit for bit, or the run
    and its resumed copy drift apart. Three call patterns, over a wrap of the ring."""
    steps = 700
    data = [
        (rng.normal(size=(n_envs, OBS_DIM)), rng.normal(size=(n_envs, OBS_DIM)), rng.uniform(-1, 1, (n_envs, ACT_DIM)))
        for _ in range(steps)
    ]
    patterns = {"every step": set(range(steps)), "never": set(), "now and then": set(rng.choice(steps, 40).tolist())}
    rewards = {}
    for name, when in patterns.items():
        buffer = make_buffer(size=600, n_envs=n_envs)
        buffer.use_reward_source(MatmulReward(), relabel=False)
        for i, (obs, nxt, act) in enumerate(data):
            buffer.add(obs.astype(np.float32), nxt.astype(np.float32), act.astype(np.float32),
                       np.ones(n_envs), np.zeros(n_envs), [{}] * n_envs)  # fmt: skip
            if i in when:
                buffer.score_pending()
        buffer.score_pending()
        rewards[name] = buffer.rewards.copy()
    assert np.array_equal(rewards["every step"], rewards["never"])
    assert np.array_equal(rewards["every step"], rewards["now and then"])


def test_rows_keep_the_reward_source_they_were_stored_under() -> None:
    buffer = make_buffer(size=50)
    buffer.use_reward_source(CountingReward(scale=1.0), relabel=False)
    fill(buffer, [[5]])
    buffer.use_reward_source(CountingReward(scale=-2.0), relabel=False)  # as on resume: no relabelling
    fill(buffer, [[7]])
    buffer.score_pending()
    np.testing.assert_allclose(buffer.rewards[:5, 0], expected_reward(buffer, slice(0, 5))[:, 0], rtol=1e-6)
    np.testing.assert_allclose(buffer.rewards[5:12, 0], expected_reward(buffer, slice(5, 12), -2.0)[:, 0], rtol=1e-6)
    # true rewards are kept beside the learned ones
    assert buffer.true_rewards[:12].max() > 0


def test_a_pickled_buffer_holds_every_learned_reward(rng: np.random.Generator) -> None:
    buffer = make_buffer(size=50)
    buffer.use_reward_source(CountingReward(), relabel=False)
    fill(buffer, [[3]])
    for _ in range(4):  # an unfinished episode, never sampled: its rows are not scored yet
        obs = rng.normal(size=(1, OBS_DIM)).astype(np.float32)
        buffer.add(obs, obs + 1, np.zeros((1, ACT_DIM), np.float32), np.ones(1), np.zeros(1), [{}])
    restored = pickle.loads(pickle.dumps(buffer))  # what a checkpoint writes
    rows = restored.size()
    assert rows == 7
    np.testing.assert_allclose(restored.rewards[:rows], expected_reward(buffer, slice(0, rows)), rtol=1e-6, atol=1e-5)
    # the source is not pickled (the loop hands it back on resume)
    assert isinstance(restored.reward_source, TrueReward) and restored.score_pending() == 0


def test_non_finite_environment_output_is_refused() -> None:
    buffer = make_buffer(size=10)
    obs = np.zeros((1, OBS_DIM), np.float32)
    bad = obs.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        buffer.add(obs, bad, np.zeros((1, ACT_DIM)), np.zeros(1), np.zeros(1), [{}])
    with pytest.raises(ValueError, match="non-finite"):
        buffer.add(obs, obs, np.zeros((1, ACT_DIM)), np.array([np.inf]), np.zeros(1), [{}])
    assert buffer.size() == 0


def test_finished_episodes_report_true_and_learned_returns() -> None:
    buffer = make_buffer(size=50)

    class Two(RewardSource):
        batched = learned = True

        def score(self, obs: np.ndarray, act: np.ndarray, nxt: np.ndarray, true: np.ndarray) -> np.ndarray:
            return np.full(len(obs), 2.0, np.float32)

    buffer.use_reward_source(Two(), relabel=False)
    fill(buffer, [[4, 6]])
    episodes = buffer.drain_finished_episodes()
    assert [e.length for e in episodes] == [4, 6]
    assert [e.true_return for e in episodes] == [0 + 1 + 2 + 3, 15]
    assert [e.learned_return for e in episodes] == [8.0, 12.0]
    assert buffer.drain_finished_episodes() == []


def test_the_true_reward_source_restores_the_environment_reward_and_a_minibatch_source_replaces_samples() -> None:
    buffer = make_buffer(size=50)
    fill(buffer, [[10, 10]])
    buffer.use_reward_source(CountingReward())
    assert not np.allclose(buffer.rewards[:20], buffer.true_rewards[:20])
    buffer.use_reward_source(TrueReward())  # relabelled with what the environment gave
    np.testing.assert_array_equal(buffer.rewards[:20], buffer.true_rewards[:20])

    class MinusNextSum(RewardSource):
        def minibatch_rewards(self, next_obs: torch.Tensor, stored_obs: np.ndarray) -> torch.Tensor:
            assert stored_obs.shape == (20, OBS_DIM)  # every stored observation
            return -next_obs.sum(1)

    buffer.use_reward_source(MinusNextSum(), relabel=False)
    batch = buffer.sample(32)
    np.testing.assert_allclose(
        batch.rewards.numpy().ravel(), -batch.next_observations.numpy().sum(1), rtol=1e-6, atol=1e-5
    )
    np.testing.assert_array_equal(buffer.rewards[:20], buffer.true_rewards[:20])  # rows untouched
