"""Clips for the teacher: trajectory-aligned, never across episodes, padded only after a termination."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ACT_DIM, OBS_DIM, fill, make_buffer

from pebble.clips import BufferClipPool, sample_clips, window_starts


@pytest.mark.parametrize("n_envs", [1, 2])
def test_clips_never_cross_episode_boundaries(n_envs: int, rng: np.random.Generator) -> None:
    buffer = make_buffer(size=64, n_envs=n_envs)
    lengths = [[7, 13, 3, 20, 9, 30, 11] for _ in range(n_envs)]
    lengths[-1] = [12, 5, 25, 8, 40, 2]
    fill(buffer, lengths, terminated=True)
    clips = sample_clips(buffer, 500, 10, rng)
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
    clips = sample_clips(buffer, 2000, 5, rng, recent=20 * n_envs)  # the last 20 rows of every env column
    starts = clips.obs[:, 0, 0]
    assert starts.min() >= last_step - 19
    assert len(np.unique(starts)) == 20  # every recent start, the final (padded) steps too
    everything = sample_clips(buffer, 2000, 5, rng)
    assert everything.obs[:, 0, 0].min() < last_step - 25  # older starts are drawn without the window


def test_recent_clips_fall_back_to_the_whole_buffer_without_a_recent_window(rng: np.random.Generator) -> None:
    buffer = make_buffer(size=100)
    fill(buffer, [[30, 30, 6]], terminated=False)  # the last 6 steps: an unfinished 6-step episode
    clips = sample_clips(buffer, 500, 10, rng, recent=6)  # no complete 10-step window among them
    assert clips.mask.all() and clips.obs[:, 0, 0].max() <= 50


def test_terminated_short_episodes_are_padded_and_last_window_included(rng: np.random.Generator) -> None:
    buffer = make_buffer(size=100)
    fill(buffer, [[4, 30, 6]], terminated=True)
    positions, _, real = window_starts(buffer, 10)
    # every start of a terminated episode is valid, the last window (1 real step) too
    assert len(positions) == 4 + 30 + 6
    assert real.min() == 1 and real.max() == 10
    clips = sample_clips(buffer, 2000, 10, rng)
    n_real = clips.mask.sum(1)
    assert set(np.unique(n_real)) == set(range(1, 11))
    # a 4-step episode appears whole, padded to 10 steps
    whole = clips.mask.sum(1) == 4
    assert np.any(whole & (clips.obs[:, 0, 2] == 0))


def test_truncated_or_unfinished_episodes_need_complete_windows() -> None:
    buffer = make_buffer(size=100)
    fill(buffer, [[4, 30, 6]], terminated=False)  # truncated episodes: future unknown
    positions, _, real = window_starts(buffer, 10)
    assert np.all(real == 10)
    assert len(positions) == 30 - 10 + 1  # only the long episode, its last window included
    buffer2 = make_buffer(size=100)
    fill(buffer2, [[25]], terminated=True)
    buffer2.add(*_one_step(), np.zeros(1), [{}])  # an unfinished episode of 1 step
    positions2, _, _ = window_starts(buffer2, 10)
    assert len(positions2) == 25


def _one_step() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    obs = np.full((1, OBS_DIM), 7.0, np.float32)
    return obs, obs, np.zeros((1, ACT_DIM), np.float32), np.ones(1, np.float32)


def test_no_window_gives_clear_error(rng: np.random.Generator) -> None:
    buffer = make_buffer(size=100)
    fill(buffer, [[5, 5]], terminated=False)
    with pytest.raises(ValueError, match="long enough"):
        sample_clips(buffer, 3, 10, rng)


def test_clips_after_wraparound_stay_in_order(rng: np.random.Generator) -> None:
    buffer = make_buffer(size=40)
    fill(buffer, [[25, 25, 25]], terminated=True)  # 75 steps into 40 rows
    clips = sample_clips(buffer, 300, 8, rng)
    for i in range(len(clips)):
        real = clips.obs[i][clips.mask[i]]
        np.testing.assert_array_equal(np.diff(real[:, 0]), 1)  # consecutive global steps


def test_a_buffer_pool_draws_from_its_window(rng: np.random.Generator) -> None:
    buffer = make_buffer(size=200)
    fill(buffer, [[50, 50, 50]])
    recent = BufferClipPool(buffer, 5, recent=30).sample(400, rng)
    assert recent.obs[:, 0, 0].min() >= 150 - 30 and recent.obs.shape == (400, 5, OBS_DIM)
    assert BufferClipPool(buffer, 5).sample(400, rng).obs[:, 0, 0].min() < 100
