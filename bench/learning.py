"""Final evaluation true return of PEBBLE against the plain algorithm on the true reward.

Each (variant, seed) is one ``pebble train`` run in a subprocess with one torch thread;
``--jobs 2`` runs two at a time (one per core here). Finished runs are reused, so an
interrupted benchmark resumes where it stopped: finished runs are skipped and a run cut off
midway continues from its latest checkpoint (``pebble resume``). Writes ``bench/results/learning_<name>.json``.

    python bench/learning.py --name halfcheetah_100k --env HalfCheetah-v5 --steps 100000 \
        --labels 0 1000 --seeds 0 --jobs 2      # 0 labels = SAC on the true reward

With ``--perfect-reward`` the PEBBLE runs go through ``bench/diagnostics/oracle_reward.py`` instead: PEBBLE's
pre-training, then the true reward in place of the learned one (a diagnostic, runs named
``pebble_perfect_reward``; give ``--labels 0 1`` to have SAC beside them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, START_COMMIT, scalar_curve, write_result  # noqa: E402


def variant_name(labels: int, perfect: bool) -> str:
    """How runs and summary rows are named: sac_true, pebble_<labels> or pebble_perfect_reward."""
    if labels == 0:
        return "sac_true"
    return "pebble_perfect_reward" if perfect else f"pebble_{labels}"


def run_one(env: str, steps: int, labels: int, seed: int, out: Path, extra: list[str], perfect: bool) -> dict:
    perfect = perfect and labels > 0
    name = f"{env}__{variant_name(labels, perfect)}__{seed}"
    run_dir = out / name
    summary = run_dir / "summary.json"
    # the perfect-reward diagnostic is pebble with its feedback sessions switched off
    pebble = [str(ROOT / "bench" / "diagnostics" / "oracle_reward.py")] if perfect else ["-m", "pebble.cli"]
    if not summary.exists():
        cmd = [
            sys.executable,
            *pebble,
            "train",
            "--env",
            env,
            "--total-steps",
            str(steps),
            "--seed",
            str(seed),
            "--run-dir",
            str(run_dir),
            "--overwrite",
            "--threads",
            "1",
            "--log-interval",
            "5000",
            *extra,
        ]
        cmd += ["--true-reward"] if labels == 0 else ["--max-feedback", str(labels)]
        log = out / f"{name}.log"
        if (run_dir / "checkpoints" / "LATEST").exists():  # interrupted: continue from its checkpoint
            cmd = [sys.executable, *pebble, "resume", str(run_dir)]
        else:
            (out / f"{name}.commit").write_text(START_COMMIT + "\n")  # the code this run was produced by
        with log.open("a") as fh:
            subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, check=True)
    data = json.loads(summary.read_text())
    commit_file = out / f"{name}.commit"
    commit = commit_file.read_text().strip() if commit_file.exists() else "unknown"
    return {
        "env": env,
        "labels": labels,
        "seed": seed,
        "commit": commit,
        **{k: data[k] for k in ("final_eval_return", "steps_per_second", "seconds", "timings")},
        "eval_curve": dict(zip(("steps", "returns"), scalar_curve(run_dir))),
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--labels", type=int, nargs="+", default=[0, 1000], help="0 = true-reward baseline")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench"))
    p.add_argument(
        "--perfect-reward",
        action="store_true",
        help="PEBBLE runs learn from the true reward after pre-training (bench/diagnostics/oracle_reward.py)",
    )
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more pebble train flags")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = [(lab, s) for lab in args.labels for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(
            pool.map(lambda g: run_one(args.env, args.steps, g[0], g[1], out, args.extra, args.perfect_reward), grid)
        )
    table: dict[str, dict[str, Any]] = {}
    half = args.steps // 2
    for lab in args.labels:
        mine = [r for r in runs if r["labels"] == lab]
        curves = [dict(zip(r["eval_curve"]["steps"], r["eval_curve"]["returns"])) for r in mine]
        table[variant_name(lab, args.perfect_reward)] = {
            **spread([r["final_eval_return"] for r in mine]),
            # learning speed, less noisy than the last evaluation alone
            "at_half_steps": spread([c[half] for c in curves if half in c]),
            "mean_over_evaluations": spread([float(np.mean(list(c.values()))) for c in curves]),
        }
    base = table.get("sac_true")
    if base:
        for row in table.values():
            row["ratio_to_true_reward_sac"] = row["mean"] / base["mean"]
            row["ratio_mean_over_evaluations"] = (
                row["mean_over_evaluations"]["mean"] / base["mean_over_evaluations"]["mean"]
            )
    path = write_result(f"learning_{args.name}", {"env": args.env, "steps": args.steps, "summary": table, "runs": runs})
    print(json.dumps(table, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
