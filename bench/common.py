"""Shared helpers of the benchmark scripts: machine description and result files.

The benchmarks in ``bench/`` write to ``bench/results/``; the diagnostics in
``bench/diagnostics/`` import this module (their ``sys.path`` names ``bench/``) and write to
``bench/diagnostics/results/`` (``write_result(..., results=DIAGNOSTICS_RESULTS)``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DIAGNOSTICS_RESULTS = Path(__file__).resolve().parent / "diagnostics" / "results"
ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            # results files are outputs: an uncommitted result does not change the code that runs
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":!bench/results",
                ":!bench/diagnostics/results",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    import gymnasium
    import mujoco
    import stable_baselines3
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("sb3_contrib", "sbx", "jax"):  # the optional learner libraries, where installed
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gymnasium.__version__,
        "mujoco": mujoco.__version__,
        **versions,
    }


#: The commit when the benchmark started (long runs can outlive later commits).
START_COMMIT = git_commit()


def write_result(name: str, data: dict[str, Any], results: Path = RESULTS) -> Path:
    """Write ``results/<name>.json`` with the command, the commit and the machine."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    payload = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": START_COMMIT,
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def random_pair_labels(
    obs_dim: int, act_dim: int, labels: int, length: int, next_state: bool, rng: np.random.Generator
) -> Any:
    """A :class:`~pebble.labels.PreferenceDataset` of ``labels`` pairs of random ``length``-step
    clips (normal observations, uniform actions in [-1, 1], no padding), each answer a coin flip:
    what the reward model's training costs does not depend on what the clips hold."""
    from pebble.labels import PreferenceDataset
    from teachers.contract import Answer, Clip, Query

    data = PreferenceDataset(obs_dim, act_dim, 2, length, next_state=next_state)
    for i in range(labels):
        clips = tuple(
            Clip(
                rng.normal(size=(length, obs_dim)),
                rng.uniform(-1, 1, (length, act_dim)),
                np.zeros(length),
                np.ones(length, bool),
                next_observations=rng.normal(size=(length, obs_dim)),
            )
            for _ in range(2)
        )
        data.add(Query(i, clips), Answer.prefer(int(rng.integers(2))))
    return data


def scalar_curve(run_dir: Path, tag: str = "eval/true_return") -> tuple[list[int], list[float]]:
    """Steps and values of one TensorBoard scalar of a run (:func:`pebble.run_results.eval_curve`)."""
    from pebble.run_results import eval_curve

    return eval_curve(run_dir, tag)


def final_buffer(run_dir: Path) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """A finished run's replay buffer from its latest checkpoint, with the observations,
    actions and true rewards of every stored row flattened over env columns."""
    import pickle

    from pebble import checkpoint

    latest = checkpoint.latest(run_dir)
    if latest is None or not (latest / "replay_buffer.pkl").exists():
        raise SystemExit(f"{run_dir} has no checkpoint with a replay buffer")
    with (latest / "replay_buffer.pkl").open("rb") as fh:
        buffer = pickle.load(fh)
    obs, act, _ = buffer.stored_inputs()
    return buffer, obs, act, buffer.true_rewards[: buffer.size()].reshape(-1)
