"""Checkpoints of a run: the format, written and read here only, and its atomic commit.

A checkpoint is a folder ``RUN_DIR/checkpoints/step-<N>/`` written as
``step-<N>.tmp/`` and renamed when complete; ``RUN_DIR/checkpoints/LATEST`` names the
newest complete one and is itself replaced atomically (write a temporary file, fsync,
``os.replace``). An interrupted write therefore leaves the previous checkpoint and the
``LATEST`` pointer intact; the half-written ``.tmp`` folder is ignored and removed by the
next successful checkpoint. Only the newest ``keep`` checkpoints are kept.

Contents::

    model.zip          SB3 algorithm: policy, optimisers, entropy temperature, step counter,
                       last observation, action space and its RNG
    replay_buffer.pkl  the PEBBLE replay buffer, or PrefPPO's clip pool (optional: --no-checkpoint-buffer), filled rows
                       only: 313 MB for 1M HalfCheetah transitions (SB3 keeps observations as
                       float64; bench/results/scaling_halfcheetah.json)
    reward_model.pt    ensemble weights and its Adam state
    state.pt           one entry per role (loop schedule, feedback counts, reward-learning
                       and query RNGs, pre-training statistics, callbacks' clocks), timings,
                       RNG states (Python, NumPy, torch; SBX's JAX keys), environment states; ``format``
                       says its layout (pebble 0.1's is upgraded when read)
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from envs import state as env_state
from pebble.faults import crash_point

if TYPE_CHECKING:
    from pebble.assembly import Assembly
    from pebble.reward_model import RewardModel


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match the run; one-line message."""


def checkpoint_root(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def begin(run_dir: Path, step: int) -> Path:
    """A fresh temporary folder to write the checkpoint of ``step`` into."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"step-{step}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def commit(run_dir: Path, tmp: Path, keep: int = 2) -> Path:
    """Make the checkpoint in ``tmp`` the latest, atomically; prune older ones."""
    root = checkpoint_root(run_dir)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final = root / tmp.name.removesuffix(".tmp")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    pointer = root / "LATEST.tmp"
    with open(pointer, "w") as fh:
        fh.write(final.name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(pointer, root / "LATEST")
    _fsync_dir(root)
    complete = sorted((p for p in root.glob("step-*") if not p.name.endswith(".tmp")), key=_step)
    for old in complete[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob("step-*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _step(path: Path) -> int:
    return int(path.name.split("-", 1)[1])


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder, or None when the run has none."""
    pointer = checkpoint_root(run_dir) / "LATEST"
    if not pointer.exists():
        return None
    name = pointer.read_text().strip()
    path = checkpoint_root(run_dir) / name
    if not name.startswith("step-") or not path.is_dir():
        raise CheckpointError(f"checkpoint pointer {pointer} names {name!r}, which is missing")
    return path


#: Version of ``state.pt``'s layout. 1: pebble 0.1 (one ``loop`` entry); 2: one entry per role.
FORMAT = 2


def write(
    run_dir: Path, step: int, model: BaseAlgorithm, reward_model: RewardModel | None, state: dict[str, Any],
    include_buffer: bool,
) -> Path:  # fmt: skip
    """Write an atomic checkpoint of ``step``: the algorithm, optionally its replay buffer, the
    reward model, and ``state`` (roles, RNGs, environment states)."""
    tmp = begin(run_dir, step)
    model.save(tmp / "model.zip")
    if include_buffer and hasattr(model, "save_replay_buffer"):  # off-policy, or PrefPPO's clip pool
        model.save_replay_buffer(tmp / "replay_buffer.pkl")
    if reward_model is not None:
        reward_model.save(tmp / "reward_model.pt")
    crash_point("checkpoint_write")  # the tests kill the process here: the previous checkpoint must survive
    torch.save({**state, "format": FORMAT, "step": step}, tmp / "state.pt")
    return commit(run_dir, tmp)


def read_state(path: Path) -> dict[str, Any]:
    """The ``state.pt`` of a checkpoint, in today's layout."""
    try:
        state = torch.load(path / "state.pt", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict) or "meta" not in state:
        raise CheckpointError(f"checkpoint {path} is unreadable: state.pt holds no run state")
    return state if state.get("format") == FORMAT else _upgrade_v1(state)


def load_model(path: Path, algo: type[BaseAlgorithm], env: Any) -> BaseAlgorithm:
    """The algorithm of a checkpoint, with its replay buffer when the checkpoint has one."""
    try:
        model = algo.load(path / "model.zip", env=env, device="cpu", force_reset=False)
        if (path / "replay_buffer.pkl").exists() and hasattr(model, "load_replay_buffer"):
            model.load_replay_buffer(path / "replay_buffer.pkl")
    except Exception as exc:  # a truncated zip or pickle
        raise CheckpointError(f"checkpoint {path} cannot be loaded: {str(exc).splitlines()[0]}") from None
    return model


def _upgrade_v1(state: dict[str, Any]) -> dict[str, Any]:
    """A pebble 0.1 checkpoint (one ``loop`` entry) in today's layout, one entry per role."""
    loop = state["loop"]
    query_rng, teacher_rng, reward_rng = loop["rngs"]
    next_log, next_eval, next_checkpoint = loop["next"]
    last_eval, last_true, last_learned = loop["last"]
    learned = loop["reward_mode"] == "learned" and loop["counts"]["sessions"] > 0
    phase = {"env": "true reward"}.get(loop["reward_mode"], "learned reward" if learned else "seed steps")
    return {
        **{k: v for k, v in state.items() if k != "loop"},
        "format": FORMAT,
        "loop": {"session_steps": loop["session_steps"], "phase": phase, "query_rng": query_rng},
        "feedback": {"counts": loop["counts"], "next_query_id": loop["next_query_id"], "rng": teacher_rng},
        "reward_learner": {"rng": reward_rng},
        "pretraining": None,  # 0.1 kept the state-entropy statistics in the replay buffer's pickle
        "episodes": {"recent": loop["recent_episodes"], "last": (last_true, last_learned)},
        "evaluation": {"next": next_eval, "last": last_eval},
        "progress": {"next": next_log},
        "checkpoints": {"next": next_checkpoint},
        "timings": loop["timings"],
    }


#: The roles whose state a checkpoint carries: attributes of a run's Assembly with
#: ``state_dict()`` and ``load_state_dict()`` (the loop's is restored last, with its reward source).
ROLES = ("feedback", "reward_learner", "pretraining", "episodes", "evaluation", "progress", "checkpoints")


def save_run(run: Assembly, folder: Path) -> Path:
    """Checkpoint every part of ``run`` into ``folder`` (atomically)."""
    roles = {name: (part.state_dict() if (part := getattr(run, name)) is not None else None) for name in ROLES}
    state = {
        "meta": run.meta,
        "loop": run.loop.state_dict(),
        **roles,
        "timings": dict(run.timings),
        "labels_in_dataset": len(run.dataset) if run.dataset is not None else 0,
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "learner": run.learner.rng_state(),
        },  # fmt: skip
        "env": env_state.snapshot(run.env),
        "eval_env": env_state.snapshot(run.eval_env),
    }
    return write(folder, run.model.num_timesteps, run.model, run.reward_model, state, run.config.checkpoint_buffer)


def restore_run(run: Assembly, path: Path, state: dict[str, Any]) -> None:
    """Put the roles, labels, RNGs and environments of ``run`` back as they were at checkpoint ``path``."""
    if run.reward_model is not None and (path / "reward_model.pt").exists():
        run.reward_model.load(path / "reward_model.pt")
    for name in ROLES:
        part, saved = getattr(run, name), state.get(name)
        if part is not None and saved is not None:
            part.load_state_dict(saved)
    legacy = getattr(run.learner.buffer, "legacy_entropy", None)
    if state.get("pretraining") is None and legacy is not None:  # pebble 0.1 kept these in the buffer
        run.pretraining.entropy.load_state_dict(legacy.state_dict())
    run.timings.update(state["timings"])
    run.loop.load_state_dict(state["loop"], run.source_at(state["loop"]["phase"]))
    _restore_labels(run, state)
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    torch.set_rng_state(state["rng"]["torch"])
    run.learner.load_rng_state(state["rng"].get("learner", {}))
    env_state.restore(run.eval_env, state["eval_env"])
    if not (path / "replay_buffer.pkl").exists() or not env_state.restore(run.env, state["env"]):
        run.learner.restart_episodes()  # the episode in progress cannot be continued


def _restore_labels(run: Assembly, state: dict[str, Any]) -> None:
    """Rebuild the training labels as they were at the checkpoint, from the durable store:
    answers to queries asked before the checkpoint, in the order they were given."""
    if run.dataset is None or run.store is None or run.feedback is None:
        return
    for row in run.store:
        if row.query.query_id < run.feedback.next_query_id and row.answer.kind != "skip":
            run.dataset.add(row.query, row.answer)
    if len(run.dataset) != state["labels_in_dataset"]:
        raise CheckpointError(
            f"label store {run.store.path} holds {len(run.dataset)} labels from before the checkpoint, "
            f"the checkpoint expects {state['labels_in_dataset']}"
        )
