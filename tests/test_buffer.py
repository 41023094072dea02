"""Replay buffer: relabelling covers every stored row; clips respect episode boundaries."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import ACT_DIM, OBS_DIM, fill, make_buffer

from pebble.buffer import PreferenceReplayBuffer


def obs_sum_reward(obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    return (obs.sum(1) + act.sum(1) + 10 * next_obs.sum(1)).astype(np.float32)


@pytest.mark.parametrize("n_envs", [1, 2])
def test_relabel_covers_whole_buffer_after_wraparound(n_envs: int) -> None:
    buffer = make_buffer(size=50, n_envs=n_envs)
    fill(buffer, [[30] * 4] * n_envs)  # 120 steps per env: wraps the 50-row buffer twice
    assert buffer.full
    buffer.rewards[:] = -999.0  # stale rewards everywhere
    rows = buffer.relabel(obs_sum_reward, chunk=7)  # a chunk size that does not divide the rows
    assert rows == buffer.buffer_size * n_envs == 50  # SB3 splits the capacity over the envs
    expected = buffer.observations.sum(-1) + buffer.actions.sum(-1) + 10 * buffer.next_observations.sum(-1)
    np.testing.assert_allclose(buffer.rewards, expected, rtol=1e-6)


class CountingReward:
    """``obs_sum_reward`` that counts its calls and the rows it scored."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale, self.calls, self.rows = scale, 0, 0

    def __call__(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.rows += len(obs)
        return self.scale * obs_sum_reward(obs, act, next_obs)


def expected_reward(buffer: PreferenceReplayBuffer, rows: np.ndarray | slice, scale: float = 1.0) -> np.ndarray:
    return scale * (
        buffer.observations[rows].sum(-1) + buffer.actions[rows].sum(-1) + 10 * buffer.next_observations[rows].sum(-1)
    )


@pytest.mark.parametrize("n_envs", [1, 2])
def test_minibatches_only_ever_see_learned_rewards_scored_in_batches(n_envs: int, rng: np.random.Generator) -> None:
    buffer = make_buffer(size=400, n_envs=n_envs)
    buffer.reward_mode = "learned"
    reward = CountingReward()
    buffer.reward_fn = reward
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
        np.testing.assert_allclose(batch.rewards.numpy().ravel(), want, rtol=1e-6)
    assert buffer.score_pending() <= steps
    np.testing.assert_allclose(buffer.rewards[:steps], expected_reward(buffer, slice(0, steps)), rtol=1e-6)
    assert reward.rows == steps * n_envs  # every stored transition scored exactly once
    assert reward.calls < steps  # and in batches, not one call per step


def test_rows_keep_the_reward_function_they_were_stored_under() -> None:
    buffer = make_buffer(size=50)
    buffer.reward_mode = "learned"
    buffer.reward_fn = CountingReward(scale=1.0)
    fill(buffer, [[5]])
    buffer.reward_fn = CountingReward(scale=-2.0)  # e.g. set without relabelling
    fill(buffer, [[7]])
    buffer.score_pending()
    np.testing.assert_allclose(buffer.rewards[:5, 0], expected_reward(buffer, slice(0, 5))[:, 0], rtol=1e-6)
    np.testing.assert_allclose(buffer.rewards[5:12, 0], expected_reward(buffer, slice(5, 12), -2.0)[:, 0], rtol=1e-6)
    # true rewards are kept beside the learned ones
    assert buffer.true_rewards[:12].max() > 0


def test_a_pickled_buffer_holds_every_learned_reward(rng: np.random.Generator) -> None:
    buffer = make_buffer(size=50)
    buffer.reward_mode = "learned"
    buffer.reward_fn = CountingReward()
    fill(buffer, [[3]])
    for _ in range(4):  # an unfinished episode, never sampled: its rows are not scored yet
        obs = rng.normal(size=(1, OBS_DIM)).astype(np.float32)
        buffer.add(obs, obs + 1, np.zeros((1, ACT_DIM), np.float32), np.ones(1), np.zeros(1), [{}])
    restored = pickle.loads(pickle.dumps(buffer))  # what a checkpoint writes
    rows = restored.size()
    assert rows == 7
    np.testing.assert_allclose(restored.rewards[:rows], expected_reward(buffer, slice(0, rows)), rtol=1e-6)
    assert restored.reward_fn is None and restored.score_pending() == 0


@pytest.mark.parametrize("n_envs", [1, 2])
def test_clips_never_cross_episode_boundaries(n_envs: int, rng: np.random.Generator) -> None:
    buffer = make_buffer(size=64, n_envs=n_envs)
    lengths = [[7, 13, 3, 20, 9, 30, 11] for _ in range(n_envs)]
    lengths[-1] = [12, 5, 25, 8, 40, 2]
    fill(buffer, lengths, terminated=True)
    clips = buffer.sample_clips(500, 10, rng)
    for i in range(len(clips)):
        real = clips.obs[i][clips.mask[i]]
        # the step-in-episode coordinate increases by one over the real steps: one episode
        np.testing.assert_array_equal(np.diff(real[:, 2]), 1)
        np.testing.assert_array_equal(real[:, 1], clips.env_index[i])
        # padding only after the real steps, zeroed, with zero true reward
        n_real = clips.mask[i].sum()
        assert clips.mask[i][:n_real].all() and not clips.mask[i][n_real:].any()
        assert np.all(clips.obs[i][n_real:] == 0) and np.all(clips.true_rewards[i][n_real:] == 0)


@pytest.mark.parametrize("n_envs", [1, 2])
def test_recent_clips_start_in_the_last_stored_steps_after_wraparound(n_envs: int, rng: np.random.Generator) -> None:
    buffer = make_buffer(size=64, n_envs=n_envs)
    fill(buffer, [[7, 13, 3, 20, 9, 30, 11, 25, 40] for _ in range(n_envs)])  # 158 steps per env: wraps
    assert buffer.full
    last_step = buffer.observations[(buffer.pos - 1) % buffer.buffer_size, 0, 0]
    clips = buffer.sample_clips(2000, 5, rng, recent=20 * n_envs)  # the last 20 rows of every env column
    starts = clips.obs[:, 0, 0]
    assert starts.min() >= last_step - 19
    assert len(np.unique(starts)) == 20  # every recent start, the final (padded) steps too
    everything = buffer.sample_clips(2000, 5, rng)
    assert everything.obs[:, 0, 0].min() < last_step - 25  # older starts are drawn without the window


def test_recent_clips_fall_back_to_the_whole_buffer_without_a_recent_window(rng: np.random.Generator) -> None:
    buffer = make_buffer(size=100)
    fill(buffer, [[30, 30, 6]], terminated=False)  # the last 6 steps: an unfinished 6-step episode
    clips = buffer.sample_clips(500, 10, rng, recent=6)  # no complete 10-step window among them
    assert clips.mask.all() and clips.obs[:, 0, 0].max() <= 50


def test_terminated_short_episodes_are_padded_and_last_window_included(rng: np.random.Generator) -> None:
    buffer = make_buffer(size=100)
    fill(buffer, [[4, 30, 6]], terminated=True)
    positions, _, real = buffer.window_starts(10)
    # every start of a terminated episode is valid, the last window (1 real step) too
    assert len(positions) == 4 + 30 + 6
    assert real.min() == 1 and real.max() == 10
    clips = buffer.sample_clips(2000, 10, rng)
    n_real = clips.mask.sum(1)
    assert set(np.unique(n_real)) == set(range(1, 11))
    # a 4-step episode appears whole, padded to 10 steps
    whole = clips.mask.sum(1) == 4
    assert np.any(whole & (clips.obs[:, 0, 2] == 0))


def test_truncated_or_unfinished_episodes_need_complete_windows() -> None:
    buffer = make_buffer(size=100)
    fill(buffer, [[4, 30, 6]], terminated=False)  # truncated episodes: future unknown
    positions, _, real = buffer.window_starts(10)
    assert np.all(real == 10)
    assert len(positions) == 30 - 10 + 1  # only the long episode, its last window included
    buffer2 = make_buffer(size=100)
    fill(buffer2, [[25]], terminated=True)
    buffer2.add(*_one_step(), np.zeros(1), [{}])  # an unfinished episode of 1 step
    positions2, _, _ = buffer2.window_starts(10)
    assert len(positions2) == 25


def _one_step() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    obs = np.full((1, OBS_DIM), 7.0, np.float32)
    return obs, obs, np.zeros((1, ACT_DIM), np.float32), np.ones(1, np.float32)


def test_no_window_gives_clear_error(rng: np.random.Generator) -> None:
    buffer = make_buffer(size=100)
    fill(buffer, [[5, 5]], terminated=False)
    with pytest.raises(ValueError, match="long enough"):
        buffer.sample_clips(3, 10, rng)


def test_clips_after_wraparound_stay_in_order(rng: np.random.Generator) -> None:
    buffer = make_buffer(size=40)
    fill(buffer, [[25, 25, 25]], terminated=True)  # 75 steps into 40 rows
    clips = buffer.sample_clips(300, 8, rng)
    for i in range(len(clips)):
        real = clips.obs[i][clips.mask[i]]
        np.testing.assert_array_equal(np.diff(real[:, 0]), 1)  # consecutive global steps


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
    buffer.reward_mode = "learned"
    buffer.reward_fn = lambda o, a, n: np.full(len(o), 2.0, np.float32)
    fill(buffer, [[4, 6]])
    episodes = buffer.drain_finished_episodes()
    assert [e.length for e in episodes] == [4, 6]
    assert [e.true_return for e in episodes] == [0 + 1 + 2 + 3, 15]
    assert [e.learned_return for e in episodes] == [8.0, 12.0]
    assert buffer.drain_finished_episodes() == []
