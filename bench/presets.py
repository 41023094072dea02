"""Every scripted teacher preset (and K = 3 rankings) on the same short budget.

One ``pebble train`` per variant, ``--jobs`` at a time, one torch thread each; finished runs
are reused. Writes ``bench/results/presets_<env>.json`` with the final evaluation true return,
labels used, skips and "equal" answers of each.

    python bench/presets.py --env Hopper-v5 --steps 10000 --labels 100 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, write_result  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

VARIANTS = {
    "oracle": ["--teacher", "oracle"],
    "noisy": ["--teacher", "noisy"],
    "myopic": ["--teacher", "myopic"],
    "mistake": ["--teacher", "mistake"],
    "skip": ["--teacher", "skip"],
    "equal": ["--teacher", "equal"],
    "oracle_k3": ["--teacher", "oracle", "--query-size", "3"],
}


def last(run_dir: Path, tag: str) -> float | None:
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return acc.Scalars(tag)[-1].value if tag in acc.Tags()["scalars"] else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "presets"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # A short schedule: 1000 seed + 2000 pre-training steps, then a session every 1000 steps.
    common = ["--env", args.env, "--total-steps", str(args.steps), "--seed", str(args.seed), "--max-feedback",
              str(args.labels), "--seed-steps", "1000", "--unsup-steps", "2000", "--num-interact", "1000",
              "--threads", "1", "--log-interval", "5000", "--eval-freq", "0", "--checkpoint-freq", "0",
              "--overwrite"]  # fmt: skip

    def run(name: str) -> dict:
        run_dir = out / f"{args.env}__{name}__{args.seed}"
        if not (run_dir / "summary.json").exists():
            with (out / f"{name}.log").open("w") as log:
                cmd = [sys.executable, "-m", "pebble.cli", "train", *common, *VARIANTS[name], "--run-dir", str(run_dir)]
                subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
        summary = json.loads((run_dir / "summary.json").read_text())
        return {
            "variant": name,
            "flags": VARIANTS[name],
            "final_eval_return": summary["final_eval_return"],
            "queries_asked": summary["queries_asked"],
            "labels": summary["labels"],
            "skipped": last(run_dir, "feedback/skipped"),
            "equal": last(run_dir, "feedback/equal"),
            "reward_correlation": last(run_dir, "reward_model/correlation"),
        }

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run, VARIANTS))
    name = f"presets_{args.env.split('-')[0].lower()}_{args.steps // 1000}k"
    path = write_result(name, {"env": args.env, "steps": args.steps, "max_feedback": args.labels, "runs": rows})
    for row in rows:
        print(f"{row['variant']:>10}: final eval true return {row['final_eval_return']:8.1f}, "
              f"labels {row['labels']}, skipped {row['skipped']}, equal {row['equal']}")  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
