"""Atomic checkpoints of a run.

A checkpoint is a folder ``RUN_DIR/checkpoints/step-<N>/`` written as
``step-<N>.tmp/`` and renamed when complete; ``RUN_DIR/checkpoints/LATEST`` names the
newest complete one and is itself replaced atomically (write a temporary file, fsync,
``os.replace``). An interrupted write therefore leaves the previous checkpoint and the
``LATEST`` pointer intact; the half-written ``.tmp`` folder is ignored and removed by the
next successful checkpoint. Only the newest ``keep`` checkpoints are kept.

Contents::

    model.zip          SB3 algorithm: policy, optimisers, entropy temperature, step counter,
                       last observation, action space and its RNG
    replay_buffer.pkl  the PEBBLE replay buffer (optional: --no-checkpoint-buffer), filled rows
                       only: 313 MB for 1M HalfCheetah transitions (SB3 keeps observations as
                       float64; bench/results/scaling_halfcheetah.json)
    reward_model.pt    ensemble weights and its Adam state
    state.pt           loop state (schedule, budget, counters, timings), RNG states
                       (Python, NumPy, torch, pebble's generators), environment states
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


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
