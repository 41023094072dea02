"""The learner seam: off-policy algorithms of SB3, sb3-contrib and SBX with PEBBLE's buffer,
relabelled and reset on request."""

from __future__ import annotations

import numpy as np
import pytest

from envs.make import make_vec_env
from pebble.config import ALGO_NAMES, BACKENDS, Config, ConfigError
from pebble.learners import ALGORITHMS, ON_POLICY, OffPolicyLearner, algorithm_class, build_off_policy
from pebble.resets import is_jax
from pebble.reward_sources import RewardSource, TrueReward

OFF_POLICY = [name for name in ALGO_NAMES if name not in ON_POLICY]


def test_every_algorithm_name_has_its_class_on_both_backends() -> None:
    assert set(ALGORITHMS) == set(BACKENDS)
    assert set(ALGORITHMS["torch"]) == set(ALGO_NAMES)
    for backend in BACKENDS:
        assert set(ALGORITHMS[backend]) >= set(OFF_POLICY)  # PrefPPO is torch only
        for algo in OFF_POLICY:
            cls = algorithm_class(backend, algo)  # type: ignore[arg-type]
            assert cls.__name__.lower() == algo and cls.__module__.startswith("sbx" if backend == "jax" else "s")
    assert algorithm_class("torch", "ppo").__name__ == "PrefPPO"
    with pytest.raises(ConfigError, match="--algo ppo runs on --backend torch only, not jax"):
        algorithm_class("jax", "ppo")


def test_algorithm_keyword_arguments_are_checked_against_the_class() -> None:
    config = Config(env="InvertedPendulum-v5")
    config.algo.algo, config.algo.algo_kwargs = "crossq", {"policy_delay": 1, "tau": 0.1}  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="CrossQ of torch takes no tau"):
        build_off_policy(config, make_vec_env(config.env, 1, 0))


class Doubled(RewardSource):
    batched = learned = True

    def score(self, obs: np.ndarray, act: np.ndarray, nxt: np.ndarray, true: np.ndarray) -> np.ndarray:
        return 2 * true


def critic_weights(model) -> list[np.ndarray]:
    if is_jax(model):
        import jax

        states = [s for n, s in vars(model.policy).items() if n.startswith("qf") and n.endswith("_state")]
        return [np.asarray(x) for s in states for x in jax.tree_util.tree_leaves(s.params)]
    return [v.detach().clone().numpy() for v in model.critic.state_dict().values() if v.is_floating_point()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("algo", OFF_POLICY)
def test_an_off_policy_learner_relabels_its_buffer_and_ends_pre_training(algo: str, backend: str) -> None:
    config = Config(env="InvertedPendulum-v5", seed=0)
    config.algo.algo, config.algo.net_arch, config.algo.batch_size = algo, [16], 32  # type: ignore[assignment]
    config.algo.backend = backend  # type: ignore[assignment]
    config.pretrain.seed_steps = 50
    model = build_off_policy(config, make_vec_env(config.env, 1, 0))
    learner = OffPolicyLearner(model)
    learner.use_reward(TrueReward(), relabel=False)
    model.learn(120)
    learned, true = learner.recent_rewards(1000)
    np.testing.assert_array_equal(learned, true)
    learner.use_reward(Doubled())  # every stored row, at once
    learned, true = learner.recent_rewards(1000)
    np.testing.assert_array_equal(learned, 2 * true)
    assert learner.reward_source.learned and len(learned) == model.replay_buffer.size() == 120
    critic = critic_weights(model)
    updates = model._n_updates
    learner.end_pretraining(critic=True, actor=False, extra_updates=7)
    assert model._n_updates == updates + 7  # the extra updates ran on the relabelled buffer
    assert any(not np.array_equal(a, b) for a, b in zip(critic, critic_weights(model), strict=True))


def test_a_missing_backend_library_is_an_error_naming_what_to_install(monkeypatch) -> None:
    import importlib

    from pebble import learners

    real = importlib.import_module

    def without_sbx(name: str, *args):
        if name == "sbx":
            raise ImportError("No module named 'sbx'")
        return real(name, *args)

    monkeypatch.setattr(learners.importlib, "import_module", without_sbx)
    with pytest.raises(ConfigError, match=r"--backend jax needs sbx-rl.*pip install sbx-rl"):
        algorithm_class("jax", "sac")
