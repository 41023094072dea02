"""CPU threads of the learner's framework: one per run by default, torch and XLA alike.

torch takes its intra-op thread count at any time (``torch.set_num_threads``). XLA, JAX's
compiler, does not: it sizes its CPU thread pool once, when JAX first starts its CPU
backend, from the cores the process may run on, and ignores ``XLA_FLAGS`` such as
``intra_op_parallelism_threads`` (measured with jax 0.10: SBX's SAC used 1.6 cores with and
without them). So the pool is sized by letting the process see only ``threads`` cores while
the backend starts, then giving it back every core: the pool then has ``threads`` workers,
which the operating system places on whichever cores are free, and two runs on two cores do
not fight over one. Once started, the pool keeps its size for the life of the process.
"""

from __future__ import annotations

import os
import warnings

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
            os.sched_setaffinity(0, cores)
    _started_with["threads"] = threads if narrow else len(cores)


#: the pool size JAX's backend was started with by :func:`start_jax` in this process
_started_with: dict[str, int] = {}
