"""Environment construction for pebble: any Gymnasium id, checked, seeded and monitored."""

from envs.make import LOCOMOTION, QUICK, EnvError, check_env_id, make_env, make_vec_env

__all__ = ["LOCOMOTION", "QUICK", "EnvError", "check_env_id", "make_env", "make_vec_env"]
