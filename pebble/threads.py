"""CPU threads of the learner's framework: one per run by default, torch and XLA alike.

torch takes its intra-op thread count at any time (``torch.set_num_threads``). XLA, JAX's
compiler, does not: it sizes its CPU thread pool once, when JAX first starts its CPU
backend, from the cores the process may run on, and ignores ``XLA_FLAGS`` such as
``intra_op_parallelism_threads`` (measured with jax 0.10: SBX's SAC used 1.6 cores with and
without them). So the pool is sized by letting the process see only ``threads`` cores while
the backend starts, then giving every thread of it back every core: the pool then has ``threads`` workers,
which the operating system places on whichever cores are free, and two runs on two cores do
not fight over one. Once started, the pool keeps its size for the life of the process.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import torch


def limit_threads(threads: int, backend: str) -> None:
    """Use ``threads`` CPU threads in torch and, for the jax backend, in XLA (0: their defaults)."""
    if threads:
        torch.set_num_threads(threads)
    if backend == "jax":
        start_jax(threads)


def start_jax(threads: int) -> None:
    """Start JAX's CPU backend with an XLA pool of ``threads`` workers (0: one per core).

    A no-op when the backend is already running (the pool cannot be resized then; a warning
    says so if its size differs) or where the platform cannot restrict a process to some cores.
    """
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        if threads and threads != _started_with.get("threads", threads):
            warnings.warn(
                f"JAX already runs with {_started_with['threads']} CPU threads in this process; "
                f"threads={threads} takes effect in a new process",
                stacklevel=2,
            )
        return
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    narrow = bool(threads) and 0 < threads < len(cores)
    if narrow:
        os.sched_setaffinity(0, sorted(cores)[:threads])
    try:
        import jax

        jax.devices("cpu")  # starts the backend: XLA sizes its pool now
    finally:
        if narrow:
            _give_back_cores(cores)
    _started_with["threads"] = threads if narrow else len(cores)


def _give_back_cores(cores: set[int]) -> None:
    """Let every thread of the process run on ``cores`` again.

    Affinity is a property of each thread, and a thread inherits its creator's: the XLA pool's
    workers, made while the process was narrowed, would otherwise stay on the first core for
    good, and two runs side by side would then share that one core.
    """
    for task in Path("/proc/self/task").iterdir() if Path("/proc/self/task").is_dir() else []:
        with contextlib.suppress(OSError):  # a thread that has ended meanwhile
            os.sched_setaffinity(int(task.name), cores)
    os.sched_setaffinity(0, cores)


#: the pool size JAX's backend was started with by :func:`start_jax` in this process
_started_with: dict[str, int] = {}
