"""The run's callbacks: clocks on env steps that survive a resume, episode logging, the stop request."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from conftest import fill, make_buffer

from pebble.buffer import FinishedEpisode
from pebble.callbacks import CheckpointTimer, EpisodeTracker, Evaluation, reward_correlation
from pebble.reward_sources import RewardSource, TrueReward
from pebble.timing import Timings


class Recorder:
    """A writer that keeps what is logged."""

    def __init__(self) -> None:
        self.scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)

    def add_scalar(self, tag: str, value: Any, step: int | None = None) -> None:
        self.scalars[tag].append((int(step or 0), float(value)))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeModel:
    def __init__(self) -> None:
        self.num_timesteps = 0


class FakeLearner:
    """Finished episodes on demand, and a reward source that may or may not be learned."""

    def __init__(self, learned: bool) -> None:
        self.episodes: list[FinishedEpisode] = []
        self.reward_source = RewardSource() if not learned else type("L", (RewardSource,), {"learned": True})()

    def finished_episodes(self) -> list[FinishedEpisode]:
        out, self.episodes = self.episodes, []
        return out

    def recent_true_rewards(self, count: int) -> np.ndarray:
        return np.full(count, 0.5)


def step(callback: Any, model: FakeModel, to: int, rollout: bool = False) -> bool:
    """SB3's order: a rollout starts, the env steps (the counter moves), then on_step."""
    if rollout:
        callback.on_rollout_start()
    model.num_timesteps = to
    return callback.on_step()


def test_checkpoints_every_freq_steps_and_once_more_after_a_stop_request() -> None:
    saved: list[int] = []
    model = FakeModel()
    timer = CheckpointTimer(250, lambda: saved.append(model.num_timesteps))
    timer.init_callback(model)  # type: ignore[arg-type]
    for t in range(1, 1002):
        assert step(timer, model, t, rollout=True)
    assert saved == [250, 500, 750, 1000]  # between the update of step N and the next env step
    clone = CheckpointTimer(250, lambda: saved.append(-1))
    clone.load_state_dict(timer.state_dict())
    assert clone.next == 1250  # a resumed run keeps the clock
    timer.stop_requested = True
    assert not step(timer, model, 1002, rollout=True)  # saved at 1001, then training stops
    step(timer, model, 1003, rollout=True)
    assert saved[-1] == 1001 and saved.count(1001) == 1  # only once


def test_episode_returns_under_a_learned_reward_are_logged_beside_the_true_ones() -> None:
    writer, model = Recorder(), FakeModel()
    for learned in (False, True):
        learner = FakeLearner(learned)
        tracker = EpisodeTracker(learner, writer, recent_rows=10)  # type: ignore[arg-type]
        tracker.init_callback(model)  # type: ignore[arg-type]
        learner.episodes = [FinishedEpisode(10.0, 3.0, 20, 100), FinishedEpisode(30.0, 4.0, 10, 200)]
        step(tracker, model, 200)
        assert tracker.mean_step_reward() == 40.0 / 30
    assert writer.scalars["charts/episode_true_return"] == [(100, 10.0), (200, 30.0)] * 2
    assert writer.scalars["charts/episode_learned_return"] == [(100, 3.0), (200, 4.0)]  # only while learned
    empty = EpisodeTracker(FakeLearner(False), writer, recent_rows=10)  # type: ignore[arg-type]
    assert empty.mean_step_reward() == 0.5  # no episode yet: recent stored rows


def test_evaluation_runs_on_its_clock_and_logs_the_true_return() -> None:
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv

    model = SAC("MlpPolicy", gym.make("Pendulum-v1"), learning_starts=10, seed=0, policy_kwargs={"net_arch": [8]})
    writer = Recorder()
    from stable_baselines3.common.monitor import Monitor

    env = DummyVecEnv([lambda: Monitor(gym.make("Pendulum-v1"))])
    evaluation = Evaluation(env, 100, 1, writer, Timings())
    evaluation.init_callback(model)
    for t in (50, 99, 100, 150, 230):
        model.num_timesteps = t
        evaluation.on_step()
    assert [s for s, _ in writer.scalars["eval/true_return"]] == [100, 230]
    assert evaluation.state_dict() == {"next": 300, "last": writer.scalars["eval/true_return"][-1][1]}
    assert evaluation.timings["evaluation"] > 0


def test_reward_correlation_of_a_learner_on_the_true_reward_is_one() -> None:
    from pebble.learners import OffPolicyLearner

    buffer = make_buffer(100)
    fill(buffer, [[10] * 5])

    class Model:
        replay_buffer = buffer

    learner = OffPolicyLearner(Model())  # type: ignore[arg-type]
    learner.use_reward(TrueReward())
    assert abs(reward_correlation(learner, 50) - 1.0) < 1e-6  # float32 rounding of the same numbers
