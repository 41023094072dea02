"""The run's bookkeeping as SB3 callbacks, composed with the PEBBLE loop in a ``CallbackList``.

* :class:`EpisodeTracker`: ``charts/*`` (true and learned return of each training episode on
  one chart) and the recent episodes the teacher's margin is computed from;
* :class:`Evaluation`: ``eval/true_return`` of the deterministic policy on its own env (and
  ``eval/success_rate`` on tasks that report ``info["success"]``, such as Meta-World);
* :class:`ProgressReport`: ``time/steps_per_second``, ``pretrain/*`` or the reward
  correlation, and a progress line in the terminal;
* :class:`CheckpointTimer`: when to write a checkpoint, and the stop after SIGINT/SIGTERM.

Why not SB3's ``EvalCallback`` and ``CheckpointCallback``: their clocks count callback calls
from the start of the current ``learn()``, so after a resume they would evaluate and save at
other steps than the uninterrupted run (exact resume is a promise of pebble); and a
checkpoint here is the whole run (buffer, reward model, loop state, RNGs, env states), written
atomically by :mod:`pebble.checkpoint`, not the model alone. The evaluation itself is SB3's
``evaluate_policy``.

Every callback keeps its clock in ``state_dict()`` so that checkpoints carry it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv

from pebble.learners import Learner
from pebble.tensorboard import ScalarWriter
from pebble.timing import Timings


def reward_correlation(learner: Learner, rows: int) -> float:
    """Pearson correlation of the reward the learner trains on and the true reward, recent rows."""
    learned, true = learner.recent_rewards(rows)
    if len(learned) < 2 or learned.std() == 0 or true.std() == 0:
        return math.nan
    return float(np.corrcoef(learned, true)[0, 1])


class EpisodeTracker(BaseCallback):
    """Logs finished training episodes and keeps the last 10 for the teacher's margin."""

    def __init__(self, learner: Learner, writer: ScalarWriter, recent_rows: int) -> None:
        super().__init__()
        self.learner, self.writer, self.recent_rows = learner, writer, recent_rows
        self.recent: deque[tuple[float, int]] = deque(maxlen=10)
        self.last_true_return = math.nan
        self.last_learned_return = math.nan

    def _on_step(self) -> bool:
        learned = self.learner.reward_source.learned
        for ep in self.learner.finished_episodes():
            self.recent.append((ep.true_return, ep.length))
            self.last_true_return = ep.true_return
            self.writer.add_scalar("charts/episode_true_return", ep.true_return, ep.env_step)
            self.writer.add_scalar("charts/episode_length", ep.length, ep.env_step)
            if learned and not math.isnan(ep.learned_return):
                self.last_learned_return = ep.learned_return
                self.writer.add_scalar("charts/episode_learned_return", ep.learned_return, ep.env_step)
        return True

    def mean_step_reward(self) -> float:
        """Mean true reward per step over the last 10 training episodes (or recent rows)."""
        if self.recent:
            return sum(r for r, _ in self.recent) / max(1, sum(n for _, n in self.recent))
        true = self.learner.recent_true_rewards(self.recent_rows)
        return float(true.mean()) if len(true) else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self.recent), "last": (self.last_true_return, self.last_learned_return)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent = deque(state["recent"], maxlen=10)
        self.last_true_return, self.last_learned_return = state["last"]


class Periodic(BaseCallback):
    """Calls :meth:`fire` every ``interval`` env steps (0: never); the clock goes into checkpoints."""

    def __init__(self, interval: int) -> None:
        super().__init__()
        self.interval = interval
        self.next = interval

    def _on_step(self) -> bool:
        if self.interval and self.num_timesteps >= self.next:
            self.next += self.interval
            self.fire()
        return True

    def fire(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"next": self.next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next = state["next"]


class Evaluation(Periodic):
    """Mean true return of the deterministic policy every ``freq`` env steps (0: never).

    When the evaluation env reports ``info["success"]`` (Meta-World), the fraction of episodes
    that succeeded at any step is logged too, as ``eval/success_rate``. It is not part of the
    checkpoint: it is logged as it is measured and not read back.
    """

    def __init__(self, eval_env: VecEnv, freq: int, episodes: int, writer: ScalarWriter, timings: Timings) -> None:
        super().__init__(freq)
        self.eval_env, self.episodes, self.writer, self.timings = eval_env, episodes, writer, timings
        self.last = math.nan
        self.last_success_rate = math.nan

    def fire(self) -> None:
        self.evaluate()

    def evaluate(self) -> float:
        """Evaluate now, log ``eval/true_return`` (its std, and the success rate) at the current step."""
        successes = _SuccessCounter(self.eval_env.num_envs)
        with self.timings.measure("evaluation"):
            returns, _ = evaluate_policy(
                self.model,
                self.eval_env,
                n_eval_episodes=self.episodes,
                deterministic=True,
                return_episode_rewards=True,
                callback=successes,
            )
        self.last = float(np.mean(returns))
        step = self.model.num_timesteps
        self.writer.add_scalar("eval/true_return", self.last, step)
        self.writer.add_scalar("eval/true_return_std", float(np.std(returns)), step)
        if successes.reported:
            self.last_success_rate = successes.rate()
            self.writer.add_scalar("eval/success_rate", self.last_success_rate, step)
        return self.last

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last": self.last}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.last = state["last"]


class _SuccessCounter:
    """``evaluate_policy``'s per-step callback: whether each episode ever had ``info["success"]``.

    evaluate_policy calls it only for envs that still owe episodes, so the episodes that end
    here are the ones it counts (a ``done`` in a VecEnv comes with the last step's info).
    """

    def __init__(self, n_envs: int) -> None:
        self.reported = False
        self._running = [False] * n_envs
        self._ended: list[bool] = []

    def __call__(self, local: dict[str, Any], _: dict[str, Any]) -> None:
        i, info = local["i"], local["info"]
        if "success" not in info:
            return
        self.reported = True
        self._running[i] = self._running[i] or bool(info["success"])
        if local["done"]:
            self._ended.append(self._running[i])
            self._running[i] = False

    def rate(self) -> float:
        """Fraction of finished evaluation episodes that succeeded (NaN if none finished)."""
        return float(np.mean(self._ended)) if self._ended else math.nan


class ProgressReport(Periodic):
    """Every ``interval`` env steps: rate and diagnostics to TensorBoard, one line to the terminal.

    ``describe`` returns the phase-specific parts of the line (and logs the phase's own tags).
    """

    def __init__(
        self, interval: int, total_steps: int, writer: ScalarWriter, describe: Callable[[int], list[str]],
        print_fn: Callable[[str], None],
    ) -> None:  # fmt: skip
        super().__init__(interval)
        self.total_steps, self.writer, self.describe, self.print = total_steps, writer, describe, print_fn
        self._start = self._last_time = time.perf_counter()
        self._last_step = self._start_step = 0

    def _on_training_start(self) -> None:
        self._start = self._last_time = time.perf_counter()
        self._last_step = self._start_step = self.model.num_timesteps  # a resumed run starts midway

    def fire(self) -> None:
        now, step = time.perf_counter(), self.num_timesteps
        fps = (step - self._last_step) / max(1e-9, now - self._last_time)
        self._last_time, self._last_step = now, step
        self.writer.add_scalar("time/steps_per_second", fps, step)
        eta = (now - self._start) / max(1, step - self._start_step) * max(0, self.total_steps - step)  # PPO overshoots
        parts = [f"[pebble] step {step}/{self.total_steps}", f"{fps:.0f} steps/s", *self.describe(step)]
        self.print(" | ".join([*parts, f"eta {int(eta // 60)}m{int(eta % 60):02d}s"]))


class CheckpointTimer(BaseCallback):
    """Calls ``save`` every ``freq`` env steps (0: never) and once after a stop request, then stops.

    Checkpoints are taken at the start of a rollout, between the RL update and the next env
    step: the stored transitions, the last observation and the environment state agree, so a
    resumed run continues exactly. (In ``_on_step`` the env has stepped but the transition is
    not stored yet.)
    """

    def __init__(self, freq: int, save: Callable[[], object]) -> None:
        super().__init__()
        self.freq, self.save = freq, save
        self.next = freq
        self.stop_requested = False  # set by SIGINT/SIGTERM: checkpoint at the next rollout, then stop
        self._saved_for_stop = False

    def _on_rollout_start(self) -> None:
        periodic = self.freq and self.num_timesteps >= self.next
        if periodic:
            while self.next <= self.num_timesteps:
                self.next += self.freq
        if periodic or (self.stop_requested and not self._saved_for_stop):
            self.save()
            self._saved_for_stop = self.stop_requested

    def _on_step(self) -> bool:
        return not self._saved_for_stop

    def state_dict(self) -> dict[str, Any]:
        return {"next": self.next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next = state["next"]
