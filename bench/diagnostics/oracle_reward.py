"""Diagnostic: PEBBLE with a perfect reward model.

Runs ``pebble`` with the true environment reward as the reward source after pre-training
(``PebbleAgent(fixed_reward=TrueReward())``): no teacher is asked and SAC learns from the true
reward once pre-training ends. All else is PEBBLE's: seed steps, state-entropy pre-training, the
critic reset and the extra updates when it ends. (Until pebble 0.2 this script switched the
feedback sessions off by patching the loop, which also reset the critic at every session step;
the figures in bench/README.md measured that way say so.) The gap between such a run and SAC
on the true reward is what pre-training costs; the gap between it and a PEBBLE run is what the
reward model's errors cost. Same arguments as ``pebble`` (``train`` or ``resume``); the run's
own files (``summary.json``, the buffer for ``bench/diagnostics/flipping.py``) are written as
usual::

    python bench/diagnostics/oracle_reward.py train --env HalfCheetah-v5 --total-steps 30000 --seed 0 \\
        --run-dir runs/diag_oracle/HalfCheetah-v5__oracle__0 --torch-threads 1
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for pebble
from pebble.cli import main  # noqa: E402
from pebble.reward_sources import TrueReward  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], fixed_reward=TrueReward()))
