"""The labelled queries the reward model trains on.

Each label keeps *copies* of its clips' observations and actions (not references into
the replay buffer), so labels survive the buffer wrapping and no trajectory is kept alive
by a label.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from teachers.contract import Answer, Query


class PreferenceDataset:
    """Growing tensors of labelled queries: clips (N, K, H, .), rankings (N, K), equal flags (N,)."""

    _obs: Tensor
    _actions: Tensor
    _mask: Tensor
    _true_rewards: Tensor
    _rankings: Tensor
    _equal: Tensor
    _next_obs: Tensor

    def __init__(
        self, obs_dim: int, act_dim: int, query_size: int, segment_length: int, next_state: bool = False
    ) -> None:
        self.obs_dim, self.act_dim, self.query_size, self.segment_length = obs_dim, act_dim, query_size, segment_length
        #: also keep each clip's next observations (for a reward model r(s, a, s'))
        self.next_state = next_state
        self._n = 0
        self._allocate(64)

    def _allocate(self, capacity: int) -> None:
        k, h = self.query_size, self.segment_length
        new = {
            "obs": torch.zeros(capacity, k, h, self.obs_dim),
            "actions": torch.zeros(capacity, k, h, self.act_dim),
            "mask": torch.zeros(capacity, k, h),
            "true_rewards": torch.zeros(capacity, k, h),
            "rankings": torch.zeros(capacity, k, dtype=torch.long),
            "equal": torch.zeros(capacity, dtype=torch.bool),
        }
        if self.next_state:
            new["next_obs"] = torch.zeros(capacity, k, h, self.obs_dim)
        for name, tensor in new.items():
            if self._n:
                tensor[: self._n] = getattr(self, "_" + name)[: self._n]
            setattr(self, "_" + name, tensor)
        self._capacity = capacity

    def __len__(self) -> int:
        return self._n

    def add(self, query: Query, answer: Answer) -> None:
        """Store a ranking or "equal" answer (skips are not labels)."""
        if answer.kind == "skip":
            raise ValueError("a skipped query is not a label")
        if query.size != self.query_size:
            raise ValueError(f"query has {query.size} clips, the dataset holds {self.query_size}")
        if self.next_state and any(c.next_observations is None for c in query.clips):
            raise ValueError(
                f"query {query.query_id} has clips without next observations, which a reward r(s, a, s') needs"
            )
        if self._n == self._capacity:
            self._allocate(2 * self._capacity)
        i = self._n
        self._obs[i] = torch.as_tensor(np.stack([c.observations for c in query.clips]))
        self._actions[i] = torch.as_tensor(np.stack([c.actions for c in query.clips]))
        self._mask[i] = torch.as_tensor(np.stack([c.mask for c in query.clips]))
        self._true_rewards[i] = torch.as_tensor(np.stack([c.true_rewards for c in query.clips]))
        if self.next_state:
            self._next_obs[i] = torch.as_tensor(np.stack([c.next_observations for c in query.clips]))  # type: ignore[misc]
        if answer.kind == "equal":
            self._rankings[i] = torch.arange(self.query_size)
            self._equal[i] = True
        else:
            self._rankings[i] = torch.as_tensor(answer.ranking)
            self._equal[i] = False
        self._n += 1

    @property
    def obs(self) -> Tensor:
        return self._obs[: self._n]

    @property
    def actions(self) -> Tensor:
        return self._actions[: self._n]

    @property
    def mask(self) -> Tensor:
        return self._mask[: self._n]

    @property
    def next_obs(self) -> Tensor:
        if not self.next_state:
            raise AttributeError("this dataset keeps no next observations (next_state=False)")
        return self._next_obs[: self._n]

    @property
    def true_rewards(self) -> Tensor:
        return self._true_rewards[: self._n]

    @property
    def rankings(self) -> Tensor:
        return self._rankings[: self._n]

    @property
    def equal(self) -> Tensor:
        return self._equal[: self._n]

    def state_features(self) -> np.ndarray:
        """Flattened observations of each labelled query (for k-center selection)."""
        return self.obs.reshape(self._n, -1).numpy()
