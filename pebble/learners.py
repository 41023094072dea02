"""The RL learner behind a seam: what the PEBBLE loop needs from an SB3 algorithm.

The loop never touches SB3 internals; it asks a :class:`Learner` to

* train on a reward source (:meth:`Learner.use_reward`): an off-policy learner relabels its
  whole replay buffer; an on-policy learner (PrefPPO) would score each rollout with the
  source before computing advantages (a ``RolloutBuffer`` subclass whose
  ``compute_returns_and_advantage`` calls ``source.score`` first);
* offer clips for queries (:meth:`Learner.clip_pool`): the replay buffer, or a bounded pool
  of recent rollouts;
* report finished training episodes, the stored inputs the reward model is standardised
  with, and recent (learned, true) rewards for the correlation diagnostic;
* reset networks and run extra updates when pre-training ends.

Two implementations share everything but the end of pre-training, since both keep their
transitions in a :class:`~pebble.buffer.PreferenceReplayBuffer`:

* :class:`OffPolicyLearner`: SAC, TD3, DDPG, TQC or CrossQ, from Stable-Baselines3 and
  sb3-contrib (torch) or SBX (JAX), whose replay buffer it is. SBX shares SB3's algorithm
  API, replay buffers and callbacks, so everything but the network resets
  (:mod:`pebble.resets`) is the same code on both backends;
* :class:`OnPolicyLearner`: PrefPPO (:mod:`pebble.on_policy`), whose buffer is the bounded
  pool of recent rollouts, and whose rollouts are scored by the source before advantages.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from pebble.buffer import FinishedEpisode, PreferenceReplayBuffer
from pebble.clips import BufferClipPool, ClipPool
from pebble.config import AlgoName, Backend, Config, ConfigError
from pebble.resets import is_jax, reset_actor, reset_critic
from pebble.reward_sources import RewardSource
from pebble.temperature import reset_temperature, set_temperature_lr
from pebble.timing import Timings

#: Where the class behind each ``--backend`` and ``--algo`` lives (names:
#: :data:`pebble.config.Backend`, :data:`pebble.config.AlgoName`). Imported on first use, so
#: that a torch run never imports JAX (and JAX's thread pool is sized first, pebble.threads).
ALGORITHMS: dict[Backend, dict[AlgoName, str]] = {
    "torch": {
        "sac": "stable_baselines3:SAC",
        "td3": "stable_baselines3:TD3",
        "ddpg": "stable_baselines3:DDPG",
        "tqc": "sb3_contrib:TQC",
        "crossq": "sb3_contrib:CrossQ",
        "ppo": "pebble.on_policy:PrefPPO",
    },
    "jax": {"sac": "sbx:SAC", "td3": "sbx:TD3", "ddpg": "sbx:DDPG", "tqc": "sbx:TQC", "crossq": "sbx:CrossQ"},
}

#: On-policy algorithms: no replay buffer, no seed steps of random actions.
ON_POLICY: tuple[AlgoName, ...] = ("ppo",)

#: What to install for each backend, for the error when its library is missing.
_PACKAGES: dict[str, str] = {"sb3_contrib": "sb3-contrib", "sbx": "sbx-rl"}


def algorithm_class(backend: Backend, algo: AlgoName) -> type[BaseAlgorithm]:
    """The algorithm class of ``algo`` on ``backend`` (a ConfigError if its library is missing)."""
    if algo not in ALGORITHMS[backend]:
        others = [b for b in ALGORITHMS if algo in ALGORITHMS[b]]
        raise ConfigError(f"--algo {algo} runs on --backend {' or '.join(others)} only, not {backend}")
    module, name = ALGORITHMS[backend][algo].split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        package = _PACKAGES.get(module, module)
        raise ConfigError(
            f"--algo {algo} on --backend {backend} needs {package}, which cannot be imported ({exc}); "
            f"install it with: pip install {package}"
        ) from None


class Learner(ABC):
    """An SB3 algorithm as the PEBBLE loop sees it."""

    model: BaseAlgorithm

    @abstractmethod
    def use_reward(self, source: RewardSource, relabel: bool = True) -> None:
        """Train on ``source`` from now on (``relabel``: rewrite what is stored with it)."""

    @property
    @abstractmethod
    def reward_source(self) -> RewardSource:
        """The source the learner trains on now."""

    @abstractmethod
    def clip_pool(self, length: int, recent: int = 0) -> ClipPool:
        """Candidate clips of ``length`` steps (``recent``: from the last N steps only)."""

    @abstractmethod
    def finished_episodes(self) -> list[FinishedEpisode]:
        """Training episodes finished since the last call."""

    @abstractmethod
    def stored_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observations, actions and next observations of the stored transitions."""

    @abstractmethod
    def recent_rewards(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(reward the learner trains on, true reward) of the last ``count`` stored transitions."""

    @abstractmethod
    def recent_true_rewards(self, count: int) -> np.ndarray:
        """True reward of the last ``count`` stored transitions."""

    @abstractmethod
    def restart_episodes(self) -> None:
        """Start new episodes (a resume that could not restore the environments)."""

    @abstractmethod
    def end_pretraining(self, critic: bool, actor: bool, extra_updates: int, temperature: bool = False) -> None:
        """Reset networks (and the entropy temperature) and run ``extra_updates`` updates on the relabelled data."""

    def rng_state(self) -> dict[str, Any]:
        """Random state the learner keeps outside Python's, NumPy's and torch's global RNGs
        and outside its saved model (a checkpoint stores it beside them)."""
        return {}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`rng_state` returned."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no random state of its own, got {sorted(state)}")


class BufferLearner(Learner):
    """An SB3 algorithm whose transitions are kept in a :class:`PreferenceReplayBuffer`."""

    def __init__(self, model: BaseAlgorithm, buffer: PreferenceReplayBuffer, timings: Timings | None = None) -> None:
        if not isinstance(buffer, PreferenceReplayBuffer):
            raise TypeError("the algorithm's replay buffer must be a PreferenceReplayBuffer")
        self.model = model
        self.buffer: PreferenceReplayBuffer = buffer
        self.timings = timings if timings is not None else Timings()

    def use_reward(self, source: RewardSource, relabel: bool = True) -> None:
        with self.timings.measure("relabel") if relabel else contextlib.nullcontext():
            self.buffer.use_reward_source(source, relabel=relabel)

    @property
    def reward_source(self) -> RewardSource:
        return self.buffer.reward_source

    def clip_pool(self, length: int, recent: int = 0) -> ClipPool:
        return BufferClipPool(self.buffer, length, recent)

    def finished_episodes(self) -> list[FinishedEpisode]:
        return self.buffer.drain_finished_episodes()

    def stored_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.buffer.stored_inputs()

    def recent_rewards(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        self.buffer.score_pending()
        rows = self.buffer.recent_rows(count)
        return self.buffer.rewards[rows].reshape(-1), self.buffer.true_rewards[rows].reshape(-1)

    def recent_true_rewards(self, count: int) -> np.ndarray:
        return self.buffer.true_rewards[self.buffer.recent_rows(count)].reshape(-1)

    def restart_episodes(self) -> None:
        env = self.model.get_env()
        assert env is not None
        self.model._last_obs = env.reset()  # type: ignore[assignment]
        self.model._last_episode_starts = np.ones(env.num_envs, dtype=bool)
        self.buffer.start_new_episodes()


class OffPolicyLearner(BufferLearner):
    """An SB3 off-policy algorithm whose replay buffer is a :class:`PreferenceReplayBuffer`."""

    model: OffPolicyAlgorithm

    def __init__(self, model: OffPolicyAlgorithm, timings: Timings | None = None) -> None:
        super().__init__(model, model.replay_buffer, timings)  # type: ignore[arg-type]

    #: SBX's JAX keys: the algorithm's (updates) and the policy's (action noise). Loading a
    #: saved SBX algorithm reseeds the algorithm's key from the seed, so a checkpoint keeps them.
    _JAX_KEYS = (("model", "key"), ("policy", "key"), ("policy", "noise_key"))

    def rng_state(self) -> dict[str, Any]:
        if not is_jax(self.model):
            return {}
        owners = {"model": self.model, "policy": self.model.policy}
        return {f"{owner}.{name}": np.asarray(getattr(owners[owner], name)) for owner, name in self._JAX_KEYS
                if hasattr(owners[owner], name)}  # fmt: skip

    def load_rng_state(self, state: dict[str, Any]) -> None:
        if not state:
            return
        import jax.numpy as jnp

        owners = {"model": self.model, "policy": self.model.policy}
        for where, value in state.items():
            owner, name = where.split(".")
            setattr(owners[owner], name, jnp.asarray(value))

    def end_pretraining(self, critic: bool, actor: bool, extra_updates: int, temperature: bool = False) -> None:
        if critic:
            reset_critic(self.model)
        if actor:
            reset_actor(self.model)
        if temperature:
            reset_temperature(self.model)
        if extra_updates and self.buffer.size() > 0:
            self.model.train(gradient_steps=extra_updates, batch_size=self.model.batch_size)


class OnPolicyLearner(BufferLearner):
    """PrefPPO: its buffer is the pool of recent rollouts, which the source scores before each
    rollout's advantages (:mod:`pebble.on_policy`)."""

    def __init__(self, model: Any, timings: Timings | None = None) -> None:
        super().__init__(model, model.clip_pool, timings)

    def end_pretraining(self, critic: bool, actor: bool, extra_updates: int, temperature: bool = False) -> None:
        """Reset the value function (``critic``) and the policy (``actor``); PPO has no stored
        data to run ``extra_updates`` on, so there are none, and no learned temperature."""
        from pebble.on_policy import reset_policy, reset_value_function

        if critic:
            reset_value_function(self.model)  # type: ignore[arg-type]
        if actor:
            reset_policy(self.model)  # type: ignore[arg-type]


def make_learner(model: BaseAlgorithm, timings: Timings | None = None) -> BufferLearner:
    """The learner around a built or loaded algorithm."""
    if isinstance(model, OffPolicyAlgorithm):
        return OffPolicyLearner(model, timings)
    return OnPolicyLearner(model, timings)


def build_model(config: Config, env: Any, render_state_dim: int = 0) -> BaseAlgorithm:
    """The configured algorithm, off-policy (:func:`build_off_policy`) or PrefPPO (:func:`build_on_policy`)."""
    if config.algo.algo in ON_POLICY:
        return build_on_policy(config, env, render_state_dim)
    return build_off_policy(config, env, render_state_dim)


def build_on_policy(config: Config, env: Any, render_state_dim: int = 0) -> BaseAlgorithm:
    """PrefPPO with the configured learning rate, minibatch size, discount and layer sizes (policy
    and value networks alike); its other settings (``n_steps``, ``n_epochs``, ``clip_range``,
    ``gae_lambda``, ``ent_coef``...) are SB3's defaults unless ``--algo-kwargs`` sets them.
    The clip pool holds ``rollout_pool`` rollouts."""
    a = config.algo
    algorithm = checked_algorithm(config)
    n_steps = int(a.algo_kwargs.get("n_steps", constructor_parameters(algorithm)["n_steps"].default))
    kwargs: dict[str, Any] = dict(
        learning_rate=a.resolved_learning_rate(),
        batch_size=a.batch_size,
        gamma=a.gamma,
        policy_kwargs={"net_arch": {"pi": list(a.net_arch), "vf": list(a.net_arch)}},
        clip_pool_size=a.rollout_pool * n_steps * env.num_envs,
        render_state_dim=render_state_dim,
        seed=config.seed,
        device="cpu",
        verbose=0,
    )
    return algorithm("MlpPolicy", env, **{**kwargs, **a.algo_kwargs})


def build_off_policy(config: Config, env: Any, render_state_dim: int = 0) -> OffPolicyAlgorithm:
    """The algorithm with PEBBLE's replay buffer and the configured hyperparameters.

    A setting the algorithm has no use for is not passed (CrossQ has no target network, so
    no ``tau``; TD3 no temperature); ``--algo-kwargs`` are passed last and win. The learned
    temperature starts at ``init_ent_coef`` and learns at ``ent_coef_lr``.
    """
    a = config.algo
    algorithm = checked_algorithm(config)
    kwargs: dict[str, Any] = dict(
        learning_rate=a.resolved_learning_rate(),
        buffer_size=a.buffer_size,
        learning_starts=config.pretrain.seed_steps,
        batch_size=a.batch_size,
        tau=a.tau,
        gamma=a.gamma,
        train_freq=a.train_freq,
        gradient_steps=a.gradient_steps,
        replay_buffer_class=PreferenceReplayBuffer,
        replay_buffer_kwargs={"render_state_dim": render_state_dim},
        policy_kwargs={"net_arch": list(a.net_arch)},
        ent_coef=f"auto_{a.init_ent_coef}",
        seed=config.seed,
        verbose=0,
    )
    if a.algo in ("td3", "ddpg"):
        n_actions = env.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(n_actions), 0.1 * np.ones(n_actions))
    accepted = constructor_parameters(algorithm)
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    if "device" in accepted:
        kwargs["device"] = "cpu"
    model = algorithm("MlpPolicy", env, **{**kwargs, **a.algo_kwargs})
    set_temperature_lr(model, a.ent_coef_lr)
    return model


def checked_algorithm(config: Config) -> type[Any]:
    """The configured algorithm class, once its library imports and it takes every
    ``--algo-kwargs`` name (a ConfigError otherwise, before a run folder is made)."""
    a = config.algo
    algorithm = algorithm_class(a.backend, a.algo)
    unknown = sorted(set(a.algo_kwargs) - set(constructor_parameters(algorithm)))
    if unknown:
        raise ConfigError(f"--algo-kwargs: {algorithm.__name__} of {a.backend} takes no {', '.join(unknown)}")
    return algorithm


def constructor_parameters(algorithm: type) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``algorithm`` takes, through the classes its ``**kwargs`` pass them to."""
    parameters: dict[str, inspect.Parameter] = {}
    for cls in algorithm.__mro__:
        if "__init__" not in vars(cls):
            continue
        own = inspect.signature(cls).parameters
        parameters = {**own, **parameters}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in own.values()):
            break
    return {name: p for name, p in parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
