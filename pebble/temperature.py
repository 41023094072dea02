"""The learned entropy temperature of SAC, TQC and CrossQ: its own learning rate, and its reset.

SB3 and sb3-contrib build the temperature's Adam at the actor's learning rate and set every
optimiser to the learning-rate schedule before each update; SBX builds it at
``lr_schedule(1)``. The reference PEBBLE code starts the temperature at 0.1 and learns it at
1e-4 (``--init-ent-coef``, ``--ent-coef-lr``). The initial value is a constructor argument
(``ent_coef="auto_0.1"``, :func:`pebble.learners.build_off_policy`); the learning rate is set
here, after the algorithm is built or loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from pebble.resets import is_jax


class TemperatureAdam(torch.optim.Adam):
    """Adam at a learning rate of its own: SB3's ``_update_learning_rate`` sets every optimiser's
    ``lr`` to the actor's schedule before each update, and this optimiser steps at ``own_lr``."""

    def __init__(self, params: Iterable[torch.Tensor], own_lr: float) -> None:
        super().__init__(params, lr=own_lr)
        self.own_lr = own_lr

    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        for group in self.param_groups:
            group["lr"] = self.own_lr
        return super().step(closure)


def learns_temperature(model: Any) -> bool:
    """Whether ``model`` learns its entropy coefficient (``ent_coef="auto..."``)."""
    if is_jax(model):
        return type(getattr(model, "ent_coef", None)).__name__ == "EntropyCoef"
    return getattr(model, "ent_coef_optimizer", None) is not None


def set_temperature_lr(model: Any, lr: float) -> None:
    """Learn ``model``'s temperature at ``lr`` from now on (0: leave the algorithm's own rule),
    keeping the optimiser's moment estimates; a no-op for an algorithm without a learned one."""
    if lr <= 0 or not learns_temperature(model):
        return
    if is_jax(model):
        import optax

        # Adam's state has the same structure at any learning rate, so the moments carry over;
        # the new transformation makes the update step compile once more.
        model.ent_coef_state = model.ent_coef_state.replace(tx=optax.adam(learning_rate=lr))
        return
    old = model.ent_coef_optimizer
    new = TemperatureAdam([model.log_ent_coef], own_lr=lr)
    new.load_state_dict(old.state_dict())
    model.ent_coef_optimizer = new


def initial_temperature(model: Any) -> float:
    """The temperature ``model`` started with (SB3's and SBX's rule for ``ent_coef="auto_X"``)."""
    spec = getattr(model, "ent_coef_init" if is_jax(model) else "ent_coef", "auto")
    return float(spec.split("_")[1]) if isinstance(spec, str) and "_" in spec else 1.0


def reset_temperature(model: Any) -> None:
    """Restore the initial temperature, with an optimiser holding no moment estimates (at the
    same learning rate); a no-op for an algorithm without a learned one."""
    if not learns_temperature(model):
        return
    if is_jax(model):
        import jax

        state = model.ent_coef_state
        model.key, key = jax.random.split(model.key)
        params = model.ent_coef.init(key)["params"]  # EntropyCoef(initial value)
        model.ent_coef_state = state.replace(step=0, params=params, opt_state=state.tx.init(params))
        return
    log_ent_coef = model.log_ent_coef
    with torch.no_grad():
        log_ent_coef.fill_(math.log(initial_temperature(model)))
    old = model.ent_coef_optimizer
    if isinstance(old, TemperatureAdam):
        model.ent_coef_optimizer = TemperatureAdam([log_ent_coef], own_lr=old.own_lr)
    else:
        model.ent_coef_optimizer = torch.optim.Adam([log_ent_coef], lr=old.param_groups[0]["lr"])
