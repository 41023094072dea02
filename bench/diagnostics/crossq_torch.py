"""Diagnostic: why the default learner (CrossQ) is slower on torch than SAC is.

PEBBLE on CrossQ runs at about 41 steps/s on the torch backend here, against 66 on jax
(``bench/sweeps/default_learner_torch.toml``). This script separates the library from PEBBLE:
it trains the plain libraries' learners, SB3's SAC and sb3-contrib's CrossQ, with PEBBLE's
settings (each algorithm's published learning rate, 256 x 256 networks, one thread), each in a
fresh process, one after the other or side by side (``throughput.py``'s plain arms, with the
algorithm chosen), and times ``--steps`` steps after PEBBLE's 1000 random warm-up steps and 500
updates (the first updates include one-off costs). It then profiles ``--profile-steps``
more CrossQ steps with cProfile and lists the functions with the largest own time, and times
the batch statistics that sb3-contrib's batch renormalisation computes at every forward pass
(``Tensor.var`` over the batch) against a two-pass mean of squared deviations, on the shapes
CrossQ's networks see::

    python bench/diagnostics/crossq_torch.py --env HalfCheetah-v5
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py and throughput.py
from common import DIAGNOSTICS_RESULTS, write_result  # noqa: E402
from throughput import plain_model  # noqa: E402


def child(args: argparse.Namespace) -> None:
    """Time (and for CrossQ, profile) one learner in this process; print its figures as JSON."""
    model = plain_model("sb3", args.env, args.seed, args.child)
    model.learn(model.learning_starts + 500)  # past the random warm-up, so that every timed step updates
    start = time.perf_counter()
    model.learn(args.steps, reset_num_timesteps=False)
    result: dict[str, Any] = {"steps_per_second": args.steps / (time.perf_counter() - start)}
    if args.child == "crossq" and args.profile_steps:
        profile = cProfile.Profile(time.process_time)
        profile.runcall(model.learn, args.profile_steps, reset_num_timesteps=False)
        stats = pstats.Stats(profile)
        total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
        rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:12]  # type: ignore[attr-defined]
        result["profile"] = {
            "cpu_seconds": total,
            "top_own_time": [
                {"function": f"{Path(file).name}:{line}({name})", "calls": row[1], "own_seconds": row[2]}
                for (file, line, name), row in rows
            ],
        }
    print(json.dumps(result))


def batch_statistics_timings(repeats: int = 2000) -> list[dict[str, Any]]:
    """Microseconds per call of ``x.var(dim=0)`` (what batch renormalisation calls) and of a
    two-pass ``((x - x.mean(0)) ** 2).sum(0) / (n - 1)``, one thread, on CrossQ's shapes: the
    critic sees a batch of 2 x 256 rows (current and next states together), the actor 256."""
    import torch

    torch.set_num_threads(1)
    rows = []
    for shape in ((512, 23), (512, 256), (256, 17), (256, 256)):
        x = torch.randn(*shape)
        calls = {
            "var": lambda x=x: x.var(dim=0),
            "two_pass": lambda x=x: ((x - x.mean(dim=0)) ** 2).sum(dim=0) / (x.shape[0] - 1),
        }
        row: dict[str, Any] = {"shape": list(shape)}
        for name, call in calls.items():
            for _ in range(50):
                call()
            start = time.perf_counter()
            for _ in range(repeats):
                call()
            row[f"{name}_us"] = (time.perf_counter() - start) / repeats * 1e6
        row["max_abs_difference"] = float((calls["var"]() - calls["two_pass"]()).abs().max())
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3000, help="timed steps, every one with an update")
    parser.add_argument("--profile-steps", type=int, default=1000, help="CrossQ steps under cProfile (0: none)")
    parser.add_argument("--side-by-side", action="store_true", help="run the two learners at once, one per core")
    parser.add_argument("--name", default=None, help="result file name (default: crossq_torch_{env})")
    parser.add_argument("--child", choices=("sac", "crossq"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    base = [sys.executable, __file__, "--env", args.env, "--seed", str(args.seed), "--steps", str(args.steps)]
    base += ["--profile-steps", str(args.profile_steps)]
    commands = {algo: [*base, "--child", algo] for algo in ("sac", "crossq")}
    learners: dict[str, Any] = {}
    if args.side_by_side:
        running = {algo: subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for algo, cmd in commands.items()}
        outputs = {algo: process.communicate()[0] for algo, process in running.items()}
    else:
        outputs = {
            algo: subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
            for algo, cmd in commands.items()
        }
    for algo, output in outputs.items():
        learners[algo] = json.loads(output.strip().splitlines()[-1])
        print(f"[crossq_torch] {algo}: {learners[algo]['steps_per_second']:.1f} steps/s", flush=True)
    statistics = batch_statistics_timings()
    for row in statistics:
        print(f"[crossq_torch] var over {row['shape']}: {row['var_us']:.1f} us, two-pass {row['two_pass_us']:.1f} us")
    data = {
        "env": args.env,
        "steps": args.steps,
        "side_by_side": args.side_by_side,
        "learners": learners,
        "crossq_over_sac": learners["crossq"]["steps_per_second"] / learners["sac"]["steps_per_second"],
        "batch_statistics": statistics,
    }
    path = write_result(args.name or f"crossq_torch_{args.env.split('-')[0].lower()}", data, DIAGNOSTICS_RESULTS)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
