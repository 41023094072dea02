"""The run folder: its default name, the checks before a run may use it, and what a fresh run clears."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

from pebble.config import Config, ConfigError

#: What a previous run left that ``--overwrite`` removes before a new run starts.
STALE_FILES = ("labels.db", "labels.db-wal", "labels.db-shm", "summary.json", "policy.zip", "reward_model.pt")
STALE_DIRS = ("checkpoints", "tb", "clips")


def default_run_dir(config: Config, root: str | Path = "runs") -> Path:
    """``runs/{env}__{exp_name}__{seed}__{time}``, with characters unsafe in paths replaced."""
    env = re.sub(r"[^A-Za-z0-9_.-]+", "-", config.env)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{env}__{config.exp_name}__{config.seed}__{stamp}"


def check_new(run_dir: Path, overwrite: bool = False) -> None:
    """Refuse a path that is not a folder, or a folder that already holds files (unless ``overwrite``)."""
    for parent in (run_dir, *run_dir.parents):
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"run folder {run_dir}: {parent} exists and is not a folder")
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise ConfigError(f"run folder {run_dir} already exists and is not empty (use --overwrite to replace it)")


def create(run_dir: Path, overwrite: bool = False) -> Path:
    """Make the folder for a new run; with ``overwrite``, clear what an earlier run left there."""
    check_new(run_dir, overwrite)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create run folder {run_dir}: {exc.strerror}") from None
    if overwrite:
        for name in STALE_FILES:
            (run_dir / name).unlink(missing_ok=True)
        for name in STALE_DIRS:
            shutil.rmtree(run_dir / name, ignore_errors=True)
    return run_dir
