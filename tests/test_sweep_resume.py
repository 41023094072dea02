"""``pebble sweep`` stopped midway, by Ctrl-C or SIGKILL, and run again: every trial
finishes, none is run afresh twice, and no label is lost. (Apart from tests/test_sweep.py so
that pytest-xdist runs the two files' sweeps side by side.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_sweep import labels, starts, sweep, write_spec

from pebble.sweep_spec import load_spec

pytest.importorskip("ray")


@pytest.mark.slow
def test_ctrl_c_checkpoints_the_running_trials_and_the_sweep_continues(tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path, "seeds = [0, 1]\n[grid]\nmax_feedback = [60]\n", steps=900)
    spec = load_spec(spec_path)
    driver = _start_sweep(spec_path, stderr=subprocess.PIPE)
    # Ctrl-C once both trials are past their start-up (a first checkpoint written)
    _wait_for(lambda: all(_progress(t.run_dir) != "started" for t in spec.trials))
    driver.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
    out, err = driver.communicate(timeout=240)
    assert driver.returncode == 130, out + err
    assert "2 running trial(s) stopped: run the same pebble sweep to continue them" in err
    for trial in spec.trials:
        log = (spec.out / "logs" / f"{trial.name}.log").read_text()
        assert "checkpoint saved" in log or (trial.run_dir / "summary.json").exists()
    proc = sweep([str(spec_path), "--cpus", "2"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for trial in spec.trials:
        assert len(labels(trial.run_dir)) == 60
        assert json.loads((trial.run_dir / "summary.json").read_text())["steps"] == 900


@pytest.mark.slow
def test_a_killed_sweep_run_again_finishes_without_rerunning_or_losing_labels(tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path, "seeds = [0, 1, 2]\n[grid]\nmax_feedback = [60]\n", steps=1000)
    spec = load_spec(spec_path)
    driver = _start_sweep(spec_path, stderr=subprocess.STDOUT)
    # kill the sweep once one trial has finished and another has labels and a checkpoint
    if not _wait_for(lambda: {"finished", "midway"} <= {_progress(t.run_dir) for t in spec.trials}):
        driver.kill()
        pytest.fail("the sweep did not get midway in time: " + (driver.communicate()[0] or ""))
    os.kill(driver.pid, signal.SIGKILL)  # no chance to stop anything: Ray's local cluster goes down with it
    driver.wait()
    before = {t.name: labels(t.run_dir) for t in spec.trials if (t.run_dir / "labels.db").exists()}
    finished_before = [t.name for t in spec.trials if (t.run_dir / "summary.json").exists()]
    proc = sweep([str(spec_path), "--cpus", "2"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for trial in spec.trials:
        log = spec.out / "logs" / f"{trial.name}.log"
        commands = starts(log)
        assert sum(c.startswith("pebble train") for c in commands) == 1  # started once, never afresh again
        if trial.name in finished_before:
            assert len(commands) == 1  # a finished trial is not run again
        now = labels(trial.run_dir)
        assert len(now) == 60 and now[: len(before.get(trial.name, []))] == before.get(trial.name, [])
        assert json.loads((trial.run_dir / "summary.json").read_text())["steps"] == 1000


def _start_sweep(spec_path: Path, stderr: int) -> subprocess.Popen[str]:
    """``pebble sweep`` on a local Ray with 2 CPUs, in the background."""
    cmd = [sys.executable, "-m", "pebble.cli", "sweep", str(spec_path), "--cpus", "2"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)


def _wait_for(condition: Callable[[], bool], seconds: float = 240) -> bool:
    """Poll ``condition`` until it holds (True) or ``seconds`` have passed (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _progress(run_dir: Path) -> str:
    if (run_dir / "summary.json").exists():
        return "finished"
    if (run_dir / "checkpoints" / "LATEST").exists() and (run_dir / "labels.db").exists():
        return "midway"
    return "started"
