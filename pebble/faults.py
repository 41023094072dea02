"""Fault injection for the crash-and-resume tests.

``PEBBLE_CRASH_AT=NAME:N`` makes the process kill itself with SIGKILL the N-th time it
reaches the crash point NAME (no cleanup, no atexit: as a power cut or ``kill -9``).
Crash points: ``pretrain_step``, ``answer_stored``, ``reward_epoch``, ``checkpoint_write``,
``learned_step``. Unset (the normal case), a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get("PEBBLE_CRASH_AT")
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
