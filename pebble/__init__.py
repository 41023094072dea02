"""pebble: PEBBLE (Lee, Smith, Abbeel 2021) preference-based RL on Gymnasium MuJoCo with Stable-Baselines3."""

__version__ = "0.1.0"
