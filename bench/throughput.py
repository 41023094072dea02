"""Steps per second of PEBBLE on each backend against the plain libraries' SAC.

Four arms on one task, in one invocation, each in its own process with one thread (torch's,
and XLA's for the jax arms, :mod:`pebble.threads`):

* ``sb3_sac``: Stable-Baselines3's SAC, called directly (no PEBBLE code), with PEBBLE's SAC
  settings (learning rate, buffer, batch, network, 1000 random warm-up steps);
* ``sbx_sac``: SBX's SAC, the same way;
* ``pebble_torch`` and ``pebble_jax``: ``pebble train --algo sac`` with the label budget, at
  the default schedule, on each backend (SAC, not the default learner: the arms compare the
  same algorithm with and without PEBBLE).

They run as two pairs, each pair started together side by side (one run per core on a
2-core machine): pebble_torch beside sb3_sac, then pebble_jax beside sbx_sac. Within a pair
both runs see the same machine; besides each run's own steps/s, the pair's ``window`` ratio
compares the two over the time both were running only (the step the slower run had reached
when the faster one finished, from its TensorBoard wall times), since the one that finishes
first leaves the other a free core. Ratios across the pairs compare runs made at different
times. An arm whose result exists under ``--out`` is reused, not run again. PEBBLE's extra
time (query selection, teacher, reward training, relabelling, state entropy) is broken down
from each run's ``summary.json``.

    python bench/throughput.py --env HalfCheetah-v5 --steps 100000 --labels 1000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, write_result  # noqa: E402

ARMS = ("pebble_torch", "sb3_sac", "pebble_jax", "sbx_sac")
PAIRS = (("pebble_torch", "sb3_sac"), ("pebble_jax", "sbx_sac"))


def plain_model(library: str, env_id: str, seed: int, algo: str = "sac") -> Any:
    """The library's ``algo`` (``sb3``: SB3 or sb3-contrib; ``sbx``: SBX) with PEBBLE's settings for
    it, one thread, not trained yet. SAC by default: the targets compare SAC with SAC, whatever
    the default learner. A setting the algorithm has no use for (CrossQ's ``tau``) is left out."""
    from envs.make import make_vec_env
    from pebble.config import Backend, Config
    from pebble.learners import algorithm_class, constructor_parameters
    from pebble.threads import limit_threads

    backend: Backend = "jax" if library == "sbx" else "torch"
    config = Config(env=env_id, seed=seed)
    config.algo.algo = algo  # type: ignore[assignment]  # a name of pebble.config.AlgoName
    config.resolve()
    limit_threads(1, backend)
    algorithm = algorithm_class(backend, config.algo.algo)
    a = config.algo
    kwargs: dict[str, Any] = dict(
        learning_rate=a.learning_rate, buffer_size=a.buffer_size, learning_starts=config.pretrain.seed_steps,
        batch_size=a.batch_size, tau=a.tau, gamma=a.gamma, train_freq=a.train_freq,
        gradient_steps=a.gradient_steps, policy_kwargs={"net_arch": list(a.net_arch)},
        seed=seed, device="cpu", verbose=0,
    )  # fmt: skip
    accepted = constructor_parameters(algorithm)
    return algorithm("MlpPolicy", make_vec_env(env_id, 1, seed), **{k: v for k, v in kwargs.items() if k in accepted})


def plain(library: str, env_id: str, steps: int, seed: int, out: Path) -> None:
    """Train the library's SAC with PEBBLE's settings and write its steps/s to ``out``."""
    model = plain_model(library, env_id, seed)
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    result = {"steps": steps, "seconds": seconds, "steps_per_second": steps / seconds, "finished": time.time()}
    out.write_text(json.dumps(result) + "\n")


def pebble_args(args: argparse.Namespace, backend: str, run_dir: Path) -> list[str]:
    """``pebble train`` arguments of a PEBBLE arm: the label budget at the default schedule, one
    thread, no evaluations or checkpoints (the plain arms have neither)."""
    return ["train", "--env", args.env, "--total-steps", str(args.steps), "--seed", str(args.seed),
            "--threads", "1", "--log-interval", "5000", "--eval-freq", "0", "--checkpoint-freq", "0",
            "--overwrite", "--max-feedback", str(args.labels), "--algo", "sac", "--backend", backend,
            "--run-dir", str(run_dir)]  # fmt: skip


def span(out: Path, name: str, result: dict) -> tuple[float, float]:
    """(start, finish) wall-clock times of an arm's run."""
    path = out / (f"{name}.json" if name.endswith("_sac") else f"{name}/summary.json")
    finished = result.get("finished", path.stat().st_mtime)
    return finished - result["seconds"], finished


def step_at(run_dir: Path, when: float) -> float:
    """The env step a PEBBLE run had reached at wall-clock time ``when`` (linear between the
    steps its progress scalar was logged at)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    events = acc.Scalars("time/steps_per_second")
    return float(np.interp(when, [e.wall_time for e in events], [e.step for e in events]))


def window(out: Path, pebble: str, plain: str, results: dict) -> dict:
    """PEBBLE's and the plain run's steps/s over the time both ran (the plain run finishes first)."""
    (p_start, _), (q_start, q_end) = span(out, pebble, results[pebble]), span(out, plain, results[plain])
    if q_start - p_start > 60:  # not a side-by-side pair (e.g. one of them was reused from another invocation)
        return {}
    reached = step_at(out / pebble, q_end)
    pebble_rate = reached / (q_end - p_start)
    return {"pebble_step_when_plain_finished": round(reached), "pebble_steps_per_second": pebble_rate,
            "plain_steps_per_second": results[plain]["steps_per_second"],
            "ratio": pebble_rate / results[plain]["steps_per_second"]}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--labels", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--name", default="", help="result file name (default: throughput_{env}_{steps}k)")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "throughput"))
    p.add_argument("--plain", choices=["sb3", "sbx"], help=argparse.SUPPRESS)  # one plain arm, in its process
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.plain:
        return plain(args.plain, args.env, args.steps, args.seed, out / f"{args.plain}_sac.json")
    this = [sys.executable, str(Path(__file__).resolve()), "--env", args.env, "--steps", str(args.steps),
            "--seed", str(args.seed), "--out", str(out)]  # fmt: skip
    commands = {
        "sb3_sac": [*this, "--plain", "sb3"],
        "sbx_sac": [*this, "--plain", "sbx"],
        "pebble_torch": [sys.executable, "-m", "pebble.cli", *pebble_args(args, "torch", out / "pebble_torch")],
        "pebble_jax": [sys.executable, "-m", "pebble.cli", *pebble_args(args, "jax", out / "pebble_jax")],
    }

    def run(name: str) -> dict:
        result = out / (f"{name}.json" if name.endswith("_sac") else f"{name}/summary.json")
        if not result.exists():
            with (out / f"{name}.log").open("w") as log:
                subprocess.run(commands[name], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
        return json.loads(result.read_text())

    results: dict[str, dict] = {}
    for pair in PAIRS:
        arms = [a for a in pair if a in args.arms]
        with ThreadPoolExecutor(2) as pool:  # the pair starts together
            results |= dict(zip(arms, pool.map(run, arms)))
    speed = {name: r["steps_per_second"] for name, r in results.items()}
    ratios = {
        f"{a}/{b}": speed[a] / speed[b]
        for a, b in [
            ("pebble_jax", "sb3_sac"),
            ("pebble_jax", "sbx_sac"),
            ("pebble_torch", "sb3_sac"),
            ("sbx_sac", "sb3_sac"),
        ]  # fmt: skip
        if a in speed and b in speed
    }
    result = {
        "env": args.env,
        "steps": args.steps,
        "labels": args.labels,
        "steps_per_second": speed,
        "seconds": {name: r["seconds"] for name, r in results.items()},
        "ratios": ratios,
        "windows": {f"{p}/{q}": window(out, p, q, results) for p, q in PAIRS if p in results and q in results},
        "pebble_extra_seconds_breakdown": {
            name: {k: round(v, 2) for k, v in r["timings"].items() if k != "evaluation"}
            for name, r in results.items()
            if "timings" in r
        },
        "pebble_queries": {name: r["queries_asked"] for name, r in results.items() if "queries_asked" in r},
    }
    name = args.name or f"throughput_{args.env.split('-')[0].lower()}_{args.steps // 1000}k"
    path = write_result(name, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
