"""Environment construction for pebble: any Gymnasium id, checked, seeded and monitored."""

from envs.make import (
    LOCOMOTION,
    QUICK,
    EnvError,
    RenderStateInfo,
    check_env_id,
    make_env,
    make_vec_env,
    render_state_dim,
)

__all__ = [
    "LOCOMOTION",
    "QUICK",
    "EnvError",
    "RenderStateInfo",
    "check_env_id",
    "make_env",
    "make_vec_env",
    "render_state_dim",
]
