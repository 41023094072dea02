"""Build a PEBBLE run from a :class:`~pebble.config.Config` and train it."""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import DDPG, SAC, TD3
from stable_baselines3.common.logger import TensorBoardOutputFormat, configure
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from torch.utils.tensorboard import SummaryWriter

from envs import state as env_state
from envs.make import episode_limit, make_vec_env, render_state_dim
from pebble import checkpoint
from pebble import config as config_mod
from pebble.buffer import PreferenceReplayBuffer
from pebble.checkpoint import CheckpointError
from pebble.config import Config, ConfigError
from pebble.faults import crash_point
from pebble.label_store import LabelStore, LabelStoreError, require_next_states
from pebble.labels import PreferenceDataset
from pebble.loop import PebbleLoop
from pebble.reward_model import RewardModel
from pebble.tensorboard import open_writer
from teachers.contract import Teacher, TeacherError
from teachers.registry import make_teacher

ALGORITHMS: dict[str, type[OffPolicyAlgorithm]] = {"sac": SAC, "td3": TD3, "ddpg": DDPG}


@dataclass
class RunResult:
    """What a finished run reports (also written to ``summary.json``)."""

    run_dir: Path
    final_eval_return: float
    steps: int
    seconds: float
    steps_per_second: float
    queries_asked: int
    labels: int
    timings: dict[str, float]


def _size(space: Any) -> int:
    """Flat size of a Box space."""
    return int(np.prod(space.shape or ()))


def run_meta(config: Config, env: Any) -> dict[str, Any]:
    """What labels and checkpoints of a run must agree on to be reused."""
    return {
        "env": config.env,
        "obs_dim": _size(env.observation_space),
        "act_dim": _size(env.action_space),
        "query_size": config.feedback.query_size,
        "segment_length": config.feedback.segment_length,
    }


def default_run_dir(config: Config, root: str | Path = "runs") -> Path:
    """``runs/{env}__{exp_name}__{seed}__{time}``, with characters unsafe in paths replaced."""
    env = re.sub(r"[^A-Za-z0-9_.-]+", "-", config.env)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{env}__{config.exp_name}__{config.seed}__{stamp}"


def prepare_run_dir(config: Config, overwrite: bool = False) -> Path:
    """Create the run folder; refuse one that already holds a run unless ``overwrite``."""
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise ConfigError(f"run folder {run_dir} already exists and is not empty (use --overwrite to replace it)")
    run_dir.mkdir(parents=True, exist_ok=True)
    config.run_dir = str(run_dir)
    return run_dir


def build_teacher(config: Config, run_dir: Path) -> Teacher:
    """The configured teacher; construction errors are bad input (a :class:`ConfigError`)."""
    try:
        return make_teacher(config.feedback.teacher, {"env_id": config.env}, **teacher_kwargs(config, run_dir))
    except TeacherError as exc:
        raise ConfigError(str(exc)) from None


def teacher_kwargs(config: Config, run_dir: Path) -> dict[str, Any]:
    """Keyword arguments of the teacher: the configured ones, plus the run's context for ``human``."""
    kwargs = dict(config.feedback.teacher_kwargs)
    if config.feedback.teacher == "human":
        h = config.human
        context = {
            "env_id": config.env,
            "clip_dir": str(run_dir / "clips"),
            "host": h.host,
            "port": h.port,
            "width": h.render_width,
            "height": h.render_height,
            "fps": h.render_fps,
            "wait": h.human_wait,
            "budget": config.feedback.max_feedback,
        }
        kwargs = {**context, **kwargs}
    return kwargs


def build_algorithm(config: Config, env: Any, buffer_kwargs: dict[str, Any]) -> OffPolicyAlgorithm:
    """The SB3 algorithm with PEBBLE's replay buffer and the configured hyperparameters."""
    a = config.algo
    kwargs: dict[str, Any] = dict(
        learning_rate=a.learning_rate,
        buffer_size=a.buffer_size,
        learning_starts=config.pretrain.seed_steps,
        batch_size=a.batch_size,
        tau=a.tau,
        gamma=a.gamma,
        train_freq=a.train_freq,
        gradient_steps=a.gradient_steps,
        replay_buffer_class=PreferenceReplayBuffer,
        replay_buffer_kwargs=buffer_kwargs,
        policy_kwargs={"net_arch": list(a.net_arch)},
        seed=config.seed,
        device="cpu",
        verbose=0,
    )
    if a.algo in ("td3", "ddpg"):
        n_actions = env.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(n_actions), 0.1 * np.ones(n_actions))
    return ALGORITHMS[a.algo]("MlpPolicy", env, **kwargs)


class RunInterrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint."""

    def __init__(self, run_dir: Path, step: int, signum: int) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint saved. Resume with: pebble resume {run_dir}")
        self.signum = signum


@dataclass
class Run:
    """Everything a run is made of, built by :func:`build`."""

    config: Config
    run_dir: Path
    env: Any
    eval_env: Any
    model: OffPolicyAlgorithm
    buffer: PreferenceReplayBuffer
    reward_model: RewardModel | None
    dataset: PreferenceDataset | None
    store: LabelStore | None
    loop: PebbleLoop
    writer: Any


def _check_env(config: Config, env: Any) -> None:
    limit = episode_limit(env)
    if not config.true_reward and limit is not None and config.feedback.segment_length > limit:
        raise ConfigError(
            f"--segment-length {config.feedback.segment_length} is longer than "
            f"{config.env}'s episode limit of {limit} steps"
        )


def build(
    config: Config,
    run_dir: Path,
    print_fn: Callable[[str], None],
    checkpoint: Path | None = None,
    teacher: Teacher | None = None,
) -> Run:
    """Construct environments, algorithm, reward model, label store and loop.

    With ``checkpoint``, the algorithm, replay buffer, reward model, loop state, RNGs and
    environment states are restored from it (see :mod:`pebble.checkpoint`).
    """
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    env = make_vec_env(config.env, config.n_envs, config.seed)
    _check_env(config, env)
    if teacher is None and not config.true_reward:
        teacher = build_teacher(config, run_dir)
    needs_states = bool(getattr(teacher, "needs_render_states", False)) or config.human.tb_videos
    state_dim = 0
    if needs_states and not config.true_reward:
        state_dim = render_state_dim(config.env)
        env.close()
        env = make_vec_env(config.env, config.n_envs, config.seed, record_render_state=True)
    eval_env = make_vec_env(config.env, 1, config.seed + 10_000)
    obs_dim = _size(env.observation_space)
    act_dim = _size(env.action_space)
    meta = run_meta(config, env)
    external = _read_external_labels(config, meta) if config.labels_from and not config.true_reward else []

    state: dict[str, Any] | None = None
    if checkpoint is not None:
        state = _load_state(checkpoint)
        if state["meta"] != meta:
            raise CheckpointError(f"checkpoint {checkpoint} was written for {state['meta']}, this run has {meta}")
        algo_cls = ALGORITHMS[config.algo.algo]
        try:
            model = algo_cls.load(checkpoint / "model.zip", env=env, device="cpu", force_reset=False)
            if (checkpoint / "replay_buffer.pkl").exists():
                model.load_replay_buffer(checkpoint / "replay_buffer.pkl")
        except Exception as exc:  # a truncated zip or pickle
            raise CheckpointError(f"checkpoint {checkpoint} cannot be loaded: {str(exc).splitlines()[0]}") from None
    else:
        model = build_algorithm(config, env, {"knn_k": config.pretrain.knn_k, "render_state_dim": state_dim})
    buffer = model.replay_buffer
    assert isinstance(buffer, PreferenceReplayBuffer)

    reward_model = dataset = store = None
    if not config.true_reward:
        reward_model = RewardModel.from_config(obs_dim, act_dim, config.reward)
        dataset = PreferenceDataset(
            obs_dim,
            act_dim,
            config.feedback.query_size,
            config.feedback.segment_length,
            config.reward.reward_next_state,
        )
        for query, answer in external:
            dataset.add(query, answer)
        store = LabelStore(run_dir / "labels.db", meta)

    tb_dir = run_dir / "tb"
    step = model.num_timesteps
    # purge_step hides events logged after the checkpoint by the interrupted process, so
    # curves continue without duplicates.
    purge = step if checkpoint is not None else None
    logger = configure(str(tb_dir), ["tensorboard"])
    if purge is not None:
        for fmt in logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.close()
                fmt.writer = SummaryWriter(str(tb_dir), purge_step=purge)
    model.set_logger(logger)
    writer = open_writer(tb_dir, config_mod.flat_items(config), purge_step=purge)
    loop = PebbleLoop(config, buffer, reward_model, teacher, dataset, eval_env, writer, print_fn, store)
    run = Run(config, run_dir, env, eval_env, model, buffer, reward_model, dataset, store, loop, writer)
    loop.checkpoint_fn = lambda: save_checkpoint(run)

    if state is not None:
        _restore(run, checkpoint, state)  # type: ignore[arg-type]
    return run


def _read_external_labels(config: Config, meta: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Labels of another run's store (``--labels-from``), checked against this run's shapes."""
    path = Path(config.labels_from)
    source = LabelStore(path, read_only=True)
    try:
        theirs = source.meta
        for key in ("obs_dim", "act_dim", "query_size", "segment_length"):
            if theirs.get(key) != meta[key]:
                raise LabelStoreError(
                    f"--labels-from {path}: its {key} is {theirs.get(key)}, this run needs {meta[key]}"
                )
        labels = [(row.query, row.answer) for row in source if row.answer.kind != "skip"]
        if config.reward.reward_next_state:
            require_next_states((query for query, _ in labels), f"--labels-from {path}")
        return labels
    finally:
        source.close()


def save_checkpoint(run: Run) -> Path:
    """Write an atomic checkpoint of ``run`` (called at consistent points by the loop)."""
    tmp = checkpoint.begin(run.run_dir, run.model.num_timesteps)
    run.model.save(tmp / "model.zip")
    if run.config.checkpoint_buffer:
        run.model.save_replay_buffer(tmp / "replay_buffer.pkl")
    if run.reward_model is not None:
        run.reward_model.save(tmp / "reward_model.pt")
    state = {
        "meta": run_meta(run.config, run.env),
        "step": run.model.num_timesteps,
        "loop": run.loop.state_dict(),
        "labels_in_dataset": len(run.dataset) if run.dataset is not None else 0,
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        "env": env_state.snapshot(run.env),
        "eval_env": env_state.snapshot(run.eval_env),
    }
    crash_point("checkpoint_write")  # the tests kill the process here: the previous checkpoint must survive
    torch.save(state, tmp / "state.pt")
    return checkpoint.commit(run.run_dir, tmp)


def _load_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path / "state.pt", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable: {str(exc).splitlines()[0]}") from None


def _restore(run: Run, path: Path, state: dict[str, Any]) -> None:
    if run.reward_model is not None and (path / "reward_model.pt").exists():
        run.reward_model.load(path / "reward_model.pt")
    run.loop.load_state_dict(state["loop"])
    if run.dataset is not None and run.store is not None:
        # Rebuild the training labels as they were at the checkpoint, from the durable store:
        # answers to queries asked before the checkpoint, in the order they were given.
        for row in run.store:
            if row.query.query_id < run.loop.next_query_id and row.answer.kind != "skip":
                run.dataset.add(row.query, row.answer)
        if len(run.dataset) != state["labels_in_dataset"]:
            raise CheckpointError(
                f"label store {run.store.path} holds {len(run.dataset)} labels from before the checkpoint, "
                f"the checkpoint expects {state['labels_in_dataset']}"
            )
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    torch.set_rng_state(state["rng"]["torch"])
    env_state.restore(run.eval_env, state["eval_env"])
    if not (path / "replay_buffer.pkl").exists() or not env_state.restore(run.env, state["env"]):
        # The episode in progress cannot be continued: start new episodes.
        run.model._last_obs = run.env.reset()  # type: ignore[assignment]
        run.model._last_episode_starts = np.ones(run.env.num_envs, dtype=bool)
        run.buffer.start_new_episodes()
    if run.buffer.reward_mode == "learned" and run.reward_model is not None and run.loop.counts.sessions:
        run.buffer.reward_fn = run.reward_model.reward


def execute(run: Run, print_fn: Callable[[str], None] = print) -> RunResult:
    """Train ``run`` to ``total_steps``, checkpointing; SIGINT/SIGTERM checkpoint and stop."""
    config, model, loop = run.config, run.model, run.loop
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once; labels are already stored
        received.append(signum)
        loop.stop_requested = True
        print_fn(f"[pebble] {signal.Signals(signum).name}: writing a checkpoint, then stopping")

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for s in previous:
            signal.signal(s, on_signal)
    print_fn(f"[pebble] run folder {run.run_dir} (TensorBoard: tensorboard --logdir {run.run_dir})")
    tic = time.perf_counter()
    start_step = model.num_timesteps
    try:
        remaining = config.total_steps - model.num_timesteps
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=loop, log_interval=1, reset_num_timesteps=start_step == 0)
        if received:
            raise RunInterrupted(run.run_dir, model.num_timesteps, received[0])
        loop.collect_late_answers()
        seconds = time.perf_counter() - tic
        final = loop.evaluate()
        save_checkpoint(run)
    finally:
        if in_main:
            for s, handler in previous.items():
                signal.signal(s, handler)
        run.writer.flush()
        if run.store is not None:
            run.store.close()
    loop.timings["state_entropy"] = run.buffer.entropy.seconds
    model.save(run.run_dir / "policy.zip")
    if run.reward_model is not None:
        run.reward_model.save(run.run_dir / "reward_model.pt")
    steps = model.num_timesteps - start_step
    result = RunResult(
        run_dir=run.run_dir,
        final_eval_return=final,
        steps=model.num_timesteps,
        seconds=seconds,
        steps_per_second=steps / max(seconds, 1e-9),
        queries_asked=loop.counts.asked,
        labels=loop.counts.labelled,
        timings=dict(loop.timings),
    )
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(result).items()}
    (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    run.writer.close()
    print_fn(
        f"[pebble] done: {result.steps} steps in {seconds:.0f}s ({result.steps_per_second:.1f} steps/s), "
        f"final evaluation true return {final:.1f}, {result.labels} labels from {result.queries_asked} queries"
    )
    return result


def train(config: Config, overwrite: bool = False, print_fn: Callable[[str], None] = print) -> RunResult:
    """Start a new run of PEBBLE (or, with ``config.true_reward``, the plain algorithm) and train it."""
    config.validate()
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    config.run_dir = str(run_dir)
    # Build everything that can fail on bad input before the run folder is touched.
    env = make_vec_env(config.env, 1, config.seed)
    _check_env(config, env)
    env.close()
    teacher = None
    if not config.true_reward:
        teacher = build_teacher(config, run_dir)
        if config.labels_from:
            _read_external_labels(config, run_meta(config, env))
    run_dir = prepare_run_dir(config, overwrite)
    if overwrite:
        for stale in ("labels.db", "labels.db-wal", "labels.db-shm", "summary.json"):
            (run_dir / stale).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
    config_mod.save(config, run_dir / "config.json")
    return execute(build(config, run_dir, print_fn, teacher=teacher), print_fn)


def resume(run_dir: str | Path, print_fn: Callable[[str], None] = print, total_steps: int | None = None) -> RunResult:
    """Continue the run in ``run_dir`` from its latest checkpoint (or from the start, reusing its labels)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise ConfigError(f"{run_dir} is not a pebble run folder (no config.json)")
    config = config_mod.from_plain(config_mod.load_file(config_path))
    if total_steps is not None:
        config.total_steps = total_steps
    config.validate()
    latest = checkpoint.latest(run_dir)
    if latest is None:
        print_fn(f"[pebble] {run_dir} has no checkpoint: restarting from step 0, reusing its stored labels")
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
    else:
        print_fn(f"[pebble] resuming {run_dir} from {latest.name}")
    return execute(build(config, run_dir, print_fn, checkpoint=latest), print_fn)
