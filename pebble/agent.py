"""``PebbleAgent``: a PEBBLE run as an SB3-style object, built once from a config and objects.

    agent = PebbleAgent("Hopper-v5", teacher=MyTeacher(), max_feedback=200)
    agent.learn(total_steps=30_000)
    agent.model, agent.reward_model, agent.labels    # the SB3 model, the ensemble, the labels
    agent.save("runs/mine"); PebbleAgent.load("runs/mine")

Every object of a run is built here, once (:class:`~pebble.assembly.Assembly`); the command
line (:mod:`pebble.train`) is this class plus a run folder, signal handlers and a summary.
Without ``run_dir`` nothing is written to disk: labels live in an in-memory store and
TensorBoard output is dropped.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList

from pebble import checkpoint
from pebble import config as config_mod
from pebble import run_dir as run_folder
from pebble.assembly import Assembly, assemble
from pebble.config import Config, ConfigError
from pebble.label_store import LabelStore
from pebble.labels import PreferenceDataset
from pebble.reward_model import RewardModel
from pebble.reward_sources import RewardSource
from teachers.contract import Teacher


@dataclass
class RunResult:
    """What a finished ``learn()`` reports (also written to ``summary.json`` with a run folder)."""

    run_dir: Path | None
    final_eval_return: float
    steps: int
    seconds: float
    steps_per_second: float
    queries_asked: int
    labels: int
    timings: dict[str, float]


class PebbleAgent:
    """PEBBLE on one environment with one teacher.

    Args:
        env: a Gymnasium id (``"Hopper-v5"``, ``"package:EnvId"``) or a ``gymnasium.Env``
            (evaluated on a fresh ``gymnasium.make`` of its spec).
        teacher: a teacher name (``oracle``, ``noisy``, ..., ``human``, ``module:Class``) or any
            object with a ``name`` and ``answer(queries, context)`` (:class:`teachers.Teacher`).
        config: the settings to start from (default: :class:`~pebble.config.Config`).
        run_dir: a folder for labels, checkpoints, TensorBoard and the final files.
        fixed_reward: train on this source after pre-training instead of a learned reward,
            asking no teacher (``TrueReward()``: the perfect-reward diagnostic).
        print_fn: where progress lines go (``None``: nowhere).
        **settings: any config setting by its leaf name, e.g. ``max_feedback=200``.
    """

    def __init__(
        self,
        env: str | gym.Env | None = None,
        teacher: str | Teacher | None = None,
        *,
        config: Config | None = None,
        run_dir: str | Path | None = None,
        overwrite: bool = False,
        fixed_reward: RewardSource | None = None,
        print_fn: Any = print,
        **settings: Any,
    ) -> None:
        config = config_mod.override(config if config is not None else Config(), **settings)
        if isinstance(env, str):
            config.env = env
        elif env is not None and env.spec is not None:
            config.env = env.spec.id  # recorded in config.json and the label store's meta
        if isinstance(teacher, str):
            config.feedback.teacher = teacher
        elif teacher is not None:
            config.feedback.teacher = str(getattr(teacher, "name", type(teacher).__name__))
        if run_dir is not None:
            config.run_dir = str(run_dir)
            run_folder.check_new(Path(run_dir), overwrite)
        env_object = env if isinstance(env, gym.Env) else None
        teacher_object = teacher if not isinstance(teacher, str) else None
        self._setup(config, env_object, teacher_object, run_dir, fixed_reward, print_fn, overwrite=overwrite)

    def _setup(
        self, config: Config, env: gym.Env | None, teacher: Teacher | None, run_dir: str | Path | None,
        fixed_reward: RewardSource | None, print_fn: Any, overwrite: bool = False, existing: bool = False,
        checkpoint_path: Path | None = None,
    ) -> None:  # fmt: skip
        config.validate()
        self.config = config
        self.print = print_fn if print_fn is not None else (lambda line: None)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._parts: Assembly = assemble(
            config, self.run_dir, env, teacher, fixed_reward, self.print, overwrite, existing, checkpoint_path
        )
        self.result: RunResult | None = None
        #: the checkpoint this agent was loaded from (None: a new run, or a run restarted from step 0)
        self.resumed_from = checkpoint_path

    # ------------------------------------------------------------------ access
    @property
    def model(self) -> BaseAlgorithm:
        """The SB3 algorithm (its policy acts with ``agent.model.predict(obs)``)."""
        return self._parts.model

    @property
    def reward_model(self) -> RewardModel | None:
        """The ensemble reward model (None for a true-reward run)."""
        return self._parts.reward_model

    @property
    def labels(self) -> PreferenceDataset | None:
        """The labelled queries the reward model trains on."""
        return self._parts.dataset

    @property
    def label_store(self) -> LabelStore | None:
        """Every answer, with its clips (``labels.db``; in memory without a run folder)."""
        return self._parts.store

    @property
    def num_timesteps(self) -> int:
        return self.model.num_timesteps

    def request_stop(self) -> None:
        """Stop ``learn`` at the next consistent point, after a checkpoint when the run has a folder
        (what SIGINT/SIGTERM do in ``pebble train``)."""
        self._parts.checkpoints.stop_requested = True

    @property
    def stopped_early(self) -> bool:
        return self._parts.checkpoints.stop_requested

    # ---------------------------------------------------------------- training
    def learn(self, total_steps: int | None = None) -> PebbleAgent:
        """Train until the run has ``total_steps`` env steps (default: the config's); then ask for
        late answers, evaluate, and, with a run folder, write the final checkpoint and files."""
        parts, model = self._parts, self.model
        if total_steps is not None and total_steps != self.config.total_steps:
            self.config.total_steps = total_steps
            self.config.validate()
            parts.reschedule(total_steps)
        start, tic = model.num_timesteps, time.perf_counter()
        remaining = self.config.total_steps - start
        if remaining > 0:
            callbacks = CallbackList([parts.episodes, parts.loop, parts.evaluation, parts.progress, parts.checkpoints])
            fresh = start == 0 and not parts.loop.resumed
            model.learn(total_timesteps=remaining, callback=callbacks, log_interval=1, reset_num_timesteps=fresh)
        if self.stopped_early:
            return self
        if parts.feedback is not None:
            parts.feedback.collect_late_answers(model.num_timesteps, parts.episodes.mean_step_reward())
        seconds = time.perf_counter() - tic
        final = parts.evaluation.evaluate()
        if self.run_dir is not None:
            parts.save_checkpoint()
        parts.timings["state_entropy"] = parts.pretraining.entropy.seconds
        counts = parts.feedback.counts if parts.feedback is not None else None
        steps = model.num_timesteps - start
        self.result = RunResult(
            self.run_dir, final, model.num_timesteps, seconds, steps / max(seconds, 1e-9),
            counts.asked if counts else 0, counts.labelled if counts else 0, dict(parts.timings),
        )  # fmt: skip
        if self.run_dir is not None:
            self._write_final_files(self.run_dir)
        self.print(
            f"[pebble] done: {self.result.steps} steps in {seconds:.0f}s ({self.result.steps_per_second:.1f} steps/s), "
            f"final evaluation true return {final:.1f}, {self.result.labels} labels from {self.result.queries_asked} "
            "queries"
        )
        return self

    def _write_final_files(self, folder: Path) -> None:
        self.model.save(folder / "policy.zip")
        if self.reward_model is not None:
            self.reward_model.save(folder / "reward_model.pt")
        if self.result is not None:
            summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.result).items()}
            (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self._parts.writer.flush()

    # ------------------------------------------------------------- save / load
    def save(self, folder: str | Path) -> Path:
        """Write the run as a run folder that :meth:`load` and ``pebble resume`` continue exactly:
        ``config.json``, ``labels.db``, a checkpoint, ``policy.zip`` and ``reward_model.pt``."""
        folder = Path(folder)
        if self.run_dir is not None and folder.resolve() == self.run_dir.resolve():
            self._parts.save_checkpoint()
        else:
            run_folder.create(folder)
            config = copy.deepcopy(self.config)
            config.run_dir = str(folder)
            config_mod.save(config, folder / "config.json")
            if self.label_store is not None:
                self.label_store.backup(folder / "labels.db")
            self._parts.save_checkpoint(folder)
        self._write_final_files(folder)
        return folder

    @classmethod
    def load(
        cls, folder: str | Path, teacher: Teacher | None = None, env: gym.Env | None = None, print_fn: Any = print,
        fixed_reward: RewardSource | None = None,
    ) -> PebbleAgent:  # fmt: skip
        """The run in ``folder`` at its latest checkpoint (or at step 0 with its stored labels),
        ready to ``learn()`` on; it keeps writing to ``folder``. A teacher that was a Python
        object (not a name) must be passed again as ``teacher``."""
        folder = Path(folder)
        config_path = folder / "config.json"
        if not config_path.exists():
            raise ConfigError(f"{folder} is not a pebble run folder (no config.json)")
        config = config_mod.from_plain(config_mod.load_file(config_path))
        config.run_dir = str(folder)
        agent = cls.__new__(cls)
        try:
            agent._setup(config, env, teacher, folder, fixed_reward, print_fn, existing=True,
                         checkpoint_path=checkpoint.latest(folder))  # fmt: skip
        except ConfigError as exc:
            if teacher is None and str(exc).startswith("unknown teacher"):
                raise ConfigError(f"{exc} (a teacher that was a Python object must be passed again: "
                                  "PebbleAgent.load(folder, teacher=...))") from None  # fmt: skip
            raise
        return agent

    def close(self) -> None:
        """Close the label store, TensorBoard files and environments (the agent is done)."""
        parts = self._parts
        parts.writer.flush()
        if parts.store is not None:
            parts.store.close()
        parts.writer.close()
        parts.env.close()
        parts.eval_env.close()

    def predict(self, observation: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The policy's action for ``observation`` (SB3's ``predict``)."""
        action, _ = self.model.predict(observation, deterministic=deterministic)
        return action
