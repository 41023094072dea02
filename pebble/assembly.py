"""Builds every object of a run once, in one place, and saves or restores them together.

The order matters for exactness: the SB3 algorithm is built (and seeds the global RNGs)
before the reward model draws its initial weights, as it always has, so that a seed gives
the same run as in earlier versions.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import TensorBoardOutputFormat, configure
from stable_baselines3.common.vec_env import VecEnv
from torch.utils.tensorboard import SummaryWriter

from envs.make import episode_limit, eval_env_of, make_vec_env, position_entries, recorded_state_dim, vec_env_of
from pebble import checkpoint
from pebble import config as config_mod
from pebble import run_dir as run_folder
from pebble.callbacks import CheckpointTimer, EpisodeTracker, Evaluation, ProgressReport
from pebble.checkpoint import CheckpointError
from pebble.config import Config, ConfigError
from pebble.feedback import FeedbackCollector
from pebble.label_store import LabelStore, LabelStoreError, require_next_states
from pebble.labels import PreferenceDataset
from pebble.learners import BufferLearner, build_model, checked_algorithm, make_learner
from pebble.loop import PebbleLoop
from pebble.pretraining import Pretraining
from pebble.query_selection import make_selector
from pebble.reward_learning import RewardLearner
from pebble.reward_model import RewardModel
from pebble.reward_sources import RewardSource, TrueReward
from pebble.temperature import set_temperature_lr
from pebble.tensorboard import NullWriter, open_writer
from pebble.threads import limit_threads
from pebble.timing import Timings
from teachers.contract import Answer, Query, Teacher, TeacherError
from teachers.registry import make_teacher


def _size(space: Any) -> int:
    return int(np.prod(space.shape or ()))


def run_meta(config: Config, env: VecEnv) -> dict[str, Any]:
    """What labels and checkpoints of a run must agree on to be reused."""
    return {
        "env": config.env,
        "obs_dim": _size(env.observation_space),
        "act_dim": _size(env.action_space),
        "query_size": config.feedback.query_size,
        "segment_length": config.feedback.segment_length,
    }


def build_teacher(config: Config, run_dir: Path | None) -> Teacher:
    """The configured teacher; construction errors are bad input (a :class:`ConfigError`)."""
    kwargs = dict(config.feedback.teacher_kwargs)
    if config.feedback.teacher == "human":
        h = config.human
        clips = run_dir / "clips" if run_dir is not None else Path(tempfile.mkdtemp(prefix="pebble-clips-"))
        context = {"env_id": config.env, "clip_dir": str(clips), "host": h.host, "port": h.port,
                   "width": h.render_width, "height": h.render_height, "fps": h.render_fps, "wait": h.human_wait,
                   "budget": config.feedback.max_feedback}  # fmt: skip
        kwargs = {**context, **kwargs}
    try:
        return make_teacher(config.feedback.teacher, {"env_id": config.env}, **kwargs)
    except TeacherError as exc:
        raise ConfigError(str(exc)) from None


def read_external_labels(config: Config, meta: dict[str, Any]) -> list[tuple[Query, Answer]]:
    """Labels of another run's store (``--labels-from``), checked against this run's shapes."""
    path = Path(config.labels_from)
    source = LabelStore(path, read_only=True)
    try:
        for key in ("obs_dim", "act_dim", "query_size", "segment_length"):
            if source.meta.get(key) != meta[key]:
                raise LabelStoreError(
                    f"--labels-from {path}: its {key} is {source.meta.get(key)}, this run needs {meta[key]}"
                )
        labels = [(row.query, row.answer) for row in source if row.answer.kind != "skip"]
        if config.reward.reward_next_state:
            require_next_states((query for query, _ in labels), f"--labels-from {path}")
        return labels
    finally:
        source.close()


def environments(config: Config, env: gym.Env | None, record_states: bool) -> tuple[VecEnv, VecEnv]:
    """The training and the evaluation environments, checked against the config."""
    if env is None:
        train_env = make_vec_env(config.env, config.n_envs, config.seed, record_render_state=record_states)
        eval_env = make_vec_env(config.env, 1, config.seed + 10_000)
    else:
        train_env, eval_env = vec_env_of(env, config.seed, record_states), eval_env_of(env, config.seed + 10_000)
    limit = episode_limit(train_env)
    if config.pretrain.knn_features == "positions" and position_entries(train_env) is None:
        raise ConfigError(
            f"--knn-features positions: {config.env} does not say which observation entries are positions "
            "(Gymnasium MuJoCo v5 tasks do); use raw or standardized"
        )
    if not config.true_reward and limit is not None and config.feedback.segment_length > limit:
        raise ConfigError(
            f"--segment-length {config.feedback.segment_length} is longer than "
            f"{config.env}'s episode limit of {limit} steps"
        )
    return train_env, eval_env


def _logging(run_dir: Path | None, model: Any, config: Config, purge: int | None) -> SummaryWriter | NullWriter:
    """TensorBoard for PEBBLE's tags and SB3's ``train/*``; ``purge`` (on resume) hides events
    the interrupted process logged after the checkpoint, so curves continue without duplicates."""
    if run_dir is None:
        return NullWriter()
    tb_dir = run_dir / "tb"
    logger = configure(str(tb_dir), ["tensorboard"])
    if purge is not None:
        for fmt in logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.close()
                fmt.writer = SummaryWriter(str(tb_dir), purge_step=purge)
    model.set_logger(logger)
    return open_writer(tb_dir, config_mod.flat_items(config), purge_step=purge)


@dataclass
class Assembly:
    """Every object of one run."""

    config: Config
    run_dir: Path | None
    env: VecEnv
    eval_env: VecEnv
    model: BaseAlgorithm
    learner: BufferLearner
    reward_model: RewardModel | None
    dataset: PreferenceDataset | None
    store: LabelStore | None
    feedback: FeedbackCollector | None
    reward_learner: RewardLearner | None
    pretraining: Pretraining
    episodes: EpisodeTracker
    loop: PebbleLoop
    evaluation: Evaluation
    progress: ProgressReport
    writer: Any
    timings: Timings
    fixed_reward: RewardSource | None
    #: checkpoints go to the run folder; a run without one is never checkpointed on its own
    checkpoints: CheckpointTimer = field(init=False)

    def __post_init__(self) -> None:
        if self.run_dir is None:  # a stop request then just stops
            self.checkpoints = CheckpointTimer(0, lambda: None)
        else:
            self.checkpoints = CheckpointTimer(self.config.checkpoint_freq, self.save_checkpoint)

    def reschedule(self, total_steps: int) -> None:
        """Plan the feedback sessions and the progress lines for a new length of run."""
        self.loop.plan(total_steps, self.model.num_timesteps)
        self.progress.total_steps = total_steps

    @property
    def meta(self) -> dict[str, Any]:
        """What labels and checkpoints of this run must agree on."""
        return run_meta(self.config, self.env)

    def save_checkpoint(self, folder: Path | None = None) -> Path:
        """An atomic checkpoint in ``folder`` (default: the run folder)."""
        folder = folder if folder is not None else self.run_dir
        assert folder is not None, "a checkpoint needs a run folder"
        return checkpoint.save_run(self, folder)

    def source_at(self, phase: str) -> RewardSource:
        """What the learner trained on in ``phase`` (to hand it back on resume)."""
        if phase == "learned reward":
            if self.fixed_reward is not None:
                return self.fixed_reward
            assert self.reward_learner is not None
            return self.reward_learner.reward_source()
        return TrueReward() if phase == "true reward" else self.pretraining.reward_source()

    def restore(self, path: Path, state: dict[str, Any]) -> None:
        """Put everything back as it was at checkpoint ``path`` (see :func:`pebble.checkpoint.restore_run`)."""
        checkpoint.restore_run(self, path, state)


def _reward_parts(
    config: Config, obs_dim: int, act_dim: int, external: list[tuple[Query, Answer]], store_path: Path | str,
    meta: dict[str, Any],
) -> tuple[RewardModel, PreferenceDataset, LabelStore]:  # fmt: skip
    """Reward model, training labels (with ``--labels-from``'s) and the label store."""
    reward_model = RewardModel(obs_dim, act_dim, config.reward)
    fb = config.feedback
    dataset = PreferenceDataset(obs_dim, act_dim, fb.query_size, fb.segment_length, config.reward.reward_next_state)
    for query, answer in external:
        dataset.add(query, answer)
    return reward_model, dataset, LabelStore(store_path, meta)


def _prepare_folder(config: Config, run_dir: Path | None, overwrite: bool, existing: bool, resumed: bool) -> None:
    """A new run's folder is created (and cleared with ``overwrite``) once every input has been checked."""
    if run_dir is None:
        return
    if not existing:
        run_folder.create(run_dir, overwrite)
        config_mod.save(config, run_dir / "config.json")
    elif not resumed:  # restarting from step 0 with the stored labels: the old curves go
        shutil.rmtree(run_dir / "tb", ignore_errors=True)


def assemble(
    config: Config, run_dir: Path | None, env: gym.Env | None, teacher: Teacher | None,
    fixed_reward: RewardSource | None, print_fn: Any, overwrite: bool = False, existing: bool = False,
    checkpoint_path: Path | None = None,
) -> Assembly:  # fmt: skip
    """Build (or, with ``checkpoint_path``, restore) every object of a run, each once.

    Everything that can fail on bad input is built before the run folder is touched.
    """
    limit_threads(config.threads, config.algo.backend)
    learning = not config.true_reward and fixed_reward is None
    if learning and teacher is None:
        teacher = build_teacher(config, run_dir)
    record_states = learning and (bool(getattr(teacher, "needs_render_states", False)) or config.human.tb_videos)
    if record_states and config.human.tb_videos and run_dir is None:
        raise ConfigError("--tb-videos needs a run folder (run_dir=) to write TensorBoard videos to")
    train_env, eval_env = environments(config, env, record_states)
    meta = run_meta(config, train_env)
    external = read_external_labels(config, meta) if config.labels_from and learning else []
    state = checkpoint.read_state(checkpoint_path) if checkpoint_path is not None else None
    if state is not None and state["meta"] != meta:
        raise CheckpointError(f"checkpoint {checkpoint_path} was written for {state['meta']}, this run has {meta}")
    algorithm = checked_algorithm(config)
    _prepare_folder(config, run_dir, overwrite, existing, state is not None)
    if checkpoint_path is not None:  # then state is not None
        model: Any = checkpoint.load_model(checkpoint_path, algorithm, train_env)
        set_temperature_lr(model, config.algo.ent_coef_lr)  # SB3 loads the temperature's Adam at its own rule
    else:
        model = build_model(config, train_env, recorded_state_dim(train_env))
    timings = Timings()
    parts = _roles(config, run_dir, train_env, eval_env, model, teacher if learning else None, external, meta,
                   timings, fixed_reward, print_fn, state["step"] if state is not None else None)  # fmt: skip
    if checkpoint_path is not None and state is not None:
        parts.restore(checkpoint_path, state)
    return parts


def _roles(
    config: Config, run_dir: Path | None, env: VecEnv, eval_env: VecEnv, model: Any, teacher: Teacher | None,
    external: list[tuple[Query, Answer]], meta: dict[str, Any], timings: Timings,
    fixed_reward: RewardSource | None, print_fn: Any, purge: int | None,
) -> Assembly:  # fmt: skip
    """The roles and callbacks around an algorithm, wired together."""
    learner = make_learner(model, timings)
    reward_model = dataset = store = feedback = reward_learner = selector = None
    query_rng, teacher_rng, reward_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(3)
    )
    if teacher is not None:
        store_path = run_dir / "labels.db" if run_dir is not None else LabelStore.MEMORY
        reward_model, dataset, store = _reward_parts(config, _size(env.observation_space), _size(env.action_space),
                                                     external, store_path, meta)  # fmt: skip
        feedback = FeedbackCollector(teacher, dataset, teacher_rng, store, timings)
        reward_learner = RewardLearner(reward_model, dataset, reward_rng, timings=timings)
        fb, labelled = config.feedback, dataset
        selector = make_selector(fb.query_scheme, reward_model.clip_scores, labelled.state_features, fb.oversample)
    writer = _logging(run_dir, model, config, purge)
    pretraining = Pretraining(config.pretrain, position_entries(env))
    episodes = EpisodeTracker(learner, writer, config.log.correlation_rows)
    loop = PebbleLoop(config, learner, pretraining, episodes, feedback, reward_learner, selector, query_rng, writer,
                      timings, print_fn, fixed_reward)  # fmt: skip
    log = config.log
    evaluation = Evaluation(eval_env, log.eval_freq, log.eval_episodes, writer, timings)

    def describe(step: int) -> list[str]:
        return loop.describe(step) + ([] if np.isnan(evaluation.last) else [f"eval {evaluation.last:.1f}"])

    progress = ProgressReport(log.log_interval, config.total_steps, writer, describe, print_fn)
    parts = Assembly(config, run_dir, env, eval_env, model, learner, reward_model, dataset, store, feedback,
                     reward_learner, pretraining, episodes, loop, evaluation, progress,
                     writer, timings, fixed_reward)  # fmt: skip
    for callback in (episodes, loop, evaluation, progress, parts.checkpoints):
        callback.init_callback(model)  # usable before and after learn() (the final evaluation)
    return parts
