"""Reward model: learns a known reward's ordering from oracle labels; saves and loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pebble.labels import PreferenceDataset
from pebble.reward_model import RewardModel
from teachers.contract import Answer, Clip, Query, TeachingContext
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


@pytest.mark.parametrize("k,output", [(2, "tanh"), (3, "tanh"), (2, "linear")])
def test_recovers_ordering_of_known_reward(k: int, output: str) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=OBS + ACT)
    train = make_labels(400, rng, theta, k)
    model = RewardModel(OBS, ACT, [64, 64], members=3, lr=1e-3, max_epochs=60, output=output)
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
    if output == "tanh":
        assert np.all(np.abs(learned) <= 1.0)  # bounded output
    else:  # unbounded: the far ends of a linear reward are not squashed onto +-1
        top, bottom = true >= np.percentile(true, 99), true <= np.percentile(true, 1)
        assert learned[top].mean() - learned[bottom].mean() > 2.0


def test_weight_decay_shrinks_the_networks_and_a_linear_reward_needs_no_hidden_layer() -> None:
    rng = np.random.default_rng(0)
    theta = rng.normal(size=OBS + ACT)
    data = make_labels(200, rng, theta)
    norms = {}
    for decay in (0.0, 1.0):
        torch.manual_seed(0)  # same initial weights: only the decay differs
        model = RewardModel(OBS, ACT, [32], members=2, lr=1e-2, max_epochs=40, accuracy_stop=1.01, weight_decay=decay)
        model.train_session(data, np.random.default_rng(0))
        norms[decay] = sum(p.norm() ** 2 for p in model.ensemble.parameters()).item()
    assert norms[1.0] < 0.7 * norms[0.0]
    torch.manual_seed(0)
    linear = RewardModel(OBS, ACT, [], members=2, lr=1e-2, max_epochs=60)
    linear.train_session(data, np.random.default_rng(0))
    _, accuracy = linear.evaluate(make_labels(200, rng, theta))
    assert accuracy > 0.9  # the true reward is linear in the inputs


def test_a_reward_of_the_next_state_is_learned_only_with_next_state_inputs() -> None:
    """r = <theta, s'> with s' independent of (s, a): r(s, a) cannot see it, r(s, a, s') can."""
    rng = np.random.default_rng(0)
    theta = rng.normal(size=OBS)

    def labels(n: int) -> PreferenceDataset:
        data = PreferenceDataset(OBS, ACT, 2, H, next_state=True)
        context = TeachingContext(0, 0, rng)
        for i in range(n):
            clips = []
            for _ in range(2):
                obs, nxt = rng.normal(size=(2, H, OBS)).astype(np.float32)
                act = rng.uniform(-1, 1, size=(H, ACT)).astype(np.float32)
                clips.append(Clip(obs, act, (nxt @ theta).astype(np.float32), np.ones(H, bool), next_observations=nxt))
            query = Query(i, tuple(clips))
            data.add(query, ScriptedTeacher().judge(query, context))
        return data

    train, test = labels(300), labels(200)
    accuracy = {}
    for next_state in (False, True):
        torch.manual_seed(0)
        model = RewardModel(OBS, ACT, [32], members=2, lr=3e-3, max_epochs=60, next_state=next_state)
        model.train_session(train, np.random.default_rng(0))
        accuracy[next_state] = model.evaluate(test)[1]
    assert accuracy[True] > 0.85 and 0.35 < accuracy[False] < 0.65
    with pytest.raises(ValueError, match="next observations"):
        model.reward(rng.normal(size=(3, OBS)), rng.normal(size=(3, ACT)))
    without_next = Clip(np.zeros((H, OBS), np.float32), np.zeros((H, ACT), np.float32), np.zeros(H, np.float32),
                        np.ones(H, bool))  # fmt: skip
    with pytest.raises(ValueError, match="without next observations"):
        train.add(Query(999, (without_next, without_next)), Answer("ranking", (0, 1)))


def test_unknown_reward_output_is_refused() -> None:
    with pytest.raises(ValueError, match="'tanh' or 'linear'"):
        RewardModel(OBS, ACT, [8], output="relu")


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
    model.fit_input_normalization(rng.normal(3.0, 5.0, size=(100, OBS)), rng.normal(size=(100, ACT)))
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


def rescaled(data: PreferenceDataset, scale: np.ndarray, shift: np.ndarray) -> PreferenceDataset:
    """The same labels with every observation feature mapped to obs * scale + shift."""
    out = PreferenceDataset(OBS, ACT, data.query_size, data.segment_length)
    for name in ("obs", "actions", "mask", "true_rewards", "rankings", "equal"):
        setattr(out, "_" + name, getattr(data, name).clone())
    out._obs = out._obs * torch.as_tensor(scale, dtype=torch.float32) + torch.as_tensor(shift, dtype=torch.float32)
    out._n = out._capacity = len(data)
    return out


def fit_and_train(data: PreferenceDataset, normalize: bool, seed: int = 0) -> RewardModel:
    torch.manual_seed(seed)
    model = RewardModel(OBS, ACT, [32, 32], members=2, lr=1e-3, max_epochs=20, normalize_inputs=normalize)
    real = data.mask.bool()
    model.fit_input_normalization(data.obs[real].numpy(), data.actions[real].numpy())
    model.train_session(data, np.random.default_rng(seed))
    return model


def test_input_normalization_makes_training_blind_to_feature_units() -> None:
    """Observations in other units (velocities x 50 and offset, angles / 20) train the same model."""
    rng = np.random.default_rng(3)
    theta = rng.normal(size=OBS + ACT)
    data = make_labels(200, rng, theta)
    scale, shift = np.array([50.0, 0.05, 1.0, 20.0]), np.array([100.0, 0.0, -3.0, 0.5])
    probe_obs, probe_act = rng.normal(size=(500, OBS)), rng.uniform(-1, 1, size=(500, ACT))

    plain = fit_and_train(data, normalize=True).reward(probe_obs, probe_act)
    moved = fit_and_train(rescaled(data, scale, shift), normalize=True).reward(probe_obs * scale + shift, probe_act)
    np.testing.assert_allclose(plain, moved, atol=2e-3)
    # without normalisation the units change what is learned
    raw = fit_and_train(rescaled(data, scale, shift), normalize=False).reward(probe_obs * scale + shift, probe_act)
    assert np.abs(plain - raw).max() > 0.1


def test_normalization_is_fitted_once_and_a_model_saved_without_it_still_loads(tmp_path) -> None:
    rng = np.random.default_rng(0)
    model = RewardModel(OBS, ACT, [16], members=2)
    assert model.needs_input_normalization
    model.fit_input_normalization(rng.normal(2.0, 3.0, size=(1000, OBS)), np.zeros((1000, ACT)))
    assert not model.needs_input_normalization
    mean, std = model.ensemble.input_mean.numpy(), model.ensemble.input_std.numpy()
    np.testing.assert_allclose(mean[:OBS], 2.0, atol=0.3)
    np.testing.assert_allclose(std[:OBS], 3.0, atol=0.3)
    np.testing.assert_array_equal(std[OBS:], 1.0)  # constant features: centred, not divided by 0
    assert not RewardModel(OBS, ACT, [16], members=2, normalize_inputs=False).needs_input_normalization

    old = model.state_dict()  # as saved before normalisation existed: no statistics
    old["ensemble"] = {k: v for k, v in old["ensemble"].items() if not k.startswith("input_")}
    torch.save(old, tmp_path / "old.pt")
    legacy = RewardModel(OBS, ACT, [16], members=2)
    legacy.load(tmp_path / "old.pt")
    assert not legacy.needs_input_normalization  # never re-fitted under weights trained on raw inputs
    x, a = rng.normal(size=(20, OBS)), rng.normal(size=(20, ACT))
    raw = RewardModel(OBS, ACT, [16], members=2, normalize_inputs=False)
    raw.ensemble.load_state_dict(legacy.ensemble.state_dict())
    np.testing.assert_array_equal(legacy.reward(x, a), raw.reward(x, a))
