"""How a finished run's final reward model maps the true reward: mean learned reward per
true-reward quantile bin, over every transition in the run's replay buffer.

A learned reward that flattens at the top (``tanh`` output near +1) tells the policy little
about going faster than the fastest behaviour it was trained on.

    python bench/diagnostics/reward_calibration.py --runs runs/bench/HalfCheetah-v5__pebble_1000__0 ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import DIAGNOSTICS_RESULTS, ROOT, final_buffer, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))
from pebble import config  # noqa: E402
from pebble.reward_model import RewardModel  # noqa: E402

QUANTILES = [0, 10, 25, 50, 75, 90, 99, 100]


def calibration(run: Path) -> dict:
    # from_plain gives runs made before an option existed the value they were trained with
    reward = config.from_plain(config.load_file(run / "config.json")).reward
    buffer, obs, act, true = final_buffer(run)
    model = RewardModel(obs.shape[1], act.shape[1], reward)
    model.load(run / "reward_model.pt")
    learned = model.reward(obs, act, buffer.stored_inputs()[2])
    edges = np.percentile(true, QUANTILES)
    bins = []
    for (q_lo, q_hi), lo, hi in zip(zip(QUANTILES[:-1], QUANTILES[1:]), edges[:-1], edges[1:]):
        inside = (true >= lo) & ((true < hi) if q_hi < 100 else (true <= hi))
        bins.append(
            {
                "quantiles": [q_lo, q_hi],
                "true_range": [float(lo), float(hi)],
                "rows": int(inside.sum()),
                "true_mean": float(true[inside].mean()),
                "learned_mean": float(learned[inside].mean()),
            }
        )
    top = true >= np.percentile(true, 90)
    return {
        "correlation": float(np.corrcoef(learned, true)[0, 1]),
        "correlation_top_decile": float(np.corrcoef(learned[top], true[top])[0, 1]),
        "learned_max": float(learned.max()),
        "bins": bins,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="finished pebble run folders")
    p.add_argument("--name", default="reward_calibration")
    args = p.parse_args()
    torch.set_num_threads(1)
    results = {}
    for run in map(Path, args.runs):
        key = f"{run.parent.name}/{run.name}"  # the same run name recurs across benchmark folders
        r = results[key] = calibration(run)
        print(f"{key}: corr {r['correlation']:.3f}, top decile {r['correlation_top_decile']:.3f}")
        for b in r["bins"]:
            print(
                f"  true {b['true_range'][0]:7.2f} .. {b['true_range'][1]:7.2f}  learned mean {b['learned_mean']:+.3f}"
            )
    print(f"wrote {write_result(args.name, {'runs': results}, DIAGNOSTICS_RESULTS)}")


if __name__ == "__main__":
    main()
