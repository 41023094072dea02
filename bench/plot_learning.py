"""Plot evaluation learning curves of the runs made by ``bench/learning.py``.

    python bench/plot_learning.py --env HalfCheetah-v5 --out bench/results/learning_halfcheetah_100k.png

One line per run (colour = variant), the mean over seeds in bold. Needs matplotlib
(``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    by_step = {e.step: e.value for e in acc.Scalars("eval/true_return")}  # the final evaluation wins
    steps = np.array(sorted(by_step))
    return steps, np.array([by_step[s] for s in steps])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench"))
    p.add_argument("--out", required=True)
    args = p.parse_args()
    pattern = re.compile(rf"^{re.escape(args.env)}__(\w+?)__(\d+)$")
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for run_dir in sorted(Path(args.runs).iterdir()):
        match = pattern.match(run_dir.name)
        if match and (run_dir / "summary.json").exists():
            groups[match.group(1)].append(curve(run_dir))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {"sac_true": "tab:gray", "pebble_1000": "tab:blue", "pebble_500": "tab:orange"}
    for variant, curves in sorted(groups.items()):
        colour = colours.get(variant, "tab:green")
        for steps, values in curves:
            ax.plot(steps, values, color=colour, alpha=0.35, linewidth=1)
        length = min(len(s) for s, _ in curves)
        mean = np.mean([v[:length] for _, v in curves], axis=0)
        label = "SAC, true reward" if variant == "sac_true" else variant.replace("pebble_", "PEBBLE, ") + " labels"
        ax.plot(curves[0][0][:length], mean, color=colour, linewidth=2.5, label=f"{label} (n={len(curves)})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation true return")
    ax.set_title(f"{args.env}: deterministic policy, 5 episodes per point")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
