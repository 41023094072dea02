"""How much of the k-NN distance of pre-training the velocities make up, on raw and on
standardised observations (``--knn-features``).

A Gymnasium MuJoCo v5 observation starts with the joint positions (``qpos``, per its
``observation_structure``) and continues with the velocities. For 1000 random-action steps
(the seed steps' states) this finds each state's k-th nearest neighbour and reports the
share of the squared distance to it that comes from the velocity entries. Writes
``bench/diagnostics/results/knn_velocity_share.json``.

    python bench/diagnostics/knn_velocity_share.py --envs HalfCheetah-v5 Walker2d-v5 Hopper-v5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import DIAGNOSTICS_RESULTS, write_result  # noqa: E402


def random_states(env_id: str, steps: int, seed: int) -> tuple[np.ndarray, int]:
    """Observations of ``steps`` uniformly random actions, and how many leading entries are positions."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows = [obs]
    while len(rows) < steps:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        rows.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
            rows.append(obs)
    return np.array(rows[:steps]), int(env.unwrapped.observation_structure["qpos"])  # type: ignore[attr-defined]


def velocity_share(x: torch.Tensor, positions: int, k: int) -> float:
    """Share of the squared distance to each state's k-th neighbour (itself excluded) from entries ``positions:``."""
    neighbour = torch.topk(torch.cdist(x, x), k + 1, largest=False).indices[:, k]
    diff2 = (x - x[neighbour]) ** 2
    return float(diff2[:, positions:].sum() / diff2.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["HalfCheetah-v5", "Walker2d-v5", "Hopper-v5"])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for env_id in args.envs:
        obs, positions = random_states(env_id, args.steps, args.seed)
        x = torch.tensor(obs, dtype=torch.float64)
        z = (x - x.mean(0)) / x.std(0, correction=0).clamp_min(1e-6)
        row = {
            "env": env_id,
            "entries": int(x.shape[1]),
            "position_entries": positions,
            "raw": velocity_share(x, positions, args.k),
            "standardized": velocity_share(z, positions, args.k),
        }
        rows.append(row)
        share = f"{row['raw']:.3f} of the squared {args.k}-NN distance raw, {row['standardized']:.3f} standardised"
        print(f"{env_id}: velocities ({x.shape[1] - positions} of {x.shape[1]} entries) make up {share}")
    print(write_result("knn_velocity_share", {"steps": args.steps, "k": args.k, "rows": rows}, DIAGNOSTICS_RESULTS))


if __name__ == "__main__":
    main()
