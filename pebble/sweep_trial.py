"""One trial of a sweep on the machine that runs it: its state on disk, and running it.

A trial is run as ``pebble train`` (a new run) or ``pebble resume`` (a run folder that
exists) in a child process, so that it is exactly what the command line makes, a crash
takes only that trial down, and the child's thread settings apply to it alone. Nothing here
imports Ray: the Ray task in :mod:`pebble.sweep` is a thin wrapper around
:func:`run_trial`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from pebble import config as cfg
from pebble.config import Config

TrialState = Literal["finished", "resumable", "new"]

#: the progress line of a run (``[pebble] step 5000/100000 | ...``)
PROGRESS = re.compile(r"^\[pebble\] step (\d+)/(\d+)")
#: what the run printed last before the end, if it failed (its one-line error)
ERROR = re.compile(r"^error: (.*)")
#: fields that do not change what a run computes: a trial folder may differ from the spec in these
COSMETIC = ("log_interval", "run_dir")


@dataclass
class TrialOutcome:
    """How a trial's process ended: finished, failed (with its one-line error) or interrupted."""

    name: str
    status: Literal["finished", "failed", "interrupted"]
    seconds: float
    error: str = ""
    resumed: bool = False


def state(run_dir: Path) -> TrialState:
    """finished (``summary.json`` written), resumable (a run folder with its config) or new."""
    if (run_dir / "summary.json").exists():
        return "finished"
    if (run_dir / "config.json").exists():
        return "resumable"
    return "new"


def mismatch(run_dir: Path, config: Config) -> str:
    """The first setting in which the run in ``run_dir`` differs from ``config`` ('' if none)."""
    saved = cfg.flat_items(cfg.from_plain(json.loads((run_dir / "config.json").read_text())))
    wanted = dict(cfg.flat_items(config))
    for name, value in saved:
        if name not in COSMETIC and wanted.get(name) != value:
            return f"{name}={value!r} there, {wanted.get(name)!r} in the spec"
    return ""


def command(config: Config, config_file: Path) -> tuple[list[str], bool]:
    """The command line that runs or continues the trial, and whether it resumes."""
    run_dir = Path(config.run_dir)
    if state(run_dir) == "resumable":
        return [sys.executable, "-m", "pebble.cli", "resume", str(run_dir)], True
    config_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.save(config, config_file)
    return [sys.executable, "-m", "pebble.cli", "train", "--config", str(config_file)], False


def run_trial(
    name: str,
    config: Config,
    out: Path,
    on_progress: Callable[[int, int], None] = lambda step, total: None,
    lock_wait: float = 600.0,
) -> TrialOutcome:
    """Run (or continue) one trial in a child process; its output goes to ``{out}/logs/{name}.log``.

    A lock on ``{out}/.sweep/{name}.lock``, held by the child too, keeps two sweeps from running
    the same trial at once (e.g. a sweep started again while an earlier one's trial still writes
    its last checkpoint): the second waits up to ``lock_wait`` seconds, then finds the trial
    finished or continues it. A ``KeyboardInterrupt`` (Ctrl-C, or ``ray.cancel``) makes the child
    checkpoint and stop (SIGTERM), and the trial is reported interrupted.
    """
    start = time.monotonic()
    _interruptible()
    lock = _acquire(out / ".sweep" / f"{name}.lock", lock_wait)
    if lock is None:
        return TrialOutcome(name, "failed", 0.0, f"{name} is being run by another process (lock held)")
    try:
        if state(Path(config.run_dir)) == "finished":
            return TrialOutcome(name, "finished", 0.0)
        cmd, resumed = command(config, out / ".sweep" / f"{name}.json")
        log_path = out / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as log:
            log.write(f"[sweep] {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(['pebble', *cmd[3:]])}\n")
            log.flush()
            rc, last_error = _supervise(cmd, log, lock, on_progress)
    finally:
        os.close(lock)
    seconds = time.monotonic() - start
    if rc == 0:
        return TrialOutcome(name, "finished", seconds, resumed=resumed)
    if rc in (128 + signal.SIGINT, 128 + signal.SIGTERM, -signal.SIGTERM, -signal.SIGINT):
        return TrialOutcome(name, "interrupted", seconds, resumed=resumed)
    return TrialOutcome(name, "failed", seconds, last_error or f"exit status {rc} (see {log_path})", resumed)


def _interruptible() -> None:
    """Let ``ray.cancel`` interrupt this task: it raises KeyboardInterrupt through SIGINT's handler,
    which does nothing while SIGINT is ignored, as it is in a sweep started in a script's background."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _supervise(cmd: list[str], log: TextIO, lock: int, on_progress: Callable[[int, int], None]) -> tuple[int, str]:
    """Run ``cmd``, copying its output to ``log`` and reporting its progress lines.

    A thread reads the output; this thread only waits, in short sleeps, because Ray's
    ``cancel`` raises ``KeyboardInterrupt`` between Python instructions and could not reach a
    thread blocked in ``read``.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, pass_fds=(lock,),
        start_new_session=True,  # a Ctrl-C in the terminal reaches the sweep, which stops the trials in order
    )  # fmt: skip
    errors: list[str] = []
    reader = threading.Thread(target=_copy_output, args=(child, log, on_progress, errors), daemon=True)
    reader.start()
    try:
        while child.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        child.send_signal(signal.SIGTERM)  # pebble writes a checkpoint, then exits
        child.wait()
    reader.join()
    return child.returncode, errors[-1] if errors else ""


def _copy_output(
    child: subprocess.Popen[str], log: TextIO, on_progress: Callable[[int, int], None], errors: list[str]
) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        log.write(line)
        log.flush()
        if m := PROGRESS.match(line):
            on_progress(int(m.group(1)), int(m.group(2)))
        elif m := ERROR.match(line):
            errors.append(m.group(1).strip())


def _acquire(path: Path, wait: float) -> int | None:
    """An exclusive lock on ``path`` (a file descriptor), or None after ``wait`` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(1.0)
