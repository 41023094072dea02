"""The PEBBLE loop: the phases on the env-step clock, as an SB3 callback.

    steps [0, seed)                 random actions, no updates (SB3 ``learning_starts``)
    steps [seed, seed + unsup)      RL on the k-NN state-entropy reward (pebble.pretraining);
                                    none by default (``--unsup-steps 9000``: the reference's)
    step  seed + unsup              first feedback session (uniform queries) -> train reward
                                    model -> relabel everything stored -> end pre-training
                                    (reset the critic, ``extra_updates`` RL updates)
    every num_interact steps        feedback session (configured scheme) -> train -> relabel,
                                    while budget remains; then the reward model is frozen
    every step                      new transitions are stored with r_hat(s, a, s')

Each step of a session is one role: query selection (:mod:`pebble.query_selection`),
feedback (:mod:`pebble.feedback`), reward learning (:mod:`pebble.reward_learning`) and the
RL learner (:mod:`pebble.learners`). The RL learner never sees the true reward after
pre-training; it is kept for teachers, logging and evaluation only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from pebble.callbacks import EpisodeTracker, reward_correlation
from pebble.config import Config
from pebble.faults import crash_point
from pebble.feedback import FeedbackCollector
from pebble.learners import Learner
from pebble.pretraining import Pretraining
from pebble.query_selection import QuerySelector, UniformSelector
from pebble.reward_learning import RewardLearner
from pebble.reward_sources import RewardSource, TrueReward
from pebble.schedule import FeedbackSchedule
from pebble.session_report import SessionDelta, log_session, session_line
from pebble.tensorboard import ScalarWriter
from pebble.timing import Timings


class PebbleLoop(BaseCallback):
    """Runs pre-training, feedback sessions, reward learning and relabelling. ``fixed_reward``
    replaces reward learning after pre-training, asking no teacher (``TrueReward()``: the
    perfect-reward diagnostic). With ``config.true_reward`` the loop does nothing (plain RL)."""

    def __init__(
        self, config: Config, learner: Learner, pretraining: Pretraining, episodes: EpisodeTracker,
        feedback: FeedbackCollector | None, reward_learner: RewardLearner | None, selector: QuerySelector | None,
        query_rng: np.random.Generator, writer: ScalarWriter, timings: Timings,
        print_fn: Callable[[str], None] = print, fixed_reward: RewardSource | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.cfg, self.learner, self.pretraining, self.episodes = config, learner, pretraining, episodes
        self.feedback, self.reward_learner, self.selector, self.timings = feedback, reward_learner, selector, timings
        self.query_rng, self.writer, self.print, self.fixed_reward = query_rng, writer, print_fn, fixed_reward
        self.plan(config.total_steps, step=0)
        self.phase = "true reward" if config.true_reward else "seed steps"
        self.resumed = False

    def plan(self, total_steps: int, step: int) -> None:
        """Plan the sessions of a run of ``total_steps`` still ahead of ``step`` (``learn()`` may extend a run)."""
        self.schedule = FeedbackSchedule.of(self.cfg, total_steps)
        self.session_steps = [] if self.cfg.true_reward else [s for s in self.schedule.steps() if s > step or not step]

    # ----------------------------------------------------------------- phases
    def _on_training_start(self) -> None:
        if self.model.num_timesteps == 0:  # phase 1: seed steps, then pre-training on the state-entropy reward
            first = TrueReward() if self.cfg.true_reward else self.pretraining.reward_source()
            self.learner.use_reward(first, relabel=False)

    def _on_step(self) -> bool:
        step = self.num_timesteps
        crash_point("pretrain_step" if self.phase in ("seed steps", "pre-training") else "learned_step")
        if self.phase == "seed steps" and self.pretraining.enabled and step > self.cfg.pretrain.seed_steps:
            self.phase = "pre-training"
        if self.session_steps and step >= self.session_steps[0]:
            self.session_steps.pop(0)
            first = self.phase in ("seed steps", "pre-training")
            self.session(first)  # phases 2-4: ask, learn the reward, relabel
            if first:
                self.pretraining.finish(self.learner)
                self.phase = "learned reward"
        return True

    def session(self, first: bool) -> None:
        """One feedback session (the first always draws uniform queries)."""
        if self.fixed_reward is not None:
            if first:
                self.learner.use_reward(self.fixed_reward)
            return
        assert self.feedback is not None and self.reward_learner is not None and self.selector is not None
        counts, fb = self.feedback.counts, self.cfg.feedback
        if counts.asked >= fb.max_feedback:  # the budget is spent: the reward model stays frozen
            return
        size = self.schedule.size_at(counts.sessions, counts.asked)
        if size == 0:
            self.feedback.skip_session()
            return
        selector = UniformSelector() if first else self.selector
        before = SessionDelta.of(counts, len(self.feedback.dataset))
        with self.timings.measure("query_selection"):
            clips = selector.select(self.learner.clip_pool(fb.segment_length, fb.query_window), size, fb.query_size,
                                    self.query_rng)  # fmt: skip
            queries = self.feedback.make_queries(clips, fb.query_size)
        answers = self.feedback.ask(queries, self.num_timesteps, self.episodes.mean_step_reward())
        if self.cfg.human.tb_videos:
            from pebble.render import log_query_videos

            h = self.cfg.human
            log_query_videos(self.writer, self.cfg.env, queries, answers, self.num_timesteps, h.render_width,
                             h.render_height, h.render_fps)  # fmt: skip
        if first and self.pretraining.warm_start_epochs:
            self.warm_start()
        fit = self.reward_learner.fit(before.labels, self.learner.stored_inputs())
        self.learner.use_reward(self.reward_learner.reward_source())
        step, correlation = self.num_timesteps, reward_correlation(self.learner, self.cfg.log.correlation_rows)
        log_session(self.writer, step, counts, before, fit, correlation, self.timings)
        scheme = "uniform" if first else fb.query_scheme
        self.print(session_line(step, size, scheme, counts, before, len(self.feedback.dataset),
                                len(self.feedback.pending), fit, fb.max_feedback))  # fmt: skip

    def warm_start(self) -> None:
        """RIME's warm start of the reward model on the intrinsic reward of everything stored."""
        assert self.reward_learner is not None
        inputs = self.learner.stored_inputs()
        intrinsic = self.pretraining.intrinsic_rewards(inputs[0], inputs[2])
        epochs = self.pretraining.warm_start_epochs
        before, after = self.reward_learner.warm_start(inputs, intrinsic, epochs)
        step = self.num_timesteps
        self.writer.add_scalar("pretrain/warm_start_mse_before", before, step)
        self.writer.add_scalar("pretrain/warm_start_mse", after, step)
        self.print(f"[pebble] step {step}: reward model warm-started on {len(intrinsic)} intrinsic rewards "
                   f"({epochs} epochs): MSE {before:.3f} -> {after:.3f}")  # fmt: skip

    def describe(self, step: int) -> list[str]:
        """The phase's part of a progress line; logs its diagnostics (``pretrain/*`` or the correlation)."""
        parts = [self.learner.reward_source.name if self.phase == "learned reward" else self.phase]
        if self.phase == "pre-training":
            self.pretraining.log(self.writer, step)
        elif self.phase == "learned reward":
            correlation = reward_correlation(self.learner, self.cfg.log.correlation_rows)
            self.writer.add_scalar("reward_model/correlation", correlation, step)
        if self.feedback is not None:
            parts.append(f"queries {self.feedback.counts.asked}/{self.cfg.feedback.max_feedback}")
        parts.append(f"episode true return {self.episodes.last_true_return:.1f}")
        if self.learner.reward_source.learned and not math.isnan(self.episodes.last_learned_return):
            parts.append(f"learned {self.episodes.last_learned_return:.1f}")
        return parts

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"session_steps": list(self.session_steps), "phase": self.phase,
                "query_rng": self.query_rng.bit_generator.state}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any], reward_source: RewardSource) -> None:
        """Restore the schedule; ``reward_source`` is what the learner trained on at the checkpoint."""
        self.session_steps, self.phase = list(state["session_steps"]), state["phase"]
        self.query_rng.bit_generator.state = state["query_rng"]
        self.learner.use_reward(reward_source, relabel=False)
        self.resumed = True
