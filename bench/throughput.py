"""Steps per second of PEBBLE against plain SB3 SAC with the same SAC settings.

Both runs go through ``pebble train`` (``--true-reward`` for plain SAC), in the same
invocation, side by side with one torch thread each (one per core on a 2-core machine),
so they see the same machine conditions. PEBBLE's extra time is broken down from its
``summary.json`` (entropy pre-training, query selection, teacher, reward training, relabelling).

    python bench/throughput.py --env HalfCheetah-v5 --steps 100000 --labels 1000
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--labels", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "throughput"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ["--env", args.env, "--total-steps", str(args.steps), "--seed", str(args.seed), "--threads", "1",
              "--log-interval", "5000", "--eval-freq", "0", "--checkpoint-freq", "0", "--overwrite"]  # fmt: skip
    variants = {
        "sac": [*common, "--true-reward", "--run-dir", str(out / "sac")],
        "pebble": [*common, "--max-feedback", str(args.labels), "--run-dir", str(out / "pebble")],
    }

    def run(name: str) -> dict:
        with (out / f"{name}.log").open("w") as log:
            cmd = [sys.executable, "-m", "pebble.cli", "train", *variants[name]]
            subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
        return json.loads((out / name / "summary.json").read_text())

    with ThreadPoolExecutor(2) as pool:
        sac, pebble = pool.map(run, ["sac", "pebble"])
    overhead = {k: round(v, 2) for k, v in pebble["timings"].items() if k != "evaluation"}
    result = {
        "env": args.env,
        "steps": args.steps,
        "labels": args.labels,
        "sac_steps_per_second": sac["steps_per_second"],
        "pebble_steps_per_second": pebble["steps_per_second"],
        "ratio": pebble["steps_per_second"] / sac["steps_per_second"],
        "sac_seconds": sac["seconds"],
        "pebble_seconds": pebble["seconds"],
        "pebble_extra_seconds_breakdown": overhead,
        "pebble_queries": pebble["queries_asked"],
    }
    name = f"throughput_{args.env.split('-')[0].lower()}_{args.steps // 1000}k"
    path = write_result(name, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
