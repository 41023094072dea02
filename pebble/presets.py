"""Presets: the published PEBBLE and PrefPPO settings, one flag away (``--preset NAME``).

A preset is a table of settings laid over the defaults, before ``--config`` and the flags
(which win). A run's ``config.json`` holds the expanded values, never the preset's name, so
a run folder says what it ran even if a preset changes later.

The values are those of the authors' published configuration and run scripts (B-Pref's
``train_PEBBLE.py`` and ``train_PrefPPO.py`` with their DMC and Meta-World scripts); where the
scripts vary by task, the note says which task's value is used. No environment is set: pass
``--env`` (e.g. ``dm_control/walker-walk-v0``, ``metaworld/drawer-open-v3``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from pebble import config as cfg
from pebble.config import Config, ConfigError

#: The reference reward model: 3 members of 3 x 256 with a tanh output, on r(s, a), unstandardised, unscreened.
_REFERENCE_REWARD = {
    "ensemble_size": 3,
    "reward_hidden": [256, 256, 256],
    "reward_lr": 3e-4,
    "reward_batch_size": 128,
    "reward_output": "tanh",
    "reward_next_state": False,
    "normalize_inputs": False,
    "reward_feature_screening": 0.0,
}


#: B-Pref's PrefPPO: 500 steps per env per rollout, no entropy bonus, clip 0.4, GAE lambda 0.92
_PREFPPO_KWARGS = {"n_steps": 500, "ent_coef": 0.0, "clip_range": 0.4, "gae_lambda": 0.92}


@dataclass(frozen=True)
class Preset:
    """A named table of settings (nested like a config file) and what it reproduces."""

    description: str
    settings: dict[str, Any]


PRESETS: dict[str, Preset] = {
    "pebble-dmc": Preset(
        "PEBBLE on DeepMind Control (walker script): SAC batch 1024, 2 x 1024, lr 5e-4 (quadruped: 1e-4), initial "
        "temperature 0.1; 9000 pre-training steps; 100 queries every 20000 steps, 1000 in all; 500k steps",
        {
            "total_steps": 500_000,
            "algo": {
                "algo": "sac",
                "batch_size": 1024,
                "net_arch": [1024, 1024],
                "learning_rate": 5e-4,
                "tau": 0.005,
                "init_ent_coef": 0.1,
                "ent_coef_lr": 1e-4,
            },  # fmt: skip
            "pretrain": {"seed_steps": 1000, "unsup_steps": 9000, "knn_k": 5, "extra_updates": 100},
            "reward": {**_REFERENCE_REWARD, "reward_epochs": 50},
            "feedback": {
                "max_feedback": 1000,
                "num_interact": 20_000,
                "queries_per_session": 100,
                "segment_length": 50,
                "query_scheme": "disagreement",
            },  # fmt: skip
        },
    ),
    "pebble-metaworld": Preset(
        "PEBBLE on Meta-World: SAC batch 512, 3 x 256, lr 3e-4, initial temperature 0.1; 9000 pre-training "
        "steps; 50 queries every 5000 steps, 10000 in all; 1M steps",
        {
            "total_steps": 1_000_000,
            "algo": {
                "algo": "sac",
                "batch_size": 512,
                "net_arch": [256, 256, 256],
                "learning_rate": 3e-4,
                "tau": 0.005,
                "init_ent_coef": 0.1,
                "ent_coef_lr": 1e-4,
            },  # fmt: skip
            "pretrain": {"seed_steps": 1000, "unsup_steps": 9000, "knn_k": 5, "extra_updates": 100},
            "reward": {**_REFERENCE_REWARD, "reward_epochs": 10},
            "feedback": {
                "max_feedback": 10_000,
                "num_interact": 5000,
                "queries_per_session": 50,
                "segment_length": 50,
                "query_scheme": "disagreement",
            },  # fmt: skip
        },
    ),
    "prefppo-dmc": Preset(
        "PrefPPO on DeepMind Control (walker script): PPO with 32 envs x 500 steps per rollout, lr 5e-5, batch "
        "64, 3 x 256, clip 0.4, GAE lambda 0.92, no entropy bonus; 32000 pre-training steps; 100 queries every "
        "32000 steps, 1000 in all; 4M steps",
        {
            "total_steps": 4_000_000,
            "n_envs": 32,
            "algo": {
                "algo": "ppo",
                "backend": "torch",
                "batch_size": 64,
                "net_arch": [256, 256, 256],
                "learning_rate": 5e-5,
                "algo_kwargs": _PREFPPO_KWARGS,
            },  # fmt: skip
            "pretrain": {"seed_steps": 0, "unsup_steps": 32_000, "knn_k": 5},
            "reward": {**_REFERENCE_REWARD, "reward_epochs": 50},
            "feedback": {
                "max_feedback": 1000,
                "num_interact": 32_000,
                "queries_per_session": 100,
                "segment_length": 50,
                "query_scheme": "disagreement",
            },  # fmt: skip
        },
    ),
}


def preset_config(name: str, base: Config | None = None) -> Config:
    """``base`` (default: the defaults) with preset ``name`` laid over it; a ConfigError names
    the close matches of an unknown name."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else f"; choose one of {', '.join(PRESETS)}"
        raise ConfigError(f"unknown --preset {name!r}{hint}")
    return cfg.from_dict(PRESETS[name].settings, base)


def preset_help() -> str:
    """The ``--preset`` help text: each name with what it sets."""
    return "Published settings laid over the defaults (flags and --config win): " + "; ".join(
        f"{name}: {preset.description}" for name, preset in PRESETS.items()
    )
