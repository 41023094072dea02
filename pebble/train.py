"""Build a PEBBLE run from a :class:`~pebble.config.Config` and train it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import DDPG, SAC, TD3
from stable_baselines3.common.logger import configure
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from envs.make import episode_limit, make_vec_env, render_state_dim
from pebble import config as config_mod
from pebble.buffer import PreferenceReplayBuffer
from pebble.config import Config, ConfigError
from pebble.labels import PreferenceDataset
from pebble.loop import PebbleLoop
from pebble.reward_model import RewardModel
from pebble.tensorboard import open_writer
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


def train(config: Config, overwrite: bool = False, print_fn: Callable[[str], None] = print) -> RunResult:
    """Run PEBBLE (or, with ``config.true_reward``, the plain algorithm) to the end."""
    config.validate()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    env = make_vec_env(config.env, config.n_envs, config.seed)
    limit = episode_limit(env)
    if not config.true_reward and limit is not None and config.feedback.segment_length > limit:
        raise ConfigError(
            f"--segment-length {config.feedback.segment_length} is longer than "
            f"{config.env}'s episode limit of {limit} steps"
        )
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    teacher = None if config.true_reward else make_teacher(config.feedback.teacher, **teacher_kwargs(config, run_dir))
    needs_states = bool(getattr(teacher, "needs_render_states", False)) or config.human.tb_videos
    state_dim = 0
    if needs_states and not config.true_reward:
        state_dim = render_state_dim(config.env)
        env.close()
        env = make_vec_env(config.env, config.n_envs, config.seed, record_render_state=True)
    eval_env = make_vec_env(config.env, 1, config.seed + 10_000)
    config.run_dir = str(run_dir)
    run_dir = prepare_run_dir(config, overwrite)
    config_mod.save(config, run_dir / "config.json")

    model = build_algorithm(config, env, {"knn_k": config.pretrain.knn_k, "render_state_dim": state_dim})
    buffer = model.replay_buffer
    assert isinstance(buffer, PreferenceReplayBuffer)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    r = config.reward
    reward_model = None
    dataset = None
    if not config.true_reward:
        reward_model = RewardModel(
            obs_dim,
            act_dim,
            list(r.reward_hidden),
            r.ensemble_size,
            r.reward_lr,
            r.reward_batch_size,
            r.reward_epochs,
            r.accuracy_stop,
        )
        dataset = PreferenceDataset(obs_dim, act_dim, config.feedback.query_size, config.feedback.segment_length)

    tb_dir = run_dir / "tb"
    model.set_logger(configure(str(tb_dir), ["tensorboard"]))
    writer = open_writer(tb_dir, config_mod.flat_items(config))
    loop = PebbleLoop(config, buffer, reward_model, teacher, dataset, eval_env, writer, print_fn)
    print_fn(f"[pebble] run folder {run_dir} (TensorBoard: tensorboard --logdir {run_dir})")
    tic = time.perf_counter()
    try:
        model.learn(total_timesteps=config.total_steps, callback=loop, log_interval=1)
        seconds = time.perf_counter() - tic
        final = loop.evaluate()
    finally:
        writer.flush()
    loop.timings["state_entropy"] = buffer.entropy.seconds
    model.save(run_dir / "policy.zip")
    if reward_model is not None:
        reward_model.save(run_dir / "reward_model.pt")
    result = RunResult(
        run_dir=run_dir,
        final_eval_return=final,
        steps=model.num_timesteps,
        seconds=seconds,
        steps_per_second=model.num_timesteps / seconds,
        queries_asked=loop.counts.asked,
        labels=loop.counts.labelled,
        timings=dict(loop.timings),
    )
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(result).items()}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    writer.close()
    print_fn(
        f"[pebble] done: {result.steps} steps in {seconds:.0f}s ({result.steps_per_second:.1f} steps/s), "
        f"final evaluation true return {final:.1f}, {result.labels} labels from {result.queries_asked} queries"
    )
    return result
