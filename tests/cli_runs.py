"""``pebble`` as a child process, optionally killed at a crash point (pebble.faults)."""

from __future__ import annotations

import os
import subprocess
import sys


def pebble(args: list[str], crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pebble.cli ARGS``; ``crash_at`` sets PEBBLE_CRASH_AT (SIGKILL at that point)."""
    env = {k: v for k, v in os.environ.items() if k != "PEBBLE_CRASH_AT"}
    if crash_at:
        env["PEBBLE_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "pebble.cli", *args], capture_output=True, text=True, env=env)
