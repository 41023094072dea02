"""Reward model: learns a known reward's ordering from oracle labels; saves and loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pebble.labels import PreferenceDataset
from pebble.reward_model import RewardModel
from teachers.contract import Clip, Query, TeachingContext
from teachers.scripted import ScriptedTeacher

OBS, ACT, H = 4, 2, 10


def make_labels(n: int, rng: np.random.Generator, theta: np.ndarray, k: int = 2) -> PreferenceDataset:
    data = PreferenceDataset(OBS, ACT, k, H)
    teacher = ScriptedTeacher()
    context = TeachingContext(0, 0, rng)
    for i in range(n):
        clips = []
        for _ in range(k):
            obs = rng.normal(size=(H, OBS)).astype(np.float32)
            act = rng.uniform(-1, 1, size=(H, ACT)).astype(np.float32)
            reward = (np.concatenate([obs, act], 1) @ theta * 0.1).astype(np.float32)
            clips.append(Clip(obs, act, reward, np.ones(H, bool)))
        query = Query(i, tuple(clips))
        data.add(query, teacher.judge(query, context))
    return data


@pytest.mark.parametrize("k", [2, 3])
def test_recovers_ordering_of_known_reward(k: int) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=OBS + ACT)
    train = make_labels(400, rng, theta, k)
    model = RewardModel(OBS, ACT, [64, 64], members=3, lr=1e-3, max_epochs=60)
    untrained_loss, _ = model.evaluate(train)
    stats = model.train_session(train, rng)
    assert stats.loss < untrained_loss
    _, test_accuracy = model.evaluate(make_labels(300, rng, theta, k))
    assert test_accuracy > 0.85
    obs = rng.normal(size=(2000, OBS))
    act = rng.uniform(-1, 1, size=(2000, ACT))
    learned = model.reward(obs, act)
    true = np.concatenate([obs, act], 1) @ theta
    assert np.corrcoef(learned, true)[0, 1] > 0.85
    assert np.all(np.abs(learned) <= 1.0)  # bounded output


def test_random_labels_are_not_learned_out_of_sample() -> None:
    """The accuracy check above can fail: labels independent of the data stay at chance."""
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    theta = rng.normal(size=OBS + ACT)
    train = make_labels(400, rng, theta)
    train._rankings[: len(train)] = torch.as_tensor(np.stack([rng.permutation(2) for _ in range(len(train))]))
    model = RewardModel(OBS, ACT, [64, 64], members=3, lr=1e-3, max_epochs=30)
    model.train_session(train, rng)
    _, test_accuracy = model.evaluate(make_labels(400, rng, theta))
    assert 0.35 < test_accuracy < 0.65


def test_early_stop_and_save_load(tmp_path) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=OBS + ACT)
    data = make_labels(200, rng, theta)
    model = RewardModel(OBS, ACT, [32], members=2, lr=3e-3, max_epochs=500, accuracy_stop=0.9)
    stats = model.train_session(data, rng)
    assert stats.epochs < 500 and stats.train_accuracy > 0.9
    model.save(tmp_path / "rm.pt")
    clone = RewardModel(OBS, ACT, [32], members=2)
    clone.load(tmp_path / "rm.pt")
    x, a = rng.normal(size=(50, OBS)), rng.normal(size=(50, ACT))
    np.testing.assert_array_equal(model.reward(x, a), clone.reward(x, a))
    wrong = RewardModel(OBS + 1, ACT, [32], members=2)
    with pytest.raises(ValueError, match="obs/action dims"):
        wrong.load(tmp_path / "rm.pt")


def test_padding_contributes_nothing_to_clip_scores() -> None:
    torch.manual_seed(0)
    model = RewardModel(OBS, ACT, [16], members=2)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(5, 2, H, OBS)).astype(np.float32)
    act = rng.normal(size=(5, 2, H, ACT)).astype(np.float32)
    mask = np.ones((5, 2, H), bool)
    mask[:, :, 6:] = False
    full = model.clip_scores(obs[..., :6, :], act[..., :6, :], mask[..., :6])
    padded = model.clip_scores(obs, act, mask)
    np.testing.assert_allclose(full, padded, rtol=1e-5, atol=1e-6)
