"""Diagnostic: is the reward model's training limited by arithmetic, and where do its epochs go?

Reward training is the largest part of PEBBLE's time over the plain learner
(``bench/throughput.py``). This script answers two questions about it:

1. **Rate.** It times epochs of :class:`pebble.reward_learning.RewardTrainer` with the default
   reward model (``RewardModelConfig()``: an ensemble of MLPs on r(s, a, s'), screened
   features) on ``--labels`` synthetic pair labels with ``--env``'s dimensions, one thread,
   counts the floating-point operations of the networks' forward and backward passes, and sets
   the rate beside one thread's rate for a single matrix product of the hidden layers' shape.
   A rate near that product's means that only less arithmetic (fewer epochs, fewer or smaller
   networks, fewer rows) makes the training faster.
2. **Epochs.** From the TensorBoard logs of finished runs (``--runs``), each session's epochs,
   labels and reward-training seconds, and the share of the time spent in sessions that ran
   to the epoch cap (``reward_epochs``) without reaching ``accuracy_stop``::

    python bench/diagnostics/reward_training_rate.py --env HalfCheetah-v5 \\
        --runs bench/results/default_learner_torch/trials/*
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import DIAGNOSTICS_RESULTS, random_pair_labels, write_result  # noqa: E402

CLIPS, STEPS = 2, 50  # PEBBLE's queries: pairs of 50-step clips


def network_flops_per_row(widths: list[int]) -> tuple[int, int]:
    """Floating-point operations per input row of one MLP with layer widths ``widths`` (inputs
    first, 1 output last): forward (a multiply and an add per weight) and backward (the weight
    gradients of every layer, and the input gradients of every layer but the first, whose
    inputs need none)."""
    layers = list(zip(widths, widths[1:]))
    forward = sum(2 * a * b for a, b in layers)
    backward = forward + sum(2 * a * b for a, b in layers[1:])
    return forward, backward


def time_epochs(env_id: str, labels: int, epochs: int, seed: int) -> dict[str, Any]:
    """Seconds per epoch of the default reward model's training on ``labels`` synthetic labels."""
    import gymnasium as gym
    import torch

    from pebble.config import RewardModelConfig
    from pebble.reward_learning import RewardTrainer
    from pebble.reward_model import RewardModel

    torch.set_num_threads(1)
    env = gym.make(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]  # type: ignore[index]
    env.close()
    config = RewardModelConfig()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    data = random_pair_labels(obs_dim, act_dim, labels, STEPS, config.reward_next_state, rng)
    model = RewardModel(obs_dim, act_dim, config)
    stored = (rng.normal(size=(1000, obs_dim)), rng.uniform(-1, 1, (1000, act_dim)), rng.normal(size=(1000, obs_dim)))
    model.fit_input_normalization(*stored)
    trainer = RewardTrainer(model)
    trainer._epoch(data, rng)  # first epoch: allocations
    start = time.perf_counter()
    for _ in range(epochs):
        trainer._epoch(data, rng)
    seconds = (time.perf_counter() - start) / epochs
    first = next(layer for layer in model.ensemble.nets[0].modules() if isinstance(layer, torch.nn.Linear))
    inputs = first.in_features
    widths = [inputs, *config.reward_hidden, 1]
    forward, backward = network_flops_per_row(widths)
    rows = config.ensemble_size * labels * CLIPS * STEPS  # each member passes over every clip step once per epoch
    flops = rows * (forward + backward)
    return {
        "obs_dim": obs_dim,
        "act_dim": act_dim,
        "labels": labels,
        "network_widths": widths,
        "ensemble_size": config.ensemble_size,
        "batch_size": config.reward_batch_size,
        "seconds_per_epoch": seconds,
        "gflop_per_epoch": flops / 1e9,
        "gflop_per_second": flops / seconds / 1e9,
    }


def matmul_rate(rows: int, width: int, repeats: int = 50) -> float:
    """One thread's GFLOP/s for (rows x width) @ (width x width) in float32."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(rows, width), torch.randn(width, width)
    for _ in range(5):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * rows * width * width / ((time.perf_counter() - start) / repeats) / 1e9


def session_epochs(run_dir: Path) -> dict[str, Any]:
    """Each feedback session's epochs, labels and reward-training seconds, from a run's logs."""
    from pebble.run_results import eval_curve

    cap = int(json.loads((run_dir / "config.json").read_text())["reward"]["reward_epochs"])
    steps, epochs = eval_curve(run_dir, "reward_model/epochs")
    _, labels = eval_curve(run_dir, "feedback/labels_used")
    _, cumulative = eval_curve(run_dir, "time/reward_training_seconds")
    seconds = np.diff(np.concatenate([[0.0], cumulative]))
    capped = np.asarray(epochs) >= cap
    return {
        "run": str(run_dir),
        "epoch_cap": cap,
        "session_steps": steps,
        "epochs": [int(e) for e in epochs],
        "labels": [int(n) for n in labels],
        "seconds": [round(float(s), 2) for s in seconds],
        "reward_training_seconds": float(seconds.sum()),
        "sessions_at_cap": int(capped.sum()),
        "seconds_at_cap": float(seconds[capped].sum()),
        "share_at_cap": float(seconds[capped].sum() / seconds.sum()) if seconds.sum() else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--labels", type=int, default=1000, help="synthetic labels to time an epoch on")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="finished run folders to read")
    parser.add_argument("--name", default=None, help="result file name (default: reward_training_rate_{env})")
    args = parser.parse_args()
    for run_dir in args.runs:  # before the timing, so that a wrong folder costs nothing
        if not (run_dir / "config.json").is_file() or not (run_dir / "tb").is_dir():
            parser.error(f"--runs: {run_dir} is not a finished run folder (it needs config.json and tb/)")
    rate = time_epochs(args.env, args.labels, args.epochs, args.seed)
    hidden = rate["network_widths"][1]
    rows = rate["batch_size"] * CLIPS * STEPS  # the rows of one member's minibatch
    reference = matmul_rate(rows, hidden)
    rate["matmul_reference"] = {"shape": [rows, hidden, hidden], "gflop_per_second": reference}
    rate["share_of_matmul_rate"] = rate["gflop_per_second"] / reference
    print(
        f"[reward_training_rate] {args.labels} labels: {rate['seconds_per_epoch']:.2f} s per epoch, "
        f"{rate['gflop_per_second']:.1f} GFLOP/s; one thread's ({rows} x {hidden}) @ ({hidden} x {hidden}): "
        f"{reference:.1f} GFLOP/s ({rate['share_of_matmul_rate']:.0%})",
        flush=True,
    )
    runs = []
    for run_dir in args.runs:
        row = session_epochs(run_dir)
        runs.append(row)
        print(
            f"[reward_training_rate] {run_dir.parent.parent.name}/{run_dir.name}: "
            f"{row['reward_training_seconds']:.0f} s of reward training, "
            f"{row['sessions_at_cap']} of {len(row['epochs'])} sessions at the {row['epoch_cap']}-epoch cap "
            f"took {row['seconds_at_cap']:.0f} s ({row['share_at_cap']:.0%})"
        )
    data = {"env": args.env, "rate": rate, "runs": runs}
    name = args.name or f"reward_training_rate_{args.env.split('-')[0].lower()}"
    path = write_result(name, data, DIAGNOSTICS_RESULTS)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
