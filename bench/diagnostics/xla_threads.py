"""Diagnostic: how many cores does SBX's SAC use, and does one XLA thread cost speed?

Each mode trains SAC on HalfCheetah-v5 in a fresh process (1000 steps, updates from step
500, to compile and warm up), then times 1500 more steps and reports steps/s and the
process's CPU time over wall time (1.0: one core busy):

* ``sbx_default``: SBX as installed, XLA's thread pool at its default size;
* ``sbx_xla_flags``: with ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
  intra_op_parallelism_threads=1``, the flags usually given to keep XLA to one thread;
* ``sbx_pebble_threads_1``: XLA started by :func:`pebble.threads.start_jax` with one thread;
* ``sb3_threads_1``: Stable-Baselines3's SAC with one torch thread, for scale.

torch runs SBX's replay-buffer sampling, so every mode sets one torch thread. Run it on an
otherwise idle machine (other processes cap the CPU time a run can get)::

    python bench/diagnostics/xla_threads.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import DIAGNOSTICS_RESULTS, ROOT, write_result  # noqa: E402

CHILD = """
import json, os, sys, time
mode = sys.argv[1]
if mode == "sbx_xla_flags":
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
import torch
torch.set_num_threads(1)
if mode == "sbx_pebble_threads_1":
    from pebble.threads import start_jax
    start_jax(1)
import gymnasium as gym
if mode.startswith("sbx"):
    from sbx import SAC
else:
    from stable_baselines3 import SAC
model = SAC("MlpPolicy", gym.make("HalfCheetah-v5"), learning_starts=500, seed=0, verbose=0, device="cpu")
model.learn(1000)
wall, cpu = time.perf_counter(), time.process_time()
model.learn(1500, reset_num_timesteps=False)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"steps_per_second": 1500 / wall, "cpu_over_wall": cpu / wall}))
"""

MODES = ("sbx_default", "sbx_xla_flags", "sbx_pebble_threads_1", "sb3_threads_1")


def main() -> None:
    rows = {}
    for mode in MODES:
        out = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=ROOT, capture_output=True, text=True, check=True)
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        print(mode, rows[mode], flush=True)
    path = write_result("xla_threads", {"env": "HalfCheetah-v5", "timed_steps": 1500, "modes": rows},
                        results=DIAGNOSTICS_RESULTS)  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
