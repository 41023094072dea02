"""The pre-training options: the temperature's start and learning rate, the k-NN features and
reward forms, RIME's warm start, and the switch resetting exactly what is configured."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from envs.make import make_vec_env
from pebble.cli import main
from pebble.config import BACKENDS, Config, ConfigError, RewardModelConfig
from pebble.labels import PreferenceDataset
from pebble.learners import OffPolicyLearner, build_off_policy
from pebble.resets import is_jax
from pebble.reward_learning import RewardLearner
from pebble.reward_model import RewardModel
from pebble.reward_sources import TrueReward
from pebble.state_entropy import KnnFeatures, StateEntropyReward


def log_temperature(model) -> float:
    if is_jax(model):
        return float(np.asarray(model.ent_coef_state.params["log_ent_coef"]))
    return float(model.log_ent_coef.item())


def actor_weights(model) -> list[np.ndarray]:
    if is_jax(model):
        import jax

        return [np.asarray(x) for x in jax.tree_util.tree_leaves(model.policy.actor_state.params)]
    return [v.detach().clone().numpy() for v in model.actor.state_dict().values()]


def critic_weights(model) -> list[np.ndarray]:
    if is_jax(model):
        import jax

        return [np.asarray(x) for x in jax.tree_util.tree_leaves(model.policy.qf_state.params)]
    return [v.detach().clone().numpy() for v in model.critic.state_dict().values() if v.is_floating_point()]


def sac(backend: str, init: float = 0.3, lr: float = 2e-3):
    config = Config(env="InvertedPendulum-v5", seed=0)
    config.algo.algo = "sac"  # the actor's rate, 3e-4, is far from the temperature's own below
    config.algo.backend, config.algo.net_arch, config.algo.batch_size = backend, [16], 32  # type: ignore[assignment]
    config.algo.init_ent_coef, config.algo.ent_coef_lr = init, lr
    config.pretrain.seed_steps = 50
    model = build_off_policy(config, make_vec_env(config.env, 1, 0))
    OffPolicyLearner(model).use_reward(TrueReward(), relabel=False)
    return model


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_initial_temperature_and_its_learning_rate_reach_the_model(backend: str) -> None:
    model = sac(backend, init=0.3, lr=2e-3)
    assert math.isclose(log_temperature(model), math.log(0.3), rel_tol=1e-6)
    model.learn(60)  # 50 seed steps, then updates
    before = log_temperature(model)
    model.train(gradient_steps=1, batch_size=32)
    # Adam's first step (fresh moments) moves a parameter by lr * g / (|g| + eps * sqrt(1 - beta2)), i.e. by
    # the learning rate up to |g| ~ 1e-2 >> eps; a later step by at most about lr. The actor's learning
    # rate (3e-4) would move it at most about 3e-4 per step, so a step near 2e-3 can only be the own rate.
    step = abs(log_temperature(model) - before)
    assert 1e-3 < step < 2.2e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_temperature_reset_restores_the_run_s_initial_value(backend: str) -> None:
    model = sac(backend, init=0.3, lr=5e-3)
    model.learn(300)
    assert abs(log_temperature(model) - math.log(0.3)) > 0.05  # it has moved
    learner = OffPolicyLearner(model)
    actor = actor_weights(model)
    learner.end_pretraining(critic=False, actor=False, extra_updates=0, temperature=True)
    assert math.isclose(log_temperature(model), math.log(0.3), rel_tol=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(actor, actor_weights(model), strict=True))
    if not is_jax(model):
        assert not model.ent_coef_optimizer.state and model.ent_coef_optimizer.own_lr == 5e-3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "critic, actor, temperature", [(True, False, False), (False, True, False), (False, False, True), (True, True, True)]
)
def test_the_switch_resets_exactly_what_is_configured(
    backend: str, critic: bool, actor: bool, temperature: bool
) -> None:
    model = sac(backend, init=0.3, lr=5e-3)
    model.learn(200)
    before = (critic_weights(model), actor_weights(model), log_temperature(model))
    OffPolicyLearner(model).end_pretraining(critic=critic, actor=actor, extra_updates=0, temperature=temperature)
    after = (critic_weights(model), actor_weights(model), log_temperature(model))
    for reset, old, new in zip((critic, actor), before[:2], after[:2], strict=True):
        same = all(np.array_equal(a, b) for a, b in zip(old, new, strict=True))
        assert same is not reset
    assert (before[2] == after[2]) is not temperature


def brute_force(queries: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Sorted distances to the 2nd..(k+1)-th nearest reference points (the 1st is the point itself)."""
    d = np.sqrt(((queries[:, None, :] - reference[None, :, :]) ** 2).sum(-1))
    return np.sort(d, axis=1)[:, 1 : k + 1]


def test_the_standardised_knn_distance_matches_a_brute_force_reference() -> None:
    rng = np.random.default_rng(0)
    scales = np.array([0.1, 1.0, 10.0, 100.0])  # angles beside velocities: raw distance is the last entry's
    reference = rng.normal(size=(500, 4)) * scales + 3.0
    queries = reference[:40]
    features = KnnFeatures("standardized")
    reward = StateEntropyReward(k=4, features=features)
    got = reward(torch.tensor(queries), torch.tensor(reference)).numpy()
    z = (reference - reference.mean(0)) / reference.std(0)  # statistics of the first reference seen
    d = brute_force(z[:40], z, 4)[:, -1]
    # float64 throughout (cdist's |q|^2 + |r|^2 - 2 q.r form is off by ~1e-15 relative); the reward
    # divides by std + 1e-8, which is 1e-8 / std (std ~ 0.3 here) relative: rtol 1e-6 covers both
    np.testing.assert_allclose(got, d / np.sqrt(reward.stats.var), rtol=1e-6)
    # the statistics stay fixed: a reference with other scales is measured with the first ones
    later = torch.tensor(reference * 2)
    features_later = features(later).numpy()
    np.testing.assert_allclose(features_later, (reference * 2 - reference.mean(0)) / reference.std(0), rtol=1e-9)


def test_the_apt_reward_is_log_one_plus_mean_distance_over_its_running_mean() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(300, 3))
    reward = StateEntropyReward(k=3, form="apt")
    seen = []
    for _ in range(3):
        batch = reference[rng.choice(300, 50, replace=False)]
        got = reward(torch.tensor(batch), torch.tensor(reference)).numpy()
        mean_d = brute_force(batch, reference, 3).mean(1)
        seen.append(mean_d)
        # SB3's RunningMeanStd starts from a pseudo-count of 1e-4 at mean 0: 1e-4 / 50 relative here
        np.testing.assert_allclose(got, np.log1p(mean_d / np.concatenate(seen).mean()), rtol=1e-5)


def test_position_features_keep_the_leading_entries_only() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(200, 6))
    reward = StateEntropyReward(k=2, features=KnnFeatures("positions", positions=2))
    reward(torch.tensor(reference[:30]), torch.tensor(reference))
    assert np.isclose(reward.last_distance_mean, brute_force(reference[:30, :2], reference[:, :2], 2)[:, -1].mean())


def test_the_warm_start_lowers_the_reward_model_s_error_on_intrinsic_rewards() -> None:
    rng = np.random.default_rng(3)
    obs, act, nxt = rng.normal(size=(2000, 5)), rng.uniform(-1, 1, size=(2000, 2)), rng.normal(size=(2000, 5))
    intrinsic = 3.0 + np.linalg.norm(nxt[:, :2], axis=1)  # O(1)-O(10), like d / std
    model = RewardModel(5, 2, RewardModelConfig(reward_hidden=[32, 32]))
    learner = RewardLearner(model, PreferenceDataset(5, 2, 2, 10, True), np.random.default_rng(0))
    before, after = learner.warm_start((obs, act, nxt), intrinsic, epochs=20)
    assert before > 5.0  # a fresh network outputs about 0
    assert after < 0.05 * before
    x = model.transition_inputs(obs, act, nxt)
    with torch.inference_mode():
        mse = float(((model.ensemble(x) - torch.as_tensor(intrinsic, dtype=torch.float32)) ** 2).mean())
    assert math.isclose(mse, after, rel_tol=1e-5)
    assert not model.needs_input_normalization  # the statistics were fixed first, as a session would


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"algo": {"algo": "td3", "init_ent_coef": 0.1}}, "--init-ent-coef: --algo td3 learns no entropy temperature"),
        ({"algo": {"algo": "ppo"}, "pretrain": {"reset_temperature": True}}, "--reset-temperature: --algo ppo"),
        ({"algo": {"init_ent_coef": 0.1, "algo_kwargs": {"ent_coef": "auto"}}}, "set the temperature twice"),
        ({"algo": {"init_ent_coef": 0.0}}, "--init-ent-coef must be positive"),
        ({"pretrain": {"warm_start_epochs": -1}}, "--warm-start-epochs must be >= 0"),
    ],
)
def test_bad_temperature_settings_are_one_line_errors(settings: dict, message: str) -> None:
    config = Config()
    for section, values in settings.items():
        for name, value in values.items():
            setattr(getattr(config, section), name, value)
    with pytest.raises(ConfigError, match=message):
        config.validate()


def test_position_features_on_a_task_that_does_not_name_them_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--env", "Reacher-v5", "--knn-features", "positions", "--total-steps", "3000"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--knn-features positions: Reacher-v5" in err


def test_a_run_with_every_option_warm_starts_and_logs_it(tmp_path) -> None:
    lines: list[str] = []
    from pebble import PebbleAgent

    agent = PebbleAgent(
        "Hopper-v5", print_fn=lines.append, total_steps=500, seed_steps=100, unsup_steps=200, num_interact=100,
        segment_length=10, eval_freq=0, log_interval=0, net_arch=[32], reward_hidden=[32], batch_size=64,
        max_feedback=6, knn_features="positions", intrinsic_reward="apt", warm_start_epochs=3, reset_critic=False,
        reset_temperature=True, init_ent_coef=0.1, ent_coef_lr=1e-4,
    )  # fmt: skip
    agent.learn()
    warm = [line for line in lines if "warm-started" in line]
    assert len(warm) == 1 and "on 299 intrinsic rewards (3 epochs)" in warm[0]  # step 300 is not stored yet
    before, after = (float(x) for x in warm[0].split("MSE ")[1].split(" -> "))
    assert after < before
    assert math.isclose(log_temperature(agent.model), math.log(0.1), abs_tol=0.05)  # restored at 300, 1e-4/step
