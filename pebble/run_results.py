"""Reading finished (and unfinished) run folders back: config, summary and evaluation curve.

A run folder (see :mod:`pebble.run_dir`) holds ``config.json`` from the start, ``tb/`` with
the TensorBoard events as it trains and ``summary.json`` once it has finished. This module
turns such folders into :class:`RunRecord` objects for :mod:`pebble.report` and the
benchmark scripts; it reads, never writes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pebble import config as cfg
from pebble.config import Config, ConfigError

#: The TensorBoard scalar of the deterministic policy's true return at each evaluation.
EVAL_TAG = "eval/true_return"


@dataclass
class RunRecord:
    """One run folder: its settings, its summary (``None`` while unfinished) and its evaluation curve."""

    path: Path
    config: Config
    flat: dict[str, Any]
    summary: dict[str, Any] | None
    eval_steps: list[int]
    eval_returns: list[float]

    @property
    def finished(self) -> bool:
        """Whether the run wrote ``summary.json`` (only a finished run does)."""
        return self.summary is not None

    @property
    def final_return(self) -> float | None:
        """The final evaluation's true return (``None`` while unfinished)."""
        return None if self.summary is None else float(self.summary["final_eval_return"])

    @property
    def mean_over_evaluations(self) -> float | None:
        """The mean of every point of the evaluation curve (``None`` without one): a measure of
        learning speed that is less noisy than the last evaluation alone."""
        return math.fsum(self.eval_returns) / len(self.eval_returns) if self.eval_returns else None

    @property
    def steps_per_second(self) -> float | None:
        """Environment steps per wall-clock second over the whole run (``None`` while unfinished)."""
        return None if self.summary is None else float(self.summary["steps_per_second"])

    @property
    def seconds(self) -> float | None:
        """Wall-clock seconds of the whole run (``None`` while unfinished)."""
        return None if self.summary is None else float(self.summary["seconds"])

    @property
    def labels(self) -> int | None:
        """Labels the teacher gave over the run (``None`` while unfinished)."""
        return None if self.summary is None else int(self.summary["labels"])


def eval_curve(run_dir: str | Path, tag: str = EVAL_TAG) -> tuple[list[int], list[float]]:
    """Steps and values of one TensorBoard scalar of a run (empty if never logged); a step
    logged twice keeps its last value (the final evaluation wins)."""
    tb = Path(run_dir) / "tb"
    if not tb.is_dir():  # a run killed before its first log line, or a copy without tb/
        return [], []
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # size_guidance 0 keeps every point; the default samples scalars down to 10,000.
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return [], []
    by_step = {e.step: float(e.value) for e in acc.Scalars(tag)}
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def load_run(path: str | Path) -> RunRecord:
    """Read one run folder (it must hold ``config.json``)."""
    path = Path(path)
    data = _read_json(path / "config.json")
    if not isinstance(data, dict):
        raise ConfigError(f"{path / 'config.json'} must hold a table of settings")
    try:
        config = cfg.from_plain(data)
    except ConfigError as exc:
        raise ConfigError(f"{path / 'config.json'}: {exc}") from None
    summary_file = path / "summary.json"
    summary = _read_json(summary_file) if summary_file.exists() else None
    steps, returns = eval_curve(path)
    return RunRecord(path, config, dict(cfg.flat_items(config)), summary, steps, returns)


def _run_folders(root: Path) -> list[Path]:
    if (root / "config.json").is_file():
        return [root]
    # a run folder's own subfolders (tb/, checkpoints/) hold no runs, so the search stops at one
    found: list[Path] = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        found += _run_folders(child)
    return found


def find_runs(paths: Iterable[str | Path]) -> list[RunRecord]:
    """The runs in ``paths``: a path is a run folder if it holds ``config.json``, otherwise its
    subfolders are searched for run folders. A run reached twice (overlapping paths) counts once.
    A path that does not exist or holds no run is a :class:`ConfigError`."""
    seen: set[Path] = set()
    runs: list[RunRecord] = []
    for raw in paths:
        root = Path(raw)
        if not root.is_dir():
            raise ConfigError(f"{root}: no such folder" if not root.exists() else f"{root} is not a folder")
        folders = _run_folders(root)
        if not folders:
            raise ConfigError(f"{root} holds no run folder (none of its folders has a config.json)")
        for folder in folders:
            if folder.resolve() not in seen:
                seen.add(folder.resolve())
                runs.append(load_run(folder))
    return runs
