"""Fit and evaluate a reward model offline, from a label store (``pebble fit-reward``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pebble.config import RewardModelConfig
from pebble.label_store import LabelStore, LabelStoreError, require_next_states
from pebble.labels import PreferenceDataset
from pebble.reward_learning import RewardTrainer
from pebble.reward_model import RewardModel


def split_labels(
    store: str, test_fraction: float, next_state: bool, rng: np.random.Generator
) -> tuple[PreferenceDataset, PreferenceDataset, dict[str, object]]:
    """(train, test, store meta): the store's labels (skips are none) split at random."""
    source = LabelStore(store, read_only=True)
    meta = source.meta
    rows = [r for r in source if r.answer.kind != "skip"]
    source.close()
    if not rows:
        raise LabelStoreError(f"label store {store} holds no labels")
    if next_state:
        require_next_states((r.query for r in rows), f"label store {store}")
    shape = [int(meta[key]) for key in ("obs_dim", "act_dim", "query_size", "segment_length")]  # type: ignore[call-overload]
    train, test = (PreferenceDataset(*shape, next_state=next_state) for _ in range(2))  # type: ignore[misc]
    n_test = int(round(test_fraction * len(rows)))
    for i, index in enumerate(rng.permutation(len(rows))):
        (test if i < n_test else train).add(rows[index].query, rows[index].answer)
    return train, test, meta


def fit_reward(
    store: str,
    out: str = "",
    test_fraction: float = 0.2,
    reward: RewardModelConfig | None = None,
    seed: int = 0,
    print_fn: Callable[[str], None] = print,
) -> dict[str, float]:
    """Train on a random (1 - test_fraction) of the labels, report accuracy on the rest.

    ``reward`` holds the reward-model settings (default: a run's defaults)."""
    reward = reward if reward is not None else RewardModelConfig()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train, test, meta = split_labels(store, test_fraction, reward.reward_next_state, rng)
    model = RewardModel(train.obs_dim, train.act_dim, reward)
    trainer = RewardTrainer(model)
    real = train.mask.bool()  # padded steps after a termination are not states the model sees
    next_obs = train.next_obs[real].numpy() if reward.reward_next_state else None
    model.fit_input_normalization(train.obs[real].numpy(), train.actions[real].numpy(), next_obs)
    stats = trainer.train(train, rng)
    test_loss, test_acc = trainer.evaluate(test)
    labels = len(train) + len(test)
    print_fn(
        f"[pebble] {labels} labels ({meta.get('env')}): trained {stats.epochs} epochs on {len(train)}, "
        f"train accuracy {stats.train_accuracy:.3f}, test accuracy {test_acc:.3f} on {len(test)}"
    )
    if out:
        model.save(Path(out))
        print_fn(f"[pebble] reward model saved to {out}")
    return {"labels": float(labels), "train_labels": float(len(train)), "test_labels": float(len(test)),
            "epochs": float(stats.epochs), "train_accuracy": stats.train_accuracy, "test_accuracy": test_acc,
            "test_loss": test_loss}  # fmt: skip
