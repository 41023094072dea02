"""``pebble sweep``: the trials of a spec (:mod:`pebble.sweep_spec`) as Ray tasks.

Ray core tasks, not Ray Tune: a trial already is a complete experiment with its own folder,
checkpoints and exact resume (``pebble resume``), so Tune's trial folders, checkpointing and
result reporting would run beside ours and disagree with them, and a grid needs none of its
search algorithms or schedulers. A task asks Ray for ``cpus_per_trial`` CPUs (and
``gpus_per_trial`` GPUs), so Ray places trials on the cluster's free cores; a small actor
collects the trials' progress for the terminal. Ray is imported only here, when sweeping.

Running a sweep again skips finished trials and continues interrupted ones from their
latest checkpoint; a failing trial is reported with its one-line error and the others go on.
Ctrl-C (or SIGTERM) asks every running trial to write a checkpoint and stop.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pebble import __version__
from pebble import config as cfg
from pebble.config import ConfigError
from pebble.sweep_spec import SweepSpec, Trial
from pebble.sweep_trial import TrialOutcome, mismatch, run_trial, state


class SweepInterrupted(Exception):
    """The sweep stopped on Ctrl-C or SIGTERM; its trials can be continued by running it again."""


@dataclass
class SweepResult:
    """What became of each trial in this invocation (skipped: finished before it started)."""

    outcomes: dict[str, TrialOutcome] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes.values() if o.status == "failed"]


def check(spec: SweepSpec) -> Counter[str]:
    """Everything that can be checked before a trial starts; the count of trials per state.

    The algorithm libraries and their keyword arguments (a missing ``sbx-rl`` is one error
    here, not one per trial), and that an existing trial folder holds the run the spec asks for.
    """
    from pebble.learners import checked_algorithm

    for pair in sorted({(t.config.algo.backend, t.config.algo.algo) for t in spec.trials}):
        checked_algorithm(next(t.config for t in spec.trials if (t.config.algo.backend, t.config.algo.algo) == pair))
    states: Counter[str] = Counter()
    for trial in spec.trials:
        kind = state(trial.run_dir)
        if kind != "new":
            differs = mismatch(trial.run_dir, trial.config)
            if differs:
                raise ConfigError(
                    f"{trial.run_dir} holds a run with other settings ({differs}): "
                    "give the sweep another out folder or remove that run"
                )
        states[kind] += 1
    return states


def describe(spec: SweepSpec) -> list[str]:
    """One line per trial: its state and its run folder (``pebble sweep --dry-run``)."""
    return [f"{state(t.run_dir):<9} {t.run_dir}" for t in spec.trials]


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError('pebble sweep needs Ray: pip install -e ".[sweep]" (or pip install "ray>=2.9")') from None
    return ray


def connect(ray: Any, address: str | None, cpus: int | None) -> None:
    """Start a local Ray (``cpus`` CPUs, default all) or join the cluster at ``address``."""
    quiet = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        ray.init(num_cpus=cpus, **quiet)
        return
    if address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, **quiet)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ... depending on the address
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot join the Ray cluster at {address}: {first}") from None


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, in one line, on an address nothing listens at (Ray itself retries for minutes)."""
    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address must be HOST:PORT (e.g. 10.0.0.1:6379), ray://HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def run_sweep(
    spec: SweepSpec, address: str | None = None, cpus: int | None = None, print_fn: Callable[[str], None] = print,
    progress_every: float = 30.0,
) -> SweepResult:  # fmt: skip
    """Run every trial of ``spec`` that has not finished, as Ray tasks; see the module docstring.

    Raises :class:`SweepInterrupted` after Ctrl-C/SIGTERM, once the running trials have
    checkpointed. Bad input (the spec, the libraries, the address) raises ConfigError before
    any trial starts.
    """
    states = check(spec)
    ray = import_ray()
    result = SweepResult(skipped=[t.name for t in spec.trials if state(t.run_dir) == "finished"])
    todo = [t for t in spec.trials if t.name not in result.skipped]
    if todo:
        connect(ray, address, cpus)  # before anything is written or printed: a bad address leaves no trace
    print_fn(
        f"[sweep] {spec.name}: {len(spec.trials)} trials in {spec.out} ({states['finished']} finished, "
        f"{states['resumable']} to continue, {states['new']} new)"
    )
    _write_record(spec, result)
    if not todo:
        return result
    try:
        board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        task = ray.remote(_trial_task).options(num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial)
        refs = {task.remote(t.name, t.config, str(spec.out), board): t for t in todo}
        print_fn(f"[sweep] Ray: {ray.cluster_resources().get('CPU', 0):.0f} CPUs, {spec.cpus_per_trial:g} per trial")
        with _stop_signals_as_interrupt():
            try:
                _wait_all(ray, refs, board, result, spec, print_fn, progress_every)
            except KeyboardInterrupt:
                _stop(ray, refs, result, print_fn)
                stopped = sum(o.status == "interrupted" for o in result.outcomes.values())
                raise SweepInterrupted(
                    f"sweep interrupted; {stopped} running trial(s) stopped: run the same pebble sweep to "
                    "continue them from their last checkpoints"
                ) from None
            finally:
                _write_record(spec, result)
    finally:
        ray.shutdown()
    return result


def _wait_all(
    ray: Any, refs: dict[Any, Trial], board: Any, result: SweepResult, spec: SweepSpec,
    print_fn: Callable[[str], None], progress_every: float,
) -> None:  # fmt: skip
    pending = dict(refs)
    total_steps = {t.name: t.config.total_steps for t in spec.trials}
    last_line, last_print = "", 0.0
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=min(progress_every, 5.0))
        for ref in done:
            trial = pending.pop(ref)
            outcome = _outcome(ray, ref, trial)
            result.outcomes[trial.name] = outcome
            print_fn(_outcome_line(outcome))
        line = _progress_line(ray.get(board.snapshot.remote()), result, len(pending), total_steps, len(spec.trials))
        if line != last_line and (done or time.monotonic() - last_print >= progress_every):
            print_fn(line)
            last_line, last_print = line, time.monotonic()
    final = _progress_line({}, result, 0, total_steps, len(spec.trials))
    if final != last_line:
        print_fn(final)


def _outcome(ray: Any, ref: Any, trial: Trial) -> TrialOutcome:
    try:
        outcome: TrialOutcome = ray.get(ref)
        return outcome
    except Exception as exc:  # the task itself failed (a lost node, an import error on a worker)
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return TrialOutcome(trial.name, "failed", 0.0, f"Ray task failed: {first}")


def _outcome_line(outcome: TrialOutcome) -> str:
    verb = {"finished": "finished", "failed": "FAILED", "interrupted": "interrupted"}[outcome.status]
    detail = f": {outcome.error}" if outcome.error else f" in {_duration(outcome.seconds)}"
    return f"[sweep] {outcome.name} {verb}{' (resumed)' if outcome.resumed else ''}{detail}"


def _progress_line(
    board: dict[str, dict[str, float]], result: SweepResult, pending: int, total_steps: dict[str, int], n: int
) -> str:
    """``[sweep] 3/8 done | 2 running | 0 failed | 3 pending | 41% of env steps | time left ~23m``."""
    ended = set(result.outcomes) | set(result.skipped)
    running = {k: v for k, v in board.items() if k not in ended}
    done = len(result.skipped) + sum(o.status == "finished" for o in result.outcomes.values())
    steps_total = sum(total_steps.values())
    finished = [k for k in ended if k in result.skipped or result.outcomes[k].status == "finished"]
    steps_done: float = sum(total_steps[k] for k in finished)
    steps_done += sum(v["step"] for v in running.values())
    rate = sum(v["rate"] for v in running.values())
    left = f"time left ~{_duration((steps_total - steps_done) / rate)}" if rate > 0 else "time left: estimating"
    parts = [
        f"[sweep] {done}/{n} done",
        f"{len(running)} running",
        f"{len(result.failed)} failed",
        f"{max(0, pending - len(running))} pending",
        f"{100 * steps_done / max(1, steps_total):.0f}% of env steps",
    ]
    return " | ".join(parts + ([left] if pending else []))


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"


def _stop(ray: Any, refs: dict[Any, Trial], result: SweepResult, print_fn: Callable[[str], None]) -> None:
    """Cancel queued trials and have running ones checkpoint (``ray.cancel`` raises
    KeyboardInterrupt in the task, which sends SIGTERM to its run); wait for them."""
    left = [r for r, t in refs.items() if t.name not in result.outcomes]
    print_fn("[sweep] stopping: the running trials write a checkpoint (Ctrl-C again to stop at once)")
    for ref in left:
        ray.cancel(ref)
    for ref in left:
        try:
            outcome = ray.get(ref, timeout=600)
        except Exception:  # cancelled before it started, or gone
            continue
        result.outcomes[refs[ref].name] = outcome
        print_fn(_outcome_line(outcome))


@contextmanager
def _stop_signals_as_interrupt() -> Iterator[None]:
    """SIGTERM (a cluster scheduler's stop) stops the sweep as Ctrl-C does. SIGINT is handled
    explicitly too: a process started in the background of a script inherits SIGINT ignored,
    and Python then raises no KeyboardInterrupt, so ``kill -INT`` would not stop the sweep."""

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def source_commit() -> str:
    """The git commit of the pebble source that runs the sweep ('' outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _write_record(spec: SweepSpec, result: SweepResult) -> None:
    """``{out}/sweep.json``: the spec as given, each trial's settings and what became of it."""
    spec.out.mkdir(parents=True, exist_ok=True)
    record = {
        "name": spec.name,
        "pebble": {"version": __version__, "commit": source_commit()},
        "spec": spec.source,
        "trials": {
            t.name: {
                "run_dir": str(t.run_dir),
                "state": state(t.run_dir),
                "last_outcome": asdict(result.outcomes[t.name]) if t.name in result.outcomes else None,
                "config": cfg.to_dict(t.config),
            }
            for t in spec.trials
        },
    }
    (spec.out / "sweep.json").write_text(json.dumps(record, indent=2) + "\n")


class ProgressBoard:
    """A Ray actor (no CPU of its own): each running trial's latest step and its rate."""

    def __init__(self) -> None:
        self.trials: dict[str, dict[str, float]] = {}

    def progress(self, name: str, step: int, total: int) -> None:
        now = time.monotonic()
        entry = self.trials.setdefault(name, {"rate": 0.0})
        # the rate counts from the first report: a resumed trial's first step is its checkpoint's
        entry.setdefault("first_step", step)
        entry.setdefault("first_time", now)
        if now > entry["first_time"] and step > entry["first_step"]:
            entry["rate"] = (step - entry["first_step"]) / (now - entry["first_time"])
        entry.update(step=step, total=total)

    def started(self, name: str) -> None:
        self.trials.setdefault(name, {"rate": 0.0, "step": 0})

    def snapshot(self) -> dict[str, dict[str, float]]:
        return self.trials


def _trial_task(name: str, config: Any, out: str, board: Any) -> TrialOutcome:
    """The Ray task of one trial (runs on a worker)."""
    board.started.remote(name)
    return run_trial(name, config, Path(out), on_progress=lambda step, total: board.progress.remote(name, step, total))
