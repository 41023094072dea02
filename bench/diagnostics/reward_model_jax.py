"""Would the reward model train and relabel faster in JAX than in torch, on this CPU?

Times, with one thread in each framework, the two costs the reward model adds to a run:
one epoch of preference training (minibatches of 128 pairs of 50-step clips, 3 members,
each with its own shuffle, BTL loss, Adam step; the gather from the label store included)
and relabelling 100k stored transitions. The torch arm is pebble's own ``Ensemble`` and
``preference_nll``; the JAX arm computes the same network and loss, jitted, with optax's
Adam. Inputs are HalfCheetah-v5 sized r(s, a, s'): 17 + 6 + 17 = 40, already concatenated
(pebble concatenates per batch; that copy is the same in both frameworks and left out).
The two arms alternate, ``--repeats`` times each, and the median is kept.

    python bench/diagnostics/reward_model_jax.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import DIAGNOSTICS_RESULTS, write_result  # noqa: E402

from pebble.config import RewardModelConfig
from pebble.preferences import preference_nll
from pebble.reward_model import Ensemble
from pebble.threads import start_jax

IN, H, K, LABELS, RELABEL_ROWS = 40, 50, 2, 1000, 100_000


def torch_arm(cfg: RewardModelConfig, data: np.ndarray, rows: np.ndarray) -> tuple[Callable, Callable]:
    ensemble = Ensemble(IN, list(cfg.reward_hidden), cfg.ensemble_size, cfg.reward_output, None)
    optimizer = torch.optim.Adam(ensemble.parameters(), lr=cfg.reward_lr)
    x_all = torch.as_tensor(data)
    x_rows = torch.as_tensor(rows)
    members, batch = cfg.ensemble_size, cfg.reward_batch_size
    rankings = torch.zeros(batch, K, dtype=torch.long)
    rankings[:, 1] = 1

    def epoch(rng: np.random.Generator) -> None:
        perms = torch.as_tensor(np.stack([rng.permutation(LABELS) for _ in range(members)]))
        for start in range(0, LABELS, batch):
            index = perms[:, start : start + batch]
            b = index.shape[1]
            x = x_all[index].reshape(members, b * K * H, IN)
            scores = ensemble(x).reshape(members, b, K, H).sum(-1)
            loss = preference_nll(scores, rankings[:b], torch.zeros(b, dtype=torch.bool)).mean(1).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def relabel() -> None:
        with torch.inference_mode():
            ensemble(x_rows).mean(0).numpy()

    return epoch, relabel


def jax_arm(cfg: RewardModelConfig, data: np.ndarray, rows: np.ndarray) -> tuple[Callable, Callable]:
    import jax
    import jax.numpy as jnp
    import optax

    members, batch = cfg.ensemble_size, cfg.reward_batch_size
    sizes = [IN, *cfg.reward_hidden, 1]
    key = jax.random.PRNGKey(0)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, wkey = jax.random.split(key)
        bound = 1 / np.sqrt(fan_in)  # torch's nn.Linear initialisation range
        w = jax.random.uniform(wkey, (members, fan_in, fan_out), minval=-bound, maxval=bound)
        params.append((w, jnp.zeros((members, 1, fan_out))))
    tx = optax.adam(cfg.reward_lr)
    opt_state = tx.init(params)

    def forward(p: list, x: jax.Array) -> jax.Array:  # x (M, N, IN) -> (M, N)
        for i, (w, b) in enumerate(p):
            x = x @ w + b
            if i < len(p) - 1:
                x = jax.nn.leaky_relu(x, 0.01)  # torch's LeakyReLU slope
        return x[..., 0]

    def loss_fn(p: list, x: jax.Array) -> jax.Array:
        m, b = x.shape[:2]
        scores = forward(p, x.reshape(m, b * K * H, IN)).reshape(m, b, K, H).sum(-1)
        # clip 0 preferred: BTL negative log-likelihood, mean over queries, summed over members
        return -jax.nn.log_softmax(scores, axis=-1)[..., 0].mean(1).sum()

    @jax.jit
    def step(p: list, state: optax.OptState, x_all: jax.Array, index: jax.Array) -> tuple[list, optax.OptState]:
        grads = jax.grad(loss_fn)(p, x_all[index])
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state

    x_all = jnp.asarray(data)
    x_rows = jnp.asarray(rows)
    score_rows = jax.jit(lambda p, x: forward(p, jnp.broadcast_to(x, (members, *x.shape))).mean(0))
    state = {"params": params, "opt": opt_state}

    def epoch(rng: np.random.Generator) -> None:
        perms = np.stack([rng.permutation(LABELS) for _ in range(members)])
        p, s = state["params"], state["opt"]
        for start in range(0, LABELS, batch):
            p, s = step(p, s, x_all, jnp.asarray(perms[:, start : start + batch]))
        jax.block_until_ready(p)
        state["params"], state["opt"] = p, s

    def relabel() -> None:
        np.asarray(score_rows(state["params"], x_rows))

    return epoch, relabel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per arm (alternating)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start_jax(1)
    cfg = RewardModelConfig(reward_feature_screening=0.0)  # the networks on every input, as measured before 0.8.0
    gen = np.random.default_rng(0)
    data = gen.standard_normal((LABELS, K, H, IN), dtype=np.float32)
    rows = gen.standard_normal((RELABEL_ROWS, IN), dtype=np.float32)
    arms = {"torch": torch_arm(cfg, data, rows), "jax": jax_arm(cfg, data, rows)}
    times: dict[str, dict[str, list[float]]] = {a: {"epoch": [], "relabel": []} for a in arms}
    rng = np.random.default_rng(1)
    for epoch, relabel in arms.values():  # warm-up: jit compilation, allocator
        epoch(rng)
        relabel()
    for _ in range(args.repeats):
        for name, (epoch, relabel) in arms.items():
            tic = time.perf_counter()
            epoch(rng)
            times[name]["epoch"].append(time.perf_counter() - tic)
            tic = time.perf_counter()
            relabel()
            times[name]["relabel"].append(time.perf_counter() - tic)
    medians = {a: {p: statistics.median(v) for p, v in parts.items()} for a, parts in times.items()}
    for part in ("epoch", "relabel"):
        t, j = medians["torch"][part], medians["jax"][part]
        what = f"one epoch on {LABELS} labels" if part == "epoch" else f"relabel {RELABEL_ROWS} rows"
        print(f"{what}: torch {t:.3f} s, jax {j:.3f} s (jax / torch {j / t:.2f})", flush=True)
    path = write_result(
        "reward_model_jax",
        {
            "members": cfg.ensemble_size,
            "hidden": list(cfg.reward_hidden),
            "input_dim": IN,
            "labels": LABELS,
            "batch": cfg.reward_batch_size,
            "relabel_rows": RELABEL_ROWS,
            "threads": 1,
            "repeats": args.repeats,
            "median_seconds": medians,
            "all_seconds": times,
            "jax_over_torch": {p: medians["jax"][p] / medians["torch"][p] for p in ("epoch", "relabel")},
        },
        DIAGNOSTICS_RESULTS,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
