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
    reward_next_state = reward.reward_next_state
    source = LabelStore(store, read_only=True)
    meta = source.meta
    rows = [r for r in source if r.answer.kind != "skip"]
    source.close()
    if not rows:
        raise LabelStoreError(f"label store {store} holds no labels")
    if reward_next_state:
        require_next_states((r.query for r in rows), f"label store {store}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    n_test = int(round(test_fraction * len(rows)))
    obs_dim, act_dim = int(meta["obs_dim"]), int(meta["act_dim"])  # type: ignore[call-overload]
    k, h = int(meta["query_size"]), int(meta["segment_length"])  # type: ignore[call-overload]
    train = PreferenceDataset(obs_dim, act_dim, k, h, reward_next_state)
    test = PreferenceDataset(obs_dim, act_dim, k, h, reward_next_state)
    for i, index in enumerate(order):
        (test if i < n_test else train).add(rows[index].query, rows[index].answer)
    model = RewardModel(obs_dim, act_dim, reward)
    trainer = RewardTrainer(model)
    real = train.mask.bool()  # padded steps after a termination are not states the model sees
    model.fit_input_normalization(
        train.obs[real].numpy(),
        train.actions[real].numpy(),
        train.next_obs[real].numpy() if reward_next_state else None,
    )
    stats = trainer.train(train, rng)
    test_loss, test_acc = trainer.evaluate(test)
    result = {
        "labels": float(len(rows)),
        "train_labels": float(len(train)),
        "test_labels": float(len(test)),
        "epochs": float(stats.epochs),
        "train_accuracy": stats.train_accuracy,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
    }
    print_fn(
        f"[pebble] {len(rows)} labels ({meta.get('env')}): trained {stats.epochs} epochs on {len(train)}, "
        f"train accuracy {stats.train_accuracy:.3f}, test accuracy {test_acc:.3f} on {len(test)}"
    )
    if out:
        model.save(Path(out))
        print_fn(f"[pebble] reward model saved to {out}")
    return result
