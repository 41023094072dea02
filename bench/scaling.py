"""How PEBBLE's costs grow: relabelling vs buffer size, reward training vs labels, buffer memory.

python bench/scaling.py
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import random_pair_labels, write_result  # noqa: E402

from pebble.buffer import PreferenceReplayBuffer  # noqa: E402
from pebble.config import Config  # noqa: E402
from pebble.reward_learning import RewardTrainer  # noqa: E402
from pebble.reward_model import RewardModel  # noqa: E402
from pebble.reward_sources import LearnedReward  # noqa: E402


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options; --help
    torch.set_num_threads(1)
    env = gym.make("HalfCheetah-v5")
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    cfg = Config().reward  # today's default reward model, r(s, a, s') unless the default changes
    rng = np.random.default_rng(0)
    model = RewardModel(obs_dim, act_dim, cfg)
    fit_rows = 10_000  # a run fixes the input statistics from the steps stored before the first session
    sample = (
        rng.normal(size=(fit_rows, obs_dim)),
        rng.uniform(-1, 1, (fit_rows, act_dim)),
        rng.normal(size=(fit_rows, obs_dim)),
    )
    model.fit_input_normalization(*sample)

    buffer = PreferenceReplayBuffer(1_000_000, env.observation_space, env.action_space, device="cpu")
    arrays = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts", "true_rewards",
              "episode_ids", "env_steps")  # fmt: skip
    memory_mb = sum(getattr(buffer, a).nbytes for a in arrays) / 2**20

    relabel = {}
    for rows in (10_000, 100_000, 1_000_000):
        buffer.pos, buffer.full = rows % buffer.buffer_size, rows == buffer.buffer_size
        buffer.observations[:rows] = rng.normal(size=(rows, 1, obs_dim))
        buffer.next_observations[:rows] = rng.normal(size=(rows, 1, obs_dim))
        tic = time.perf_counter()
        buffer.use_reward_source(LearnedReward(model))  # relabels every stored row
        relabel[rows] = time.perf_counter() - tic
        print(f"relabel {rows} rows: {relabel[rows]:.2f}s", flush=True)

    training = {}
    h = Config().feedback.segment_length
    for labels in (100, 300, 1000, 3000):
        data = random_pair_labels(obs_dim, act_dim, labels, h, cfg.reward_next_state, rng)
        one_epoch = dataclasses.replace(cfg, reward_epochs=1, accuracy_stop=1.0)
        m = RewardModel(obs_dim, act_dim, one_epoch)
        m.fit_input_normalization(*sample)
        tic = time.perf_counter()
        RewardTrainer(m).train(data, rng)
        training[labels] = time.perf_counter() - tic
        print(f"one epoch on {labels} labels: {training[labels]:.2f}s", flush=True)

    result = {
        "env": "HalfCheetah-v5",
        "reward_model": {
            "hidden": cfg.reward_hidden,
            "members": cfg.ensemble_size,
            "inputs": "s, a, s'" if cfg.reward_next_state else "s, a",
        },
        "torch_threads": 1,
        "relabel_seconds_by_rows": relabel,
        "relabel_microseconds_per_row": {k: 1e6 * v / k for k, v in relabel.items()},
        "reward_training_seconds_per_epoch_by_labels": training,
        "reward_training_milliseconds_per_label_epoch": {k: 1e3 * v / k for k, v in training.items()},
        "buffer_1M_memory_MB": memory_mb,
    }
    path = write_result("scaling_halfcheetah", result)
    print(f"buffer of 1M HalfCheetah transitions: {memory_mb:.0f} MB\nwrote {path}")


if __name__ == "__main__":
    main()
