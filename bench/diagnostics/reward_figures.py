"""Per-run reward-model figures of finished PEBBLE runs, from their TensorBoard logs.

For each run folder: held-out accuracy on each session's new labels (and its mean from the
fifth session on), the per-step correlation of learned and true reward over recent buffer
rows (``reward_model/correlation``; its minimum and mean from ``--from-step`` on), the
candidate of ``--reward-action-inputs auto`` and the number of features
``--reward-feature-screening`` kept, per session, and the final return.

    python bench/diagnostics/reward_figures.py --name reward_figures_ant_100k_jax \
        runs/sweeps/ant_100k_jax/Ant-v5__pebble_1000_auto__*
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import DIAGNOSTICS_RESULTS, ROOT, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))
from pebble.run_results import eval_curve, load_run  # noqa: E402


def figures(run: Path, from_step: int) -> dict:
    _, heldout = eval_curve(run, "reward_model/heldout_accuracy")
    steps, corr = eval_curve(run, "reward_model/correlation")
    _, quadratic = eval_curve(run, "reward_model/quadratic_action_inputs")
    _, screened = eval_curve(run, "reward_model/screened_features")
    late = [c for s, c in zip(steps, corr) if s >= from_step and np.isfinite(c)]
    record = load_run(run)
    return {
        "run": str(run),
        "final_return": record.final_return,
        "heldout_accuracy": heldout,
        "heldout_accuracy_from_session_5": float(np.mean(heldout[4:])) if len(heldout) > 4 else None,
        "correlation_min_from_step": float(min(late)) if late else None,
        "correlation_mean_from_step": float(np.mean(late)) if late else None,
        "quadratic_action_inputs": quadratic,
        "screened_features": screened,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--from-step", type=int, default=20_000, help="correlation figures from this step on")
    p.add_argument("--name", required=True, help="result name")
    args = p.parse_args()
    rows = [figures(run, args.from_step) for run in args.runs]
    for r in rows:
        acc, lo, mean = (
            r["heldout_accuracy_from_session_5"],
            r["correlation_min_from_step"],
            r["correlation_mean_from_step"],
        )
        print(
            f"{Path(r['run']).name}: final {r['final_return']}, held-out acc from session 5 "
            f"{acc if acc is None else round(acc, 3)}, correlation from step {args.from_step}: min "
            f"{lo if lo is None else round(lo, 3)}, mean {mean if mean is None else round(mean, 3)}"
        )
    path = write_result(args.name, {"from_step": args.from_step, "runs": rows}, DIAGNOSTICS_RESULTS)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
