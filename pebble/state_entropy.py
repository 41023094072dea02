"""Particle-based state entropy reward for unsupervised pre-training (PEBBLE, Sec. 4.1).

The reward of a state s comes from its distances to its k nearest neighbours among all
observations stored in the replay buffer, measured on a choice of features
(:class:`KnnFeatures`), in one of two forms (``--intrinsic-reward``):

* ``reference``: d_k(s) / sigma, the distance to the k-th neighbour divided by the running
  standard deviation of those distances. This is the reference code's form (the paper writes
  ``log(c + d)``): the scale-free ratio keeps the reward O(1) whatever the units. Unlike the
  reference, the running statistics are updated correctly (Chan et al.'s parallel algorithm,
  via SB3's ``RunningMeanStd``);
* ``apt``: log(1 + dbar(s) / mu), APT's form (Liu and Abbeel 2021): dbar is the mean distance to
  the k neighbours and mu its running mean. The logarithm bounds the pull of outliers, which
  the linear ratio rewards without limit.

The features (``--knn-features``): ``raw`` observations (the reference); ``standardized``,
each entry divided by its standard deviation over the seed steps' observations (fixed then:
on raw MuJoCo observations the velocities make up most of the squared distance, so the
"state entropy" of raw observations is mostly velocity entropy); ``positions``, the joint
positions alone (the leading entries of a Gymnasium MuJoCo observation, from its
``observation_structure``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd
from torch import Tensor

from pebble.config import INTRINSIC_REWARDS, KNN_FEATURES, IntrinsicRewardForm, KnnFeatureKind
from pebble.reward_sources import RewardSource


def knn_distances(queries: Tensor, reference: Tensor, k: int, chunk: int = 16384, query_chunk: int = 4096) -> Tensor:
    """Distances (B, k), ascending, from each query (B, d) to its k nearest neighbours in
    ``reference`` (N, d), the query itself excluded.

    The query itself is normally among the reference points (every observation is in the
    buffer), so the 2nd to (k+1)-th smallest distances are taken: the closest match, at
    distance 0, is the state itself. Queries and reference are processed in chunks to bound
    memory (at most ``query_chunk`` x ``chunk`` distances at once).
    """
    if len(queries) > query_chunk:
        parts = [knn_distances(queries[s : s + query_chunk], reference, k, chunk, query_chunk)
                 for s in range(0, len(queries), query_chunk)]  # fmt: skip
        return torch.cat(parts)
    best: Tensor | None = None
    for start in range(0, reference.shape[0], chunk):
        dist = torch.cdist(queries, reference[start : start + chunk])
        if best is not None:
            dist = torch.cat([best, dist], dim=1)
        kk = min(k + 1, dist.shape[1])
        best = torch.topk(dist, kk, dim=1, largest=False, sorted=True).values
    assert best is not None
    return best[:, 1:] if best.shape[1] > 1 else best


def knn_distance(queries: Tensor, reference: Tensor, k: int, chunk: int = 16384) -> Tensor:
    """Distance (B,) from each query to its k-th nearest neighbour in ``reference`` (itself excluded)."""
    return knn_distances(queries, reference, k, chunk)[:, -1]


class KnnFeatures:
    """What the k-NN distance is measured on: raw observations, standardised ones (statistics
    fixed on the first observations seen, those of the seed steps), or the leading
    ``positions`` entries."""

    def __init__(self, kind: KnnFeatureKind = "raw", positions: int | None = None) -> None:
        if kind not in KNN_FEATURES:
            raise ValueError(f"k-NN features must be one of {', '.join(KNN_FEATURES)}, not {kind!r}")
        if kind == "positions" and not positions:
            raise ValueError("k-NN features 'positions' need the number of position entries")
        self.kind, self.positions = kind, positions
        self.mean: Tensor | None = None
        self.std: Tensor | None = None

    def fit(self, observations: Tensor) -> None:
        """Fix the standardisation from ``observations`` (N, d); entries that do not vary keep their scale."""
        x = observations.double()
        std = x.std(0, correction=0)
        self.mean = x.mean(0).to(observations.dtype)
        self.std = torch.where(std < 1e-6, torch.ones_like(std), std).to(observations.dtype)

    def __call__(self, x: Tensor, stored: Tensor | None = None) -> Tensor:
        """The features of ``x`` (N, d); ``standardized`` fixes its statistics from ``stored`` on first use."""
        if self.kind == "positions":
            return x[:, : self.positions]
        if self.kind == "raw":
            return x
        if self.mean is None or self.std is None:
            self.fit(stored if stored is not None else x)
        assert self.mean is not None and self.std is not None
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.std = state["mean"], state["std"]


class StateEntropyReward(RewardSource):
    """The k-NN state-entropy reward of each sampled minibatch, computed against every stored
    observation: the reward source of pre-training."""

    name = "pre-training"

    def __init__(self, k: int, features: KnnFeatures | None = None, form: IntrinsicRewardForm = "reference") -> None:
        if form not in INTRINSIC_REWARDS:
            raise ValueError(f"intrinsic reward form must be one of {', '.join(INTRINSIC_REWARDS)}, not {form!r}")
        self.k, self.form = k, form
        self.features = features if features is not None else KnnFeatures()
        self.stats = RunningMeanStd(shape=())  # of the distances the reward divides by
        self.last_distance_mean = float("nan")
        self.last_reward_mean = float("nan")
        self.seconds = 0.0  # time spent computing intrinsic rewards

    @torch.no_grad()
    def __call__(self, states: Tensor, reference: Tensor, update: bool = True) -> Tensor:
        """Intrinsic rewards (B,) of ``states`` against the ``reference`` observations; ``update``:
        the distances join the running statistics (a minibatch the learner trains on)."""
        tic = time.perf_counter()
        dists = knn_distances(self.features(states, reference), self.features(reference, reference), self.k)
        dist = dists[:, -1] if self.form == "reference" else dists.mean(1)
        if update:
            self.stats.update(dist.double().numpy())
        if self.form == "reference":
            reward = dist / float(np.sqrt(self.stats.var) + 1e-8)
        else:
            reward = torch.log1p(dist / float(self.stats.mean + 1e-8))
        if update:
            self.last_distance_mean = float(dist.mean())
            self.last_reward_mean = float(reward.mean())
        self.seconds += time.perf_counter() - tic
        return reward

    def minibatch_rewards(self, next_obs: Tensor, stored_obs: np.ndarray) -> Tensor:
        return self(next_obs, torch.as_tensor(stored_obs).float())

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling: pebble 0.1 pickled this object inside the replay buffer, before features and forms."""
        self.__dict__.update({"features": KnnFeatures(), "form": "reference", **state})

    @property
    def running_std(self) -> float:
        return float(np.sqrt(self.stats.var))

    def state_dict(self) -> dict[str, Any]:
        s = self.stats
        return {"mean": s.mean, "var": s.var, "count": s.count, "seconds": self.seconds,
                "last": (self.last_distance_mean, self.last_reward_mean),
                "features": self.features.state_dict()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.mean, self.stats.var, self.stats.count = state["mean"], state["var"], state["count"]
        self.seconds = state["seconds"]
        self.last_distance_mean, self.last_reward_mean = state["last"]
        if "features" in state:  # checkpoints of pebble 0.5 and older had raw features only
            self.features.load_state_dict(state["features"])
