"""Diagnostic: PEBBLE with a perfect reward model.

Runs ``pebble`` with every feedback session turned into a no-op, so that the buffer is never
relabelled and SAC learns from the true environment reward once pre-training ends. All else is
PEBBLE's: seed steps, state-entropy pre-training, the critic reset and the extra updates when
it ends. The gap between such a run and SAC on the true reward is what pre-training costs; the
gap between it and a PEBBLE run is what the reward model's errors cost. Same arguments as
``pebble``; the run's own files (``summary.json``, the buffer for ``bench/diagnostics/flipping.py``) are
written as usual::

    python bench/diagnostics/oracle_reward.py train --env HalfCheetah-v5 --total-steps 30000 --seed 0 \\
        --run-dir runs/diag_oracle/HalfCheetah-v5__oracle__0 --torch-threads 1
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for pebble
from pebble import loop  # noqa: E402
from pebble.cli import main  # noqa: E402


def no_feedback(self: loop.PebbleLoop, first: bool) -> None:
    """A session that asks nothing: the stored rewards stay the environment's."""


if __name__ == "__main__":
    loop.PebbleLoop.feedback_session = no_feedback  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
