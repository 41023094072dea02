"""Final and mean evaluation success rate (``eval/success_rate``, Meta-World) of finished runs.

    python bench/diagnostics/success_rates.py runs/sweeps/paper_tasks_small/metaworld-* \
        --out bench/results/paper_tasks_small/success_rates.json

``pebble report`` summarises returns; this reads the success-rate curve each Meta-World run
logs beside its return, and prints one line per run and the mean per group (the folder name
without its seed).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from pebble.run_results import eval_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    runs, groups = {}, {}
    for run in sorted(args.runs):
        steps, rates = eval_curve(run, tag="eval/success_rate")
        if not rates:
            print(f"{run}: no eval/success_rate")
            continue
        runs[run.name] = {"final": rates[-1], "mean_over_evaluations": statistics.fmean(rates), "steps": steps[-1]}
        groups.setdefault(run.name.rsplit("__", 1)[0], []).append(runs[run.name])
        print(f"{run.name}: final {rates[-1]:.2f}, mean over evaluations {statistics.fmean(rates):.2f}")
    summary = {
        name: {key: statistics.fmean(r[key] for r in members) for key in ("final", "mean_over_evaluations")}
        | {"seeds": len(members)}
        for name, members in groups.items()
    }
    for name, figures in summary.items():
        print(f"{name}: final {figures['final']:.2f}, mean over evaluations {figures['mean_over_evaluations']:.2f} "
              f"({figures['seeds']} seeds)")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"runs": runs, "groups": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
