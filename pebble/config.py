"""The typed configuration tree: the single source of truth for every setting.

The command-line flags (:mod:`pebble.cli`), the ``config.json`` saved in each run
folder and the hyperparameter table in TensorBoard are all generated from the
dataclasses below. Every leaf field carries its help text in ``metadata["help"]``;
leaf names are unique across the tree so that each one maps to exactly one flag
(``max_feedback`` -> ``--max-feedback``).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

#: The names of the choices; the objects behind them live where they are built
#: (:func:`pebble.query_selection.make_selector`, :func:`pebble.learners.algorithm_class`).
QueryScheme = Literal["uniform", "disagreement", "entropy", "kcenter", "kcenter_disagreement", "kcenter_entropy"]
AlgoName = Literal["sac", "td3", "ddpg", "tqc", "crossq", "ppo"]
Backend = Literal["torch", "jax"]
ScheduleKind = Literal["constant", "decay", "increase"]
KnnFeatureKind = Literal["raw", "standardized", "positions"]
IntrinsicRewardForm = Literal["reference", "apt"]
QUERY_SCHEMES: tuple[str, ...] = typing.get_args(QueryScheme)
ALGO_NAMES: tuple[str, ...] = typing.get_args(AlgoName)
BACKENDS: tuple[str, ...] = typing.get_args(Backend)
SCHEDULES: tuple[str, ...] = typing.get_args(ScheduleKind)
KNN_FEATURES: tuple[str, ...] = typing.get_args(KnnFeatureKind)
INTRINSIC_REWARDS: tuple[str, ...] = typing.get_args(IntrinsicRewardForm)
#: The algorithms with a learned entropy temperature (``init_ent_coef``, ``ent_coef_lr``, ``reset_temperature``).
TEMPERATURE_ALGOS: tuple[str, ...] = ("sac", "tqc", "crossq")
#: ``--learning-rate 0`` (the default) means the algorithm's published rate: CrossQ's paper and
#: both its libraries use 1e-3 (without target networks it tolerates the larger step); every
#: other algorithm here takes SB3/RL-Zoo's MuJoCo rate.
PUBLISHED_LEARNING_RATES: dict[str, float] = {"crossq": 1e-3}
DEFAULT_LEARNING_RATE = 3e-4


class ConfigError(ValueError):
    """An invalid setting; the message is one line that names the setting."""


def opt(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a default and the help text shown by ``--help``."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class AlgoConfig:
    """The RL algorithm (Stable-Baselines3 or SBX) trained on the learned reward."""

    algo: AlgoName = opt(
        "crossq",
        "RL algorithm: crossq (the default, see docs/cli.md), sac (the paper's), td3, ddpg, tqc (off-policy: the "
        "buffer is relabelled), or ppo (PrefPPO, torch only: each rollout is scored by the reward model before "
        "advantages; see docs/prefppo.md).",
    )
    backend: Backend = opt(
        "torch",
        "Framework of the RL learner: torch (Stable-Baselines3; sb3-contrib for tqc and crossq) or jax (SBX).",
    )
    algo_kwargs: dict[str, Any] = opt(
        {}, "Extra keyword arguments of the algorithm's constructor, e.g. policy_delay=3 (CrossQ's default)."
    )
    learning_rate: float = opt(
        0.0,
        "Learning rate of actor and critic (0: the algorithm's published rate, 1e-3 for crossq and 3e-4, "
        "SB3/RL-Zoo's for MuJoCo, for the rest; a run's config.json holds the rate it used).",
    )
    batch_size: int = opt(256, "Minibatch size of the RL updates.")
    buffer_size: int = opt(1_000_000, "Replay buffer capacity in transitions (all environment copies together).")
    tau: float = opt(0.005, "Polyak coefficient of the target networks (crossq has none).")
    gamma: float = opt(0.99, "Discount factor.")
    train_freq: int = opt(1, "Environment steps between RL updates.")
    gradient_steps: int = opt(1, "RL gradient steps per update.")
    net_arch: list[int] = opt([256, 256], "Hidden layer sizes of actor and critic (PPO: policy and value networks).")
    init_ent_coef: float = opt(
        1.0,
        "Initial entropy coefficient (temperature) of the algorithms that learn one (sac, tqc, crossq), for "
        "every run, pre-trained or not (SB3: 1.0; the reference: 0.1). --reset-temperature restores it.",
    )
    ent_coef_lr: float = opt(
        0.0, "Adam learning rate of that temperature (0: --learning-rate, SB3's rule; the reference: 1e-4)."
    )
    rollout_pool: int = opt(
        8,
        "--algo ppo: recent rollouts kept as the pool query clips are drawn from (PPO keeps no replay buffer).",
    )

    def resolved_learning_rate(self) -> float:
        """``learning_rate``, or where it is 0 the algorithm's published rate (:data:`PUBLISHED_LEARNING_RATES`)."""
        if self.learning_rate != 0:
            return self.learning_rate
        return PUBLISHED_LEARNING_RATES.get(self.algo, DEFAULT_LEARNING_RATE)


@dataclass
class PretrainConfig:
    """Seed steps and reward-free pre-training by state-entropy maximisation."""

    seed_steps: int = opt(
        1000, "Steps with uniformly random actions and no updates (PPO: steps of the initial policy before feedback)."
    )
    unsup_steps: int = opt(
        0,
        "Steps of unsupervised pre-training on the k-NN state-entropy reward (reference: 9000; off by default: "
        "on 100k-step HalfCheetah runs it cost more than it gave, see docs/performance.md).",
    )
    knn_k: int = opt(5, "k of the k-nearest-neighbour state-entropy estimate.")
    knn_features: KnnFeatureKind = opt(
        "raw",
        "What the k-NN distance is measured on: raw observations (the reference); standardized (each entry "
        "divided by its std over the seed steps); positions (the joint positions of a Gymnasium MuJoCo task).",
    )
    intrinsic_reward: IntrinsicRewardForm = opt(
        "reference",
        "Form of the state-entropy reward: reference (distance to the k-th neighbour / its running std) or "
        "apt (log(1 + mean distance to the k neighbours / its running mean), APT's).",
    )
    extra_updates: int = opt(100, "RL updates on the relabelled buffer right after the first feedback session.")
    reset_critic: bool = opt(True, "Reset critic, target critic and critic optimiser after pre-training.")
    reset_actor: bool = opt(
        False,
        "Also reset the actor and its optimiser after pre-training: RL on the learned reward starts afresh, "
        "the pre-training only supplies diverse states (reference: keep the actor).",
    )
    reset_temperature: bool = opt(
        False,
        "Also restore the entropy temperature to --init-ent-coef after pre-training, with a fresh optimiser "
        "(reference: keep it).",
    )
    warm_start_epochs: int = opt(
        0,
        "RIME's warm start: epochs of regression of the reward model onto the intrinsic reward of the stored "
        "transitions when pre-training ends, before the first labels (0: none). Pair with --no-reset-critic.",
    )


@dataclass
class RewardModelConfig:
    """The ensemble reward model and its training."""

    ensemble_size: int = opt(3, "Number of reward networks in the ensemble.")
    reward_hidden: list[int] = opt(
        [128, 128, 128], "Hidden layer sizes of each reward network (reference: 256 x 3; see docs/performance.md)."
    )
    reward_lr: float = opt(3e-4, "Adam learning rate of the reward model.")
    reward_weight_decay: float = opt(
        0.0, "Decoupled (AdamW) weight decay of the reward networks (0: none, the reference)."
    )
    reward_feature_screening: float = opt(
        3.0,
        "Screen the reward networks' inputs: feed each standardised input and its square, kept only if the "
        "labels so far favour it (|z| of the correlation of its clip-sum difference with the answers above "
        "this threshold), re-screened every session; 0: off, every input as it is (the reference). "
        "See docs/reward_learning.md.",
    )
    reward_epochs: int = opt(50, "Maximum epochs over all labels per feedback session (reference: reward_update).")
    reward_batch_size: int = opt(128, "Queries per reward-model minibatch.")
    accuracy_stop: float = opt(0.97, "Stop a session's training once mean training accuracy exceeds this.")
    reward_output: Literal["tanh", "linear"] = opt(
        "linear",
        "Output of each reward network: linear (unbounded) or tanh (bounded in [-1, 1], the reference; "
        "see docs/performance.md).",
    )
    reward_next_state: bool = opt(
        True,
        "Reward networks see the next observation too, r(s, a, s'), as MuJoCo's own rewards do; "
        "--no-reward-next-state: r(s, a), the reference (see docs/performance.md).",
    )
    normalize_inputs: bool = opt(
        True, "Standardise reward-model inputs with statistics of the pre-training states (fixed at the first session)."
    )
    reward_action_inputs: Literal["plain", "quadratic", "auto"] = opt(
        "plain",
        "How the reward networks see the action: plain (the standardised action); quadratic (the action and "
        "its square, weighted to carry as much input variance as the observation: control costs are quadratic "
        "in the action); auto (train both, reward with the one that has ordered more of each session's new "
        "labels, before training on them, so far). See docs/reward_learning.md.",
    )


@dataclass
class FeedbackConfig:
    """The teacher, the queries and the feedback schedule."""

    max_feedback: int = opt(1000, "Total number of queries the teacher may be asked (skips count).")
    num_interact: int = opt(5000, "Environment steps between feedback sessions.")
    queries_per_session: int = opt(
        0, "Queries per session; 0 spreads max_feedback evenly over the sessions that fit in total_steps."
    )
    schedule: ScheduleKind = opt("constant", "How the session size changes over the run: constant, decay or increase.")
    segment_length: int = opt(50, "Length H of each clip (environment steps).")
    query_size: int = opt(2, "Number K of clips per query (2: pairs; >2: rankings, Plackett-Luce).")
    query_scheme: QueryScheme = opt(
        "disagreement", "Query selection: " + ", ".join(QUERY_SCHEMES) + ". The first session is always uniform."
    )
    oversample: int = opt(10, "Candidate queries drawn per selected query by the informed schemes.")
    query_window: int = opt(
        0,
        "Draw query clips only from the most recent N environment steps, so that the teacher compares what "
        "the agent does now (0: the whole buffer, the reference).",
    )
    teacher: str = opt("oracle", "Teacher: a registered name, 'package.module:Class', or an entry point.")
    teacher_kwargs: dict[str, Any] = opt({}, "Keyword arguments of the teacher (flag: --teacher-kwargs KEY=VALUE ...).")


@dataclass
class HumanConfig:
    """The browser teacher (``--teacher human``) and clip videos."""

    host: str = opt("127.0.0.1", "Address the labelling page binds to (127.0.0.1: this machine only).")
    port: int = opt(8765, "Port of the labelling page (0: any free port).")
    render_width: int = opt(320, "Width of rendered clips (pixels).")
    render_height: int = opt(240, "Height of rendered clips (pixels).")
    render_fps: int = opt(25, "Frame rate of rendered clips.")
    human_wait: bool = opt(True, "Wait for every answer of a session; --no-human-wait keeps training meanwhile.")
    tb_videos: bool = opt(False, "Also log each session's clips with their labels as TensorBoard videos.")


@dataclass
class LogConfig:
    """Evaluation, TensorBoard and terminal output."""

    eval_freq: int = opt(10000, "Environment steps between evaluations of the deterministic policy (0: never).")
    eval_episodes: int = opt(5, "Episodes per evaluation.")
    log_interval: int = opt(2000, "Environment steps between progress lines in the terminal (0: quiet).")
    correlation_rows: int = opt(10000, "Recent buffer rows used for the learned/true reward correlation.")


@dataclass
class Config:
    """A PEBBLE training run."""

    env: str = opt("HalfCheetah-v5", "Gymnasium environment id.")
    seed: int = opt(0, "Random seed (environment, networks, queries, teacher).")
    total_steps: int = opt(100_000, "Total environment steps (all environment copies together).")
    exp_name: str = opt("pebble", "Experiment name, part of the default run folder name.")
    run_dir: str = opt("", "Run folder; default: runs/{env}__{exp_name}__{seed}__{time}.")
    n_envs: int = opt(1, "Parallel environment copies.")
    threads: int = opt(
        1,
        "CPU threads of the learner's framework, torch and XLA alike (0: the framework's default, all cores); "
        "one per run lets two runs share two cores without slowing each other.",
        aliases=("torch_threads",),
    )
    true_reward: bool = opt(False, "Baseline: train on the true reward, without pre-training or feedback.")
    checkpoint_freq: int = opt(10000, "Environment steps between checkpoints (0: only on exit, Ctrl-C and SIGTERM).")
    checkpoint_buffer: bool = opt(True, "Include the replay buffer in checkpoints (needed for an exact resume).")
    labels_from: str = opt("", "Label store (labels.db) of another run whose labels warm-start the reward model.")
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    reward: RewardModelConfig = field(default_factory=RewardModelConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    human: HumanConfig = field(default_factory=HumanConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def validate(self) -> None:
        """Fill in the settings left to the algorithm (:meth:`resolve`), then raise
        :class:`ConfigError` naming the first invalid setting."""
        self.resolve()
        self._check_signs()
        self._check_choices()
        self._check_temperature()
        self._check_intervals()

    def resolve(self) -> None:
        """Replace ``learning_rate`` 0 with the algorithm's published rate
        (:data:`PUBLISHED_LEARNING_RATES`), so that the saved config says what the run used and a
        resumed or repeated run keeps it whatever the default becomes."""
        self.algo.learning_rate = self.algo.resolved_learning_rate()

    def _check_signs(self) -> None:
        positive = {
            "total_steps": self.total_steps,
            "n_envs": self.n_envs,
            "batch_size": self.algo.batch_size,
            "buffer_size": self.algo.buffer_size,
            "train_freq": self.algo.train_freq,
            "rollout_pool": self.algo.rollout_pool,
            "knn_k": self.pretrain.knn_k,
            "ensemble_size": self.reward.ensemble_size,
            "reward_batch_size": self.reward.reward_batch_size,
            "reward_epochs": self.reward.reward_epochs,
            "max_feedback": self.feedback.max_feedback,
            "num_interact": self.feedback.num_interact,
            "segment_length": self.feedback.segment_length,
            "oversample": self.feedback.oversample,
            "eval_episodes": self.log.eval_episodes,
            "render_width": self.human.render_width,
            "render_height": self.human.render_height,
            "render_fps": self.human.render_fps,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"--{flag(name)} must be positive, got {value}")
        non_negative: dict[str, float] = {
            "seed_steps": self.pretrain.seed_steps,
            "unsup_steps": self.pretrain.unsup_steps,
            "extra_updates": self.pretrain.extra_updates,
            "warm_start_epochs": self.pretrain.warm_start_epochs,
            "ent_coef_lr": self.algo.ent_coef_lr,
            "reward_weight_decay": self.reward.reward_weight_decay,
            "reward_feature_screening": self.reward.reward_feature_screening,
            "queries_per_session": self.feedback.queries_per_session,
            "query_window": self.feedback.query_window,
            "eval_freq": self.log.eval_freq,
            "log_interval": self.log.log_interval,
            "threads": self.threads,
            "checkpoint_freq": self.checkpoint_freq,
            "gradient_steps": self.algo.gradient_steps,
        }
        for name, amount in non_negative.items():
            if amount < 0:
                raise ConfigError(f"--{flag(name)} must be >= 0, got {amount}")
        rates = (("learning_rate", self.algo.learning_rate), ("reward_lr", self.reward.reward_lr),
                 ("init_ent_coef", self.algo.init_ent_coef))  # fmt: skip
        for name, rate in rates:
            if not rate > 0:
                raise ConfigError(f"--{flag(name)} must be positive, got {rate}")
        if any(h <= 0 for h in self.algo.net_arch + self.reward.reward_hidden):
            raise ConfigError("layer sizes in --net-arch and --reward-hidden must be positive")

    def _check_choices(self) -> None:
        if self.feedback.query_size < 2:
            raise ConfigError(f"--query-size must be at least 2 (clips per query), got {self.feedback.query_size}")
        for name, value, choices in (
            ("query_scheme", self.feedback.query_scheme, QUERY_SCHEMES),
            ("algo", self.algo.algo, ALGO_NAMES),
            ("backend", self.algo.backend, BACKENDS),
            ("knn_features", self.pretrain.knn_features, KNN_FEATURES),
            ("intrinsic_reward", self.pretrain.intrinsic_reward, INTRINSIC_REWARDS),
            ("schedule", self.feedback.schedule, SCHEDULES),
        ):
            if value not in choices:
                raise ConfigError(f"unknown --{flag(name)} {value!r}; choose one of {', '.join(choices)}")

    def _check_temperature(self) -> None:
        """The temperature settings need an algorithm that learns one, and ``algo_kwargs`` must not set it twice."""
        a, defaults = self.algo, AlgoConfig()
        changed = [name for name in ("init_ent_coef", "ent_coef_lr") if getattr(a, name) != getattr(defaults, name)]
        changed += ["reset_temperature"] if self.pretrain.reset_temperature else []
        if changed and a.algo not in TEMPERATURE_ALGOS:
            raise ConfigError(
                f"--{flag(changed[0])}: --algo {a.algo} learns no entropy temperature "
                f"(only {', '.join(TEMPERATURE_ALGOS)} do)"
            )
        if "ent_coef" in a.algo_kwargs and any(name != "reset_temperature" for name in changed):
            raise ConfigError("--algo-kwargs ent_coef and --init-ent-coef/--ent-coef-lr set the temperature twice")

    def _check_intervals(self) -> None:
        if not 0 <= self.human.port <= 65535:
            raise ConfigError(f"--port must be in 0..65535, got {self.human.port}")
        if not 0 < self.algo.gamma <= 1:
            raise ConfigError(f"--gamma must be in (0, 1], got {self.algo.gamma}")
        if not 0 < self.algo.tau <= 1:
            raise ConfigError(f"--tau must be in (0, 1], got {self.algo.tau}")
        if self.reward.reward_feature_screening and self.reward.reward_action_inputs != "plain":
            raise ConfigError(
                f"--reward-action-inputs {self.reward.reward_action_inputs} needs --reward-feature-screening 0 "
                "(screening, on by default, already offers the square of every input, the actions' included)"
            )
        if not 0 < self.reward.accuracy_stop <= 1:
            raise ConfigError(f"--accuracy-stop must be in (0, 1], got {self.reward.accuracy_stop}")
        if not self.true_reward and self.pretrain.seed_steps + self.pretrain.unsup_steps >= self.total_steps:
            raise ConfigError(
                f"--seed-steps + --unsup-steps ({self.pretrain.seed_steps + self.pretrain.unsup_steps}) must be "
                f"smaller than --total-steps ({self.total_steps}) so that feedback can start"
            )


def flag(name: str) -> str:
    """The command-line flag (without dashes) of a leaf field."""
    return name.replace("_", "-")


def leaf_fields(cls: type = Config, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dataclasses.Field[Any]]]:
    """Every leaf field of the tree with its path, e.g. (("feedback", "max_feedback"), Field)."""
    hints = typing.get_type_hints(cls)
    leaves = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            leaves += leaf_fields(kind, path + (f.name,))  # type: ignore[arg-type]
        else:
            leaves.append((path + (f.name,), f))
    return leaves


def field_type(path: tuple[str, ...]) -> Any:
    """The resolved type hint of the leaf at ``path``."""
    cls: Any = Config
    for name in path[:-1]:
        cls = typing.get_type_hints(cls)[name]
    return typing.get_type_hints(cls)[path[-1]]


def get_leaf(config: Config, path: tuple[str, ...]) -> Any:
    """The value of the leaf at ``path``."""
    value: Any = config
    for name in path:
        value = getattr(value, name)
    return value


def set_leaf(config: Config, path: tuple[str, ...], value: Any) -> None:
    """Set the leaf at ``path`` (no checks; see :func:`override`)."""
    node: Any = config
    for name in path[:-1]:
        node = getattr(node, name)
    setattr(node, path[-1], value)


def override(config: Config, **settings: Any) -> Config:
    """A copy of ``config`` with leaves set by name (``max_feedback=200``), each checked and
    converted like a config file's value; an unknown name is a :class:`ConfigError`."""
    paths = {path[-1]: path for path, _ in leaf_fields()}
    paths |= {alias: path for path, f in leaf_fields() for alias in f.metadata.get("aliases", ())}
    config = _copy(config)
    for name, value in settings.items():
        if name not in paths:
            close = difflib.get_close_matches(name, list(paths), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown setting {name!r}{hint}")
        if isinstance(value, tuple):
            value = list(value)
        set_leaf(config, paths[name], coerce(paths[name], value))
    return config


def to_dict(config: Config) -> dict[str, Any]:
    """The nested plain-data form saved as ``config.json``."""
    return dataclasses.asdict(config)


def flat_items(config: Config) -> list[tuple[str, Any]]:
    """(leaf name, value) pairs, in tree order: the hyperparameter table."""
    return [(path[-1], get_leaf(config, path)) for path, _ in leaf_fields()]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: For each plain leaf type: (accepts the value, what it must be, conversion).
_PLAIN: dict[Any, tuple[Any, str, Any]] = {
    bool: (lambda v: isinstance(v, bool), "true or false", bool),
    int: (_is_int, "an integer", int),
    float: (lambda v: _is_int(v) or isinstance(v, float), "a number", float),
    str: (lambda v: isinstance(v, str), "a string", str),
}


def coerce(path: tuple[str, ...], value: Any) -> Any:
    """Check and convert a value read from a config file to the field's type."""
    kind = field_type(path)
    origin = typing.get_origin(kind)
    name = "--" + flag(path[-1])
    if origin is Literal:
        if value not in typing.get_args(kind):
            raise ConfigError(f"{name} must be one of {', '.join(map(str, typing.get_args(kind)))}, got {value!r}")
        return value
    if kind in _PLAIN:
        accepts, must_be, convert = _PLAIN[kind]
        if not accepts(value):
            raise ConfigError(f"{name} must be {must_be}, got {value!r}")
        return convert(value)
    if origin is list:
        if not isinstance(value, list) or not all(_is_int(v) for v in value):
            raise ConfigError(f"{name} must be a list of integers, got {value!r}")
        return list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a table of keyword arguments, got {value!r}")
        return dict(value)
    raise ConfigError(f"{name}: unsupported type {kind}")  # pragma: no cover


def from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """Build a config from nested data (a config file), on top of ``base`` or the defaults.

    Unknown keys are errors, so that a typo in a config file is never silently ignored.
    """
    config = base if base is not None else Config()
    config = _copy(config)
    _apply(config, data, ())
    return config


def _apply(node: Any, data: dict[str, Any], path: tuple[str, ...]) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"config section {'.'.join(path) or '(top)'} must be a table, got {data!r}")
    names = {f.name for f in dataclasses.fields(node)}
    renamed = {alias: f.name for f in dataclasses.fields(node) for alias in f.metadata.get("aliases", ())}
    for key, value in data.items():
        key = renamed.get(key, key)  # a setting's old name, in files written before it was renamed
        if key not in names:
            where = ".".join(path) or "the top level"
            raise ConfigError(f"unknown setting {key!r} in {where} of the config file")
        current = getattr(node, key)
        if dataclasses.is_dataclass(current):
            _apply(current, value, path + (key,))
        else:
            setattr(node, key, coerce(path + (key,), value))


def _copy(config: Config) -> Config:
    return from_plain(to_dict(config))


#: Settings whose default changed, with the value in force before: a saved ``config.json``
#: written before the setting existed describes a run that used the old value.
LEGACY_DEFAULTS: dict[tuple[str, ...], Any] = {
    ("reward", "normalize_inputs"): False,
    ("reward", "reward_output"): "tanh",
    ("reward", "reward_next_state"): False,
    ("reward", "reward_feature_screening"): 0.0,
    ("algo", "backend"): "torch",
}


def from_plain(data: dict[str, Any]) -> Config:
    """Rebuild a config from :func:`to_dict` output (e.g. a saved ``config.json``).

    A setting missing from ``data`` takes its value from before it existed
    (:data:`LEGACY_DEFAULTS`) if its default has changed since, so that an old run resumes
    as it was trained.
    """
    config = Config()
    for path, value in LEGACY_DEFAULTS.items():
        section: Any = data
        for name in path[:-1]:
            section = section.get(name, {}) if isinstance(section, dict) else {}
        if isinstance(section, dict) and path[-1] not in section:
            node: Any = config
            for name in path[:-1]:
                node = getattr(node, name)
            setattr(node, path[-1], value)
    _apply(config, data, ())
    return config


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML config file into nested data."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text.decode())
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of settings")
    return data


def save(config: Config, path: str | Path) -> None:
    """Write the config as JSON (the format ``--config`` reads back)."""
    Path(path).write_text(json.dumps(to_dict(config), indent=2) + "\n")
