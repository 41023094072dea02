"""``pebble train`` and ``pebble resume``: a :class:`~pebble.agent.PebbleAgent` in a run folder,
with SIGINT/SIGTERM turned into a checkpoint and a clean stop."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pebble.agent import PebbleAgent, RunResult
from pebble.config import Config
from pebble.reward_sources import RewardSource
from pebble.run_dir import default_run_dir


class RunInterrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint."""

    def __init__(self, run_dir: Path, step: int, signum: int) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint saved. Resume with: pebble resume {run_dir}")
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals(agent: PebbleAgent, print_fn: Callable[[str], None]) -> Iterator[list[int]]:
    """SIGINT/SIGTERM ask the agent to checkpoint and stop; a second Ctrl-C stops at once
    (labels are already stored). Yields the signals received. Only in the main thread."""
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)
        agent.request_stop()
        print_fn(f"[pebble] {signal.Signals(signum).name}: writing a checkpoint, then stopping")

    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    for s in previous:
        signal.signal(s, on_signal)
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run(agent: PebbleAgent, total_steps: int | None, print_fn: Callable[[str], None]) -> RunResult:
    assert agent.run_dir is not None
    print_fn(f"[pebble] run folder {agent.run_dir} (TensorBoard: tensorboard --logdir {agent.run_dir})")
    try:
        with stop_on_signals(agent, print_fn) as received:
            agent.learn(total_steps)
        if received:
            raise RunInterrupted(agent.run_dir, agent.num_timesteps, received[0])
    finally:
        agent.close()
    assert agent.result is not None
    return agent.result


def train(
    config: Config, overwrite: bool = False, print_fn: Callable[[str], None] = print,
    fixed_reward: RewardSource | None = None,
) -> RunResult:  # fmt: skip
    """Start a new run of PEBBLE (or, with ``config.true_reward``, the plain algorithm) and train it.

    ``fixed_reward``: see :class:`~pebble.agent.PebbleAgent` (the perfect-reward diagnostic)."""
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    agent = PebbleAgent(config=config, run_dir=run_dir, overwrite=overwrite, print_fn=print_fn,
                        fixed_reward=fixed_reward)  # fmt: skip
    return _run(agent, None, print_fn)


def resume(
    run_dir: str | Path, print_fn: Callable[[str], None] = print, total_steps: int | None = None,
    fixed_reward: RewardSource | None = None,
) -> RunResult:  # fmt: skip
    """Continue the run in ``run_dir`` from its latest checkpoint (or from the start, reusing its labels)."""
    run_dir = Path(run_dir)
    agent = PebbleAgent.load(run_dir, print_fn=print_fn, fixed_reward=fixed_reward)
    if agent.resumed_from is None:
        print_fn(f"[pebble] {run_dir} has no checkpoint: restarting from step 0, reusing its stored labels")
    else:
        print_fn(f"[pebble] resuming {run_dir} from {agent.resumed_from.name}")
    return _run(agent, total_steps, print_fn)
