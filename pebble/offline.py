"""Fit and evaluate a reward model offline, from a label store (``pebble fit-reward``).

Two protocols: a random train/test split of all labels (``fit_reward``: how much the labels
say), and a replay of the run's sessions in order (``replay_sessions``: before each session's
training, how well the model knows the new clips, as the run measured it). Both end with the
inputs the fitted model relies on most (``RewardModel.input_reliance``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pebble.config import RewardModelConfig
from pebble.label_store import LabelStore, LabelStoreError, StoredAnswer, require_next_states
from pebble.labels import PreferenceDataset
from pebble.reward_learning import RewardLearner, RewardTrainer
from pebble.reward_model import RewardModel


def _read(store: str, next_state: bool) -> tuple[list[StoredAnswer], dict[str, object]]:
    """The store's labels (skips are none), in the order they were given, and its meta."""
    source = LabelStore(store, read_only=True)
    meta = source.meta
    rows = [r for r in source if r.answer.kind != "skip"]
    source.close()
    if not rows:
        raise LabelStoreError(f"label store {store} holds no labels")
    if next_state:
        require_next_states((r.query for r in rows), f"label store {store}")
    return rows, meta


def _dataset(meta: dict[str, object], next_state: bool) -> PreferenceDataset:
    sizes = {key: int(str(meta[key])) for key in ("obs_dim", "act_dim", "query_size", "segment_length")}
    obs_dim, act_dim, query_size, length = sizes.values()
    return PreferenceDataset(obs_dim, act_dim, query_size, length, next_state=next_state)


def _real_steps(data: PreferenceDataset, next_state: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(obs, actions, next obs) of the labelled clips' real steps: padding after a termination
    is not a state the model scores."""
    real = data.mask.bool()
    return data.obs[real].numpy(), data.actions[real].numpy(), data.next_obs[real].numpy() if next_state else None


def reliance_lines(model: RewardModel, data: PreferenceDataset, top: int = 8) -> list[str]:
    """Two lines: the share of the model's reliance on each part of its input, and its ``top`` inputs."""
    reliance = model.input_reliance(*_real_steps(data, model.next_state))
    total = float(reliance.sum()) or 1.0
    names = model.input_names()
    parts: dict[str, float] = {}
    for name, value in zip(names, reliance):
        part = name.split("[")[0]
        parts[part] = parts.get(part, 0.0) + float(value)
    by_part = ", ".join(f"{part} {100 * value / total:.0f}%" for part, value in parts.items())
    best = np.argsort(-reliance)[:top]
    inputs = ", ".join(f"{names[i]} {100 * reliance[i] / total:.1f}%" for i in best)
    return [f"[pebble] the reward relies on: {by_part}", f"[pebble] its top {len(best)} inputs: {inputs}"]


def _report_and_save(model: RewardModel, data: PreferenceDataset, out: str, print_fn: Callable[[str], None]) -> None:
    """The end of both protocols: what the fitted model relies on (on ``data``), and its file."""
    for line in reliance_lines(model, data):
        print_fn(line)
    if out:
        model.save(Path(out))
        print_fn(f"[pebble] reward model saved to {out}")


def split_labels(
    store: str, test_fraction: float, next_state: bool, rng: np.random.Generator
) -> tuple[PreferenceDataset, PreferenceDataset, dict[str, object]]:
    """(train, test, store meta): the store's labels (skips are none) split at random."""
    rows, meta = _read(store, next_state)
    train, test = _dataset(meta, next_state), _dataset(meta, next_state)
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
    train, test_data, meta = split_labels(store, test_fraction, reward.reward_next_state, rng)
    model = RewardModel(train.obs_dim, train.act_dim, reward)
    trainer = RewardTrainer(model)
    model.fit_input_normalization(*_real_steps(train, reward.reward_next_state))
    stats = trainer.train(train, rng)
    test = trainer.evaluate(test_data)
    labels = len(train) + len(test_data)
    print_fn(
        f"[pebble] {labels} labels ({meta.get('env')}): trained {stats.epochs} epochs on {len(train)}, "
        f"train accuracy {stats.train_accuracy:.3f}, test accuracy {test.accuracy:.3f} on {len(test_data)}, "
        f"test return correlation {test.return_correlation:.3f}"
    )
    _report_and_save(model, train, out, print_fn)
    return {"labels": float(labels), "train_labels": float(len(train)), "test_labels": float(len(test_data)),
            "epochs": float(stats.epochs), "train_accuracy": stats.train_accuracy, "test_accuracy": test.accuracy,
            "test_loss": test.loss, "test_return_correlation": test.return_correlation}  # fmt: skip


def replay_sessions(
    store: str,
    out: str = "",
    reward: RewardModelConfig | None = None,
    seed: int = 0,
    print_fn: Callable[[str], None] = print,
) -> list[dict[str, float | str]]:
    """Give the labels to a fresh model session by session, as the run gave them, and measure each
    session's labels before training on them: held-out accuracy and the correlation of learned
    and true clip returns. The queries stay those the run selected (with its own model), so
    this compares how settings learn from the same labels, not their query selection.

    The input statistics are fixed from the first session's clips (the run used every row
    stored by then, of which those clips are a sample)."""
    reward = reward if reward is not None else RewardModelConfig()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    rows, meta = _read(store, reward.reward_next_state)
    data = _dataset(meta, reward.reward_next_state)
    model = RewardModel(data.obs_dim, data.act_dim, reward)
    learner = RewardLearner(model, data, rng)  # as a run's sessions fit: held-out first, then training
    results: list[dict[str, float | str]] = []
    for session in sorted({r.session for r in rows}):
        start = len(data)
        for row in rows:
            if row.session == session:
                data.add(row.query, row.answer)
        fit = learner.fit(start, _real_steps(data, reward.reward_next_state))
        stats = fit.stats
        results.append({"session": float(session), "new_labels": float(len(data) - start), "labels": float(len(data)),
                        "heldout_accuracy": fit.heldout_accuracy,
                        "heldout_return_correlation": fit.heldout_return_correlation,
                        "train_accuracy": stats.train_accuracy, "epochs": float(stats.epochs),
                        "action_inputs": fit.candidate, "screened_features": float(fit.features_kept)})  # fmt: skip
        if start:
            print_fn(
                f"[pebble] session {session}: {len(data) - start} new labels, held-out acc {fit.heldout_accuracy:.3f}, "
                f"return corr {fit.heldout_return_correlation:.3f}; trained {stats.epochs} epochs on {len(data)}"
                + (f", action inputs {fit.candidate}" if len(model.candidates) > 1 else "")
                + (f", {fit.features_kept} screened features" if fit.features_kept else "")
            )
    later = results[1:]  # the first session has no labels before it
    if later:
        print_fn(
            f"[pebble] {len(rows)} labels ({meta.get('env')}) in {len(results)} sessions: mean held-out acc "
            f"{np.nanmean([r['heldout_accuracy'] for r in later]):.3f}, mean return corr "
            f"{np.nanmean([r['heldout_return_correlation'] for r in later]):.3f} over sessions 2-{len(results)}"
        )
    _report_and_save(model, data, out, print_fn)
    return results
