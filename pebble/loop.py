"""The PEBBLE loop, as an SB3 callback that runs the phases on the env-step clock.

    steps [0, seed)                 random actions, no updates (SB3 ``learning_starts``)
    steps [seed, seed + unsup)      SAC on the k-NN state-entropy reward (buffer "intrinsic");
                                    none by default (``--unsup-steps 9000``: the reference's)
    step  seed + unsup              first feedback session (uniform queries) -> train reward
                                    model -> relabel the whole buffer -> reset the critic ->
                                    ``extra_updates`` RL updates on the relabelled buffer
    every num_interact steps        feedback session (configured scheme) -> train -> relabel,
                                    while budget remains; then the reward model is frozen
    every step                      new transitions are stored with r_hat(s, a)

The RL algorithm never sees the true reward after pre-training; the true reward is kept
in the buffer for teachers, logging and evaluation only.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv
from torch.utils.tensorboard import SummaryWriter

from pebble.buffer import PreferenceReplayBuffer, Segments
from pebble.config import Config
from pebble.faults import crash_point
from pebble.label_store import LabelStore
from pebble.labels import PreferenceDataset
from pebble.query_selection import select_queries
from pebble.resets import reset_actor, reset_critic
from pebble.reward_model import RewardModel
from pebble.schedule import FeedbackSchedule
from teachers.contract import Answer, Query, Teacher, TeacherError, TeachingContext, validate_answer


@dataclass
class FeedbackCounts:
    """Running totals of the feedback given so far."""

    sessions: int = 0
    asked: int = 0
    labelled: int = 0
    skipped: int = 0
    equal: int = 0
    oracle_agreement: list[float] = field(default_factory=list)


class PebbleLoop(BaseCallback):
    """Drives pre-training, feedback sessions, reward learning and relabelling."""

    def __init__(
        self,
        config: Config,
        buffer: PreferenceReplayBuffer,
        reward_model: RewardModel | None,
        teacher: Teacher | None,
        dataset: PreferenceDataset | None,
        eval_env: VecEnv,
        writer: SummaryWriter,
        print_fn: Callable[[str], None] = print,
        store: LabelStore | None = None,
        checkpoint_fn: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        self.cfg = config
        self.store = store
        self.checkpoint_fn = checkpoint_fn
        self.stop_requested = False  # set by SIGINT/SIGTERM: checkpoint at the next step, then stop
        self._checkpointed_for_stop = False
        self.resumed = False
        self.buffer = buffer
        self.reward_model = reward_model
        self.teacher = teacher
        self.dataset = dataset
        self.eval_env = eval_env
        self.writer = writer
        self.print = print_fn
        seeds = np.random.SeedSequence(config.seed).spawn(3)
        self.query_rng, self.teacher_rng, self.reward_rng = (np.random.default_rng(s) for s in seeds)
        pre = config.pretrain
        fb = config.feedback
        self.schedule = FeedbackSchedule(
            pre.seed_steps + pre.unsup_steps,
            fb.num_interact,
            config.total_steps,
            fb.max_feedback,
            fb.queries_per_session,
            fb.schedule,
        )
        self.session_steps = [] if config.true_reward else self.schedule.steps()
        self.counts = FeedbackCounts()
        self.timings: dict[str, float] = defaultdict(float)
        self.recent_episodes: deque[tuple[float, int]] = deque(maxlen=10)
        self.last_eval = math.nan
        self.last_true_return = math.nan
        self.last_learned_return = math.nan
        self.next_query_id = 0
        # Queries asked but not answered yet: a slow teacher (a person, --no-human-wait) may
        # answer them during a later session; they are labels when they arrive.
        self.pending: dict[int, Query] = {}
        self._next_log = config.log.log_interval
        self._next_eval = config.log.eval_freq
        self._next_checkpoint = config.checkpoint_freq
        self._start_time = time.perf_counter()
        self._last_log_time = self._start_time
        self._last_log_step = 0

    # ------------------------------------------------------------------ phases
    def _on_training_start(self) -> None:
        self._start_time = self._last_log_time = time.perf_counter()
        self._last_log_step = self.num_timesteps
        if self.resumed:
            return
        self.buffer.reward_mode = (
            "env" if self.cfg.true_reward else ("intrinsic" if self.cfg.pretrain.unsup_steps else "learned")
        )

    def _on_step(self) -> bool:
        step = self.num_timesteps
        crash_point("pretrain_step" if self.buffer.reward_mode == "intrinsic" else "learned_step")
        self._log_episodes()
        if self.session_steps and step >= self.session_steps[0]:
            self.session_steps.pop(0)
            first = self.counts.sessions == 0
            if self.counts.asked < self.cfg.feedback.max_feedback:
                self.feedback_session(first)
            if first:
                self.finish_pretraining()
        if self.cfg.log.eval_freq and step >= self._next_eval:
            self._next_eval += self.cfg.log.eval_freq
            self.evaluate()
        if self.cfg.log.log_interval and step >= self._next_log:
            self._next_log += self.cfg.log.log_interval
            self.log_progress()
        return not self._checkpointed_for_stop

    def _on_rollout_start(self) -> None:
        # Checkpoints are taken here, between the RL update and the next env step: the
        # stored transitions, the last observation and the environment state agree, so a
        # resumed run continues exactly. (In _on_step the env has stepped but the
        # transition is not stored yet.)
        if self.checkpoint_fn is None:
            return
        periodic = self.cfg.checkpoint_freq and self.num_timesteps >= self._next_checkpoint
        if periodic:
            while self._next_checkpoint <= self.num_timesteps:
                self._next_checkpoint += self.cfg.checkpoint_freq
        if periodic or (self.stop_requested and not self._checkpointed_for_stop):
            self.checkpoint_fn()
            self._checkpointed_for_stop = self.stop_requested

    def finish_pretraining(self) -> None:
        """Switch SAC from the intrinsic to the learned reward (PEBBLE, Sec. 4.2)."""
        self.buffer.reward_mode = "learned"
        if self.cfg.pretrain.reset_critic:
            reset_critic(self.model)  # type: ignore[arg-type]
        if self.cfg.pretrain.reset_actor:
            reset_actor(self.model)  # type: ignore[arg-type]
        if self.cfg.pretrain.extra_updates and self.buffer.size() > 0:
            self.model.train(gradient_steps=self.cfg.pretrain.extra_updates, batch_size=self.model.batch_size)  # type: ignore[attr-defined]

    def feedback_session(self, first: bool) -> None:
        """Select queries, ask the teacher, train the reward model, relabel the buffer."""
        assert self.reward_model is not None and self.teacher is not None and self.dataset is not None
        fb = self.cfg.feedback
        size = self.schedule.size_at(self.counts.sessions, self.counts.asked)
        session = self.counts.sessions
        self.counts.sessions += 1
        if size == 0:
            return
        tic = time.perf_counter()
        scheme = "uniform" if first else fb.query_scheme
        clips = select_queries(
            scheme,
            self.buffer,
            size,
            fb.query_size,
            fb.segment_length,
            fb.oversample,
            self.query_rng,
            self.reward_model.clip_scores,
            self.dataset.state_features() if scheme.startswith("kcenter") else np.zeros((0, 0)),
            fb.query_window,
        )
        queries = self._make_queries(clips, fb.query_size)
        self.timings["query_selection"] += time.perf_counter() - tic

        tic = time.perf_counter()
        labelled_before = len(self.dataset)
        skipped_before, equal_before = self.counts.skipped, self.counts.equal
        agreement_before = len(self.counts.oracle_agreement)
        answers = self.ask(queries, session)
        self.timings["teacher"] += time.perf_counter() - tic
        if self.cfg.human.tb_videos:
            from pebble.render import log_query_videos

            h = self.cfg.human
            log_query_videos(
                self.writer,
                self.cfg.env,
                queries,
                answers,
                self.num_timesteps,
                h.render_width,
                h.render_height,
                h.render_fps,
            )

        step = self.num_timesteps
        if self.reward_model.needs_input_normalization:  # from the (diverse) pre-training states
            self.reward_model.fit_input_normalization(*self.buffer.stored_inputs())
        heldout_loss, heldout_acc = self.reward_model.evaluate(self.dataset, start=labelled_before)
        tic = time.perf_counter()
        stats = self.reward_model.train_session(self.dataset, self.reward_rng)
        self.timings["reward_training"] += time.perf_counter() - tic
        tic = time.perf_counter()
        self.buffer.relabel(self.reward_model.reward)
        self.buffer.reward_fn = self.reward_model.reward
        self.timings["relabel"] += time.perf_counter() - tic

        w = self.writer
        w.add_scalar("reward_model/loss", stats.loss, step)
        w.add_scalar("reward_model/train_accuracy", stats.train_accuracy, step)
        w.add_scalar("reward_model/heldout_accuracy", heldout_acc, step)
        w.add_scalar("reward_model/heldout_loss", heldout_loss, step)
        w.add_scalar("reward_model/epochs", stats.epochs, step)
        w.add_scalar("reward_model/correlation", self.reward_correlation(), step)
        w.add_scalar("feedback/sessions", self.counts.sessions, step)
        w.add_scalar("feedback/queries_asked", self.counts.asked, step)
        w.add_scalar("feedback/labels_used", self.counts.labelled, step)
        w.add_scalar("feedback/skipped", self.counts.skipped, step)
        w.add_scalar("feedback/equal", self.counts.equal, step)
        session_agreement = self.counts.oracle_agreement[agreement_before:]
        if session_agreement:  # of this session's rankings: first choice has the highest true return
            w.add_scalar("feedback/oracle_agreement", float(np.mean(session_agreement)), step)
        for name, seconds in self.timings.items():
            w.add_scalar(f"time/{name}_seconds", seconds, step)
        self.print(
            f"[pebble] feedback session {session + 1} at step {step}: {size} queries ({scheme}), "
            f"{len(self.dataset) - labelled_before} labels, {self.counts.skipped - skipped_before} skipped, "
            f"{self.counts.equal - equal_before} equal, {len(self.pending)} awaiting an answer; "
            f"reward model: {stats.epochs} epochs on {stats.labels} labels, "
            f"train acc {stats.train_accuracy:.3f}, held-out acc {heldout_acc:.3f}; "
            f"budget {self.counts.asked}/{fb.max_feedback}"
        )

    @property
    def teacher_name(self) -> str:
        return getattr(self.teacher, "name", type(self.teacher).__name__)

    def _context(self, session: int) -> TeachingContext:
        return TeachingContext(session, self.num_timesteps, self.teacher_rng, self.mean_step_reward())

    def _take_answers(self, queries: list[Query], context: TeachingContext) -> dict[int, Answer]:
        """Ask the teacher about ``queries``; validate and store each answer the moment it arrives.

        The teacher may also answer queries pending from earlier calls (a slow teacher).
        """
        assert self.teacher is not None
        answers: dict[int, Answer] = {}
        for query_id, raw in self.teacher.answer(queries, context):
            found = self.pending.pop(query_id, None)
            if found is None:
                raise TeacherError(f"teacher {self.teacher_name!r} answered query {query_id!r}, which is not pending")
            answer = validate_answer(raw, found, self.teacher_name)
            self.record(found, answer)
            crash_point("answer_stored")
            answers[query_id] = answer
        return answers

    def ask(self, queries: list[Query], session: int) -> dict[int, Answer]:
        """Ask the teacher; store each answer the moment it arrives. Returns this call's answers."""
        assert self.teacher is not None and self.dataset is not None
        self.counts.asked += len(queries)  # the budget counts queries asked, skipped ones included
        for query in queries:
            self.pending[query.query_id] = query
        answers: dict[int, Answer] = {}
        to_ask = []
        for query in queries:
            stored = self.store.get(query.query_id) if self.store is not None else None
            if stored is None:
                to_ask.append(query)
                continue
            # Answered before a crash or restart: never ask again. If the resumed run did not
            # reproduce the same clips (an environment that cannot be restored mid-episode),
            # the stored label still counts and takes this query's place in the budget.
            self.pending.pop(query.query_id, None)
            self.record(stored.query, stored.answer, durable=False)
            answers[query.query_id] = stored.answer
        if to_ask:
            answers.update(self._take_answers(to_ask, self._context(session)))
        return answers

    def collect_late_answers(self) -> int:
        """Store answers a slow teacher gave after the last session (``--no-human-wait``)."""
        if not self.pending or self.teacher is None:
            return 0
        return len(self._take_answers([], self._context(self.counts.sessions)))

    def record(self, query: Query, answer: Answer, durable: bool = True) -> None:
        """Count one answer, commit it to the label store, and add it to the training labels."""
        assert self.dataset is not None
        if durable and self.store is not None:
            self.store.add(query, answer, self.teacher_name, self.counts.sessions - 1, self.num_timesteps)
        if answer.kind == "skip":
            self.counts.skipped += 1
            return
        if answer.kind == "equal":
            self.counts.equal += 1
        else:
            returns = [c.true_return() for c in query.clips]
            best = max(returns)
            self.counts.oracle_agreement.append(float(returns[answer.ranking[0]] == best))
        self.dataset.add(query, answer)
        self.counts.labelled += 1

    def _make_queries(self, clips: Segments, query_size: int) -> list[Query]:
        queries = []
        for start in range(0, len(clips), query_size):
            queries.append(Query(self.next_query_id, tuple(clips.clip(i) for i in range(start, start + query_size))))
            self.next_query_id += 1
        return queries

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the schedule exactly (RNGs included)."""
        return {
            "counts": dataclasses.asdict(self.counts),
            "session_steps": list(self.session_steps),
            "next_query_id": self.next_query_id,
            "timings": dict(self.timings),
            "recent_episodes": list(self.recent_episodes),
            "last": (self.last_eval, self.last_true_return, self.last_learned_return),
            "next": (self._next_log, self._next_eval, self._next_checkpoint),
            "reward_mode": self.buffer.reward_mode,
            "rngs": [g.bit_generator.state for g in (self.query_rng, self.teacher_rng, self.reward_rng)],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts = FeedbackCounts(**state["counts"])
        self.session_steps = list(state["session_steps"])
        self.next_query_id = state["next_query_id"]
        self.timings = defaultdict(float, state["timings"])
        self.recent_episodes = deque(state["recent_episodes"], maxlen=10)
        self.last_eval, self.last_true_return, self.last_learned_return = state["last"]
        self._next_log, self._next_eval, self._next_checkpoint = state["next"]
        self.buffer.reward_mode = state["reward_mode"]
        for gen, rng_state in zip((self.query_rng, self.teacher_rng, self.reward_rng), state["rngs"]):
            gen.bit_generator.state = rng_state
        if self.buffer.reward_mode == "learned" and self.reward_model is not None and self.counts.sessions:
            self.buffer.reward_fn = self.reward_model.reward
        self.resumed = True

    # -------------------------------------------------------------- measuring
    def mean_step_reward(self) -> float:
        """Mean true reward per step over the last 10 training episodes (or recent rows)."""
        if self.recent_episodes:
            total = sum(r for r, _ in self.recent_episodes)
            steps = sum(n for _, n in self.recent_episodes)
            return total / max(1, steps)
        rows = self.buffer.recent_rows(self.cfg.log.correlation_rows)
        return float(self.buffer.true_rewards[rows].mean()) if len(rows) else 0.0

    def reward_correlation(self) -> float:
        """Pearson correlation of learned and true reward over recent buffer rows."""
        self.buffer.score_pending()
        rows = self.buffer.recent_rows(self.cfg.log.correlation_rows)
        learned = self.buffer.rewards[rows].reshape(-1)
        true = self.buffer.true_rewards[rows].reshape(-1)
        if len(rows) < 2 or learned.std() == 0 or true.std() == 0:
            return math.nan
        return float(np.corrcoef(learned, true)[0, 1])

    def evaluate(self) -> float:
        """Mean true return of the deterministic policy on the separate evaluation env."""
        tic = time.perf_counter()
        returns, _ = evaluate_policy(
            self.model,
            self.eval_env,
            n_eval_episodes=self.cfg.log.eval_episodes,
            deterministic=True,
            return_episode_rewards=True,
        )
        self.timings["evaluation"] += time.perf_counter() - tic
        self.last_eval = float(np.mean(returns))
        self.writer.add_scalar("eval/true_return", self.last_eval, self.num_timesteps)
        self.writer.add_scalar("eval/true_return_std", float(np.std(returns)), self.num_timesteps)
        return self.last_eval

    def _log_episodes(self) -> None:
        learned = self.buffer.reward_mode == "learned" and not self.cfg.true_reward
        for ep in self.buffer.drain_finished_episodes():
            self.recent_episodes.append((ep.true_return, ep.length))
            self.last_true_return = ep.true_return
            self.writer.add_scalar("charts/episode_true_return", ep.true_return, ep.env_step)
            self.writer.add_scalar("charts/episode_length", ep.length, ep.env_step)
            if learned and not math.isnan(ep.learned_return):
                self.last_learned_return = ep.learned_return
                self.writer.add_scalar("charts/episode_learned_return", ep.learned_return, ep.env_step)

    def log_progress(self) -> None:
        now = time.perf_counter()
        step = self.num_timesteps
        fps = (step - self._last_log_step) / max(1e-9, now - self._last_log_time)
        self._last_log_time, self._last_log_step = now, step
        w = self.writer
        w.add_scalar("time/steps_per_second", fps, step)
        mode = self.buffer.reward_mode
        if mode == "intrinsic":
            ent = self.buffer.entropy
            w.add_scalar("pretrain/knn_distance_mean", ent.last_distance_mean, step)
            w.add_scalar("pretrain/knn_running_std", ent.running_std, step)
            w.add_scalar("pretrain/intrinsic_reward_mean", ent.last_reward_mean, step)
        elif mode == "learned":
            w.add_scalar("reward_model/correlation", self.reward_correlation(), step)
        elapsed = now - self._start_time
        eta = elapsed / max(1, step) * (self.cfg.total_steps - step)
        phase = {"env": "true reward", "intrinsic": "pre-training", "learned": "learned reward"}[mode]
        if step <= self.cfg.pretrain.seed_steps and not self.cfg.true_reward:
            phase = "seed steps"
        parts = [
            f"[pebble] step {step}/{self.cfg.total_steps}",
            f"{fps:.0f} steps/s",
            phase,
        ]
        if not self.cfg.true_reward:
            parts.append(f"queries {self.counts.asked}/{self.cfg.feedback.max_feedback}")
        parts.append(f"episode true return {self.last_true_return:.1f}")
        if mode == "learned" and not self.cfg.true_reward and not math.isnan(self.last_learned_return):
            parts.append(f"learned {self.last_learned_return:.1f}")
        if not math.isnan(self.last_eval):
            parts.append(f"eval {self.last_eval:.1f}")
        parts.append(f"eta {int(eta // 60)}m{int(eta % 60):02d}s")
        self.print(" | ".join(parts))
