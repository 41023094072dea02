"""Particle-based state entropy reward for unsupervised pre-training (PEBBLE, Sec. 4.1).

r_int(s) = ||s - s_kNN|| / sigma: the distance from s to its k-th nearest neighbour among
all observations stored in the replay buffer, divided by the running standard deviation
of those distances. We follow the reference code's ``d / running_std`` (the paper writes
``log(c + d)``): the scale-free ratio keeps the intrinsic reward O(1) whatever the units
of the observation space. Unlike the reference, the running statistics are updated
correctly (Chan et al.'s parallel algorithm, via SB3's ``RunningMeanStd``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd
from torch import Tensor

from pebble.reward_sources import RewardSource


def knn_distance(queries: Tensor, reference: Tensor, k: int, chunk: int = 16384) -> Tensor:
    """Distance from each query (B, d) to its k-th nearest neighbour in ``reference`` (N, d).

    The query itself is normally among the reference points (every observation is in the
    buffer), so the (k+1)-th smallest distance is taken: the closest match, at distance 0,
    is the state itself. The reference is processed in chunks to bound memory.
    """
    best: Tensor | None = None
    for start in range(0, reference.shape[0], chunk):
        dist = torch.cdist(queries, reference[start : start + chunk])
        if best is not None:
            dist = torch.cat([best, dist], dim=1)
        kk = min(k + 1, dist.shape[1])
        best = torch.topk(dist, kk, dim=1, largest=False).values
    assert best is not None
    return best[:, -1]


class StateEntropyReward(RewardSource):
    """k-NN distance normalised by a running standard deviation: the reward source of
    pre-training, computed for each sampled minibatch against every stored observation."""

    name = "pre-training"

    def __init__(self, k: int) -> None:
        self.k = k
        self.stats = RunningMeanStd(shape=())
        self.last_distance_mean = float("nan")
        self.last_reward_mean = float("nan")
        self.seconds = 0.0  # time spent computing intrinsic rewards

    @torch.no_grad()
    def __call__(self, states: Tensor, reference: Tensor) -> Tensor:
        """Intrinsic rewards (B,) of ``states`` against the ``reference`` observations."""
        tic = time.perf_counter()
        dist = knn_distance(states, reference, self.k)
        self.stats.update(dist.double().numpy())
        reward = dist / float(np.sqrt(self.stats.var) + 1e-8)
        self.last_distance_mean = float(dist.mean())
        self.last_reward_mean = float(reward.mean())
        self.seconds += time.perf_counter() - tic
        return reward

    def minibatch_rewards(self, next_obs: Tensor, stored_obs: np.ndarray) -> Tensor:
        return self(next_obs, torch.as_tensor(stored_obs).float())

    @property
    def running_std(self) -> float:
        return float(np.sqrt(self.stats.var))

    def state_dict(self) -> dict[str, Any]:
        s = self.stats
        return {"mean": s.mean, "var": s.var, "count": s.count, "seconds": self.seconds,
                "last": (self.last_distance_mean, self.last_reward_mean)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.mean, self.stats.var, self.stats.count = state["mean"], state["var"], state["count"]
        self.seconds = state["seconds"]
        self.last_distance_mean, self.last_reward_mean = state["last"]
