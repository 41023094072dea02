"""pebble: PEBBLE (Lee, Smith, Abbeel 2021) preference-based RL on Gymnasium MuJoCo with Stable-Baselines3.

The public names::

    from pebble import PebbleAgent, Config, Answer, Query, Clip, Teacher, TeachingContext

:class:`PebbleAgent` is the Python API (docs/python.md); the roles it is built from live in
their own modules (docs/architecture.md).
"""

from pebble.agent import PebbleAgent, RunResult
from pebble.config import Config, ConfigError
from pebble.label_store import LabelStore, read_labels
from pebble.labels import PreferenceDataset
from pebble.reward_learning import RewardLearner, RewardTrainer
from pebble.reward_model import RewardModel
from pebble.reward_sources import LearnedReward, RewardSource, TrueReward
from teachers.contract import Answer, Clip, Query, Teacher, TeacherError, TeachingContext

__version__ = "0.9.0"

__all__ = [
    "Answer",
    "Clip",
    "Config",
    "ConfigError",
    "LabelStore",
    "LearnedReward",
    "PebbleAgent",
    "PreferenceDataset",
    "Query",
    "RewardLearner",
    "RewardModel",
    "RewardSource",
    "RewardTrainer",
    "RunResult",
    "Teacher",
    "TeacherError",
    "TeachingContext",
    "TrueReward",
    "read_labels",
]
