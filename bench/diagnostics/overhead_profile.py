"""Diagnostic: where PEBBLE's time goes beyond the plain library's SAC, function by function.

``bench/throughput.py`` times whole runs and breaks PEBBLE's extra time into the parts a run
measures itself (reward training, relabelling, query selection, teacher); the rest of the gap
is per-step work that no timer covers. This script profiles the two arms of a throughput pair
with cProfile, each in a fresh process with one thread, over the same steps and seed: the
plain SAC of ``throughput.py`` (``sb3`` or ``sbx``) and ``pebble train`` with the same
arguments as ``throughput.py``'s PEBBLE arm. The profiler's clock is the process's CPU time, so
the figures hold even when another process shares the core (the wall time then grows, the CPU
time does not). cProfile adds a cost per Python call to both arms, so the gap it reports is an
upper bound on the unprofiled gap; the parts' shares are the point.

It reports, for each arm, the CPU seconds of landmark calls (environment steps, action
selection, RL updates, storing transitions, replay sampling, callbacks, PEBBLE's own parts) and
the functions whose own time (``tottime``) differs most between the arms::

    python bench/diagnostics/overhead_profile.py --env HalfCheetah-v5 --steps 6000 --backend torch
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py and throughput.py
from common import DIAGNOSTICS_RESULTS, ROOT, write_result  # noqa: E402
from throughput import pebble_args, plain_model  # noqa: E402

#: (label, file path ending, function name): calls whose cumulative CPU time is reported
LANDMARKS = (
    ("whole learn() call", "off_policy_algorithm.py", "learn"),
    ("environment steps", "base_vec_env.py", "step"),
    ("action selection", "off_policy_algorithm.py", "_sample_action"),
    ("RL updates (train)", "sac/sac.py", "train"),
    ("replay sampling", "common/buffers.py", "sample"),
    ("storing transitions", "off_policy_algorithm.py", "_store_transition"),
    ("callbacks (on_step)", "common/callbacks.py", "on_step"),
    ("callbacks (on_rollout_start)", "common/callbacks.py", "on_rollout_start"),
    ("pebble: feedback sessions", "pebble/loop.py", "session"),
    ("pebble: reward training", "pebble/reward_learning.py", "fit"),
    ("pebble: relabelling", "pebble/buffer.py", "relabel"),
    ("pebble: scoring new rows", "pebble/buffer.py", "score_pending"),
    ("pebble: buffer add", "pebble/buffer.py", "add"),
    ("pebble: buffer _get_samples", "pebble/buffer.py", "_get_samples"),
    ("pebble: progress lines", "pebble/callbacks.py", "fire"),
    ("pebble: episode tracker", "pebble/callbacks.py", "_on_step"),
    ("pebble: loop _on_step", "pebble/loop.py", "_on_step"),
)


def child(args: argparse.Namespace) -> None:
    """Profile one arm in this process and dump the stats to ``args.child_out``."""
    profile = cProfile.Profile(time.process_time)
    if args.child == "plain":
        model = plain_model("sbx" if args.backend == "jax" else "sb3", args.env, args.seed)
        profile.runcall(model.learn, args.steps)
    else:
        from pebble.cli import main

        run_dir = Path(args.out) / f"pebble_{args.backend}"
        code = profile.runcall(main, pebble_args(args, args.backend, run_dir))
        if code:
            raise SystemExit(f"pebble train exited with {code}")
    profile.dump_stats(args.child_out)


def landmarks(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative CPU seconds of each landmark: the largest of the functions that match it, since
    those call one another (SB3's ``ReplayBuffer.sample`` calls ``BaseBuffer.sample``)."""
    table = stats.stats  # type: ignore[attr-defined]
    out = {}
    for label, suffix, name in LANDMARKS:
        matches = [v[3] for k, v in table.items() if k[0].endswith(suffix) and k[2] == name]
        out[label] = round(max(matches, default=0.0), 2)
    return out


def own_times(stats: pstats.Stats) -> dict[str, tuple[float, int]]:
    """Own CPU seconds and call count of every function, keyed by 'path-tail:function'."""
    out: dict[str, tuple[float, int]] = {}
    for (path, _, name), (_, calls, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        key = f"{'/'.join(Path(path).parts[-3:])}:{name}"
        seconds, count = out.get(key, (0.0, 0))
        out[key] = (seconds + own, count + calls)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=6000, help="env steps of each arm (default: 6000, two sessions)")
    p.add_argument("--labels", type=int, default=1000, help="PEBBLE's label budget (default schedule)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["torch", "jax"], default="torch")
    p.add_argument("--top", type=int, default=25, help="functions listed by the difference of their own time")
    p.add_argument("--name", default="", help="result name (default: overhead_profile_{env}_{backend})")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "overhead_profile"))
    p.add_argument("--reuse", action="store_true", help="analyse the profiles already under --out, if there")
    p.add_argument("--child", choices=["plain", "pebble"], help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stats, seconds = {}, {}
    for arm in ("plain", "pebble"):
        dump = out / f"{arm}_{args.backend}.prof"
        command = [sys.executable, __file__, "--child", arm, "--child-out", str(dump), "--env", args.env,
                   "--steps", str(args.steps), "--labels", str(args.labels), "--seed", str(args.seed),
                   "--backend", args.backend, "--out", str(out)]  # fmt: skip
        if args.reuse and dump.exists():
            print(f"[overhead] reusing {dump}", flush=True)
        else:
            print(f"[overhead] profiling {arm} ({args.backend}), {args.steps} steps ...", flush=True)
            started = time.perf_counter()
            with (out / f"{arm}_{args.backend}.log").open("w") as log:
                subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
            seconds[arm] = round(time.perf_counter() - started, 1)
        stats[arm] = pstats.Stats(str(dump))
    marks = {arm: landmarks(s) for arm, s in stats.items()}
    own = {arm: own_times(s) for arm, s in stats.items()}
    rows = []
    for key in set(own["plain"]) | set(own["pebble"]):
        (pebble_s, pebble_calls), (plain_s, plain_calls) = (own[arm].get(key, (0.0, 0)) for arm in ("pebble", "plain"))
        rows.append({"function": key, "pebble_s": round(pebble_s, 2), "plain_s": round(plain_s, 2),
                     "difference_s": round(pebble_s - plain_s, 2), "pebble_calls": pebble_calls,
                     "plain_calls": plain_calls})  # fmt: skip
    top = sorted(rows, key=lambda row: row["difference_s"], reverse=True)[: args.top]
    result = {
        "env": args.env,
        "steps": args.steps,
        "labels": args.labels,
        "backend": args.backend,
        "clock": "process CPU time (cProfile with time.process_time), one thread per arm",
        "wall_seconds_with_profiler": seconds,
        "cpu_seconds_total": {arm: round(s.total_tt, 2) for arm, s in stats.items()},  # type: ignore[attr-defined]
        "landmarks_cumulative_cpu_seconds": marks,
        "largest_own_time_differences": top,
    }
    name = args.name or f"overhead_profile_{args.env.split('-')[0].lower()}_{args.backend}"
    path = write_result(name, result, results=DIAGNOSTICS_RESULTS)
    print(f"{'landmark':<34} {'plain':>9} {'pebble':>9}")
    for label in marks["plain"]:
        print(f"{label:<34} {marks['plain'][label]:>9.2f} {marks['pebble'][label]:>9.2f}")
    print(f"\n{'function (own time)':<70} {'plain':>8} {'pebble':>8} {'diff':>8}")
    for row in top:
        print(f"{row['function'][:70]:<70} {row['plain_s']:>8.2f} {row['pebble_s']:>8.2f} {row['difference_s']:>8.2f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
