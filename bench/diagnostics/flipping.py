"""How much of a HalfCheetah run the cheetah spends on its back, window by window.

HalfCheetah's observation starts with ``qpos[1:]``, so ``obs[1]`` is the root's pitch angle
(a hinge: it keeps counting past a full turn). The cheetah is upside down when the cosine
of that angle is negative. Running on its back is a known local optimum of HalfCheetah: it
earns reward, but less than an upright gait. Reads each run's final replay buffer (its
latest checkpoint) and writes ``bench/diagnostics/results/<name>.json``.

    python bench/diagnostics/flipping.py --runs runs/bench/HalfCheetah-v5__pebble_1000__{0,1,2,3}
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import DIAGNOSTICS_RESULTS, final_buffer, write_result  # noqa: E402

PITCH = 1  # index of the root pitch angle in HalfCheetah's observation


def windows(run: Path, width: int) -> list[dict[str, float]]:
    buffer, obs, _, true = final_buffer(run)
    steps = buffer.env_steps[: buffer.size()].reshape(-1)
    flipped = np.cos(obs[:, PITCH]) < 0
    rows = []
    for start in range(0, int(steps.max()), width):
        inside = (steps > start) & (steps <= start + width)
        if inside.any():
            rows.append(
                {
                    "steps": [start, start + width],
                    "upside_down": float(flipped[inside].mean()),
                    "true_reward_mean": float(true[inside].mean()),
                }
            )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="finished HalfCheetah run folders")
    p.add_argument("--window", type=int, default=10_000, help="env steps per window")
    p.add_argument("--name", default="flipping_halfcheetah")
    args = p.parse_args()
    results = {}
    for run in map(Path, args.runs):
        rows = windows(run, args.window)
        results[str(run)] = rows
        cells = " ".join(f"{r['upside_down']:.2f}" for r in rows)
        print(f"{run.parent.name}/{run.name}: upside-down fraction per {args.window} steps: {cells}")
    print(f"wrote {write_result(args.name, {'window': args.window, 'runs': results}, DIAGNOSTICS_RESULTS)}")


if __name__ == "__main__":
    main()
