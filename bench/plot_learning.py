"""Plot evaluation learning curves of a sweep's runs (``{env}__{variant}__{seed}`` folders).

    python bench/plot_learning.py --env HalfCheetah-v5 --runs runs/bench_no_unsup_ns \
        --out bench/results/learning_halfcheetah_100k_no_pretraining.png \
        [--before runs/bench_next_state --before-label "9000 pre-training steps"]

Left: evaluation true return, one line per run (colour = variant), the mean over seeds in
bold. Right: per-step correlation of the learned with the true reward after each feedback
session (mean over seeds). ``--before DIR`` adds the PEBBLE runs of another folder dashed
(e.g. runs made with ``--extra --unsup-steps 9000``). Needs matplotlib
(``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import scalar_curve  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def curve(run_dir: Path, tag: str = "eval/true_return") -> tuple[np.ndarray, np.ndarray]:
    steps, values = scalar_curve(run_dir, tag)
    return np.array(steps), np.array(values)


def find_runs(folder: Path, env: str) -> dict[str, list[Path]]:
    """Finished runs of ``env`` in ``folder`` by variant (sac_true, pebble_1000, ...)."""
    pattern = re.compile(rf"^{re.escape(env)}__(\w+?)__(\d+)$")
    groups: dict[str, list[Path]] = defaultdict(list)
    for run_dir in sorted(folder.iterdir()):
        match = pattern.match(run_dir.name)
        if match and (run_dir / "summary.json").exists():
            groups[match.group(1)].append(run_dir)
    return groups


def plot_group(ax, curves: list[tuple[np.ndarray, np.ndarray]], colour: str, label: str, style: str = "-") -> None:
    curves = [c for c in curves if len(c[0])]
    if not curves:
        return
    for steps, values in curves:
        ax.plot(steps, values, color=colour, alpha=0.3, linewidth=1, linestyle=style)
    length = min(len(s) for s, _ in curves)
    mean = np.mean([v[:length] for _, v in curves], axis=0)
    label = f"{label} (n={len(curves)})"
    ax.plot(curves[0][0][:length], mean, color=colour, linewidth=2.5, linestyle=style, label=label)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench"))
    p.add_argument("--out", required=True)
    p.add_argument("--before", default="", help="another runs folder, its PEBBLE runs drawn dashed")
    p.add_argument("--before-label", default="raw inputs", help="what sets the --before runs apart, for the legend")
    args = p.parse_args()
    groups = find_runs(Path(args.runs), args.env)
    before = find_runs(Path(args.before), args.env) if args.before else {}
    fig, (ax, corr_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = {"sac_true": "tab:gray", "pebble_1000": "tab:blue", "pebble_500": "tab:orange"}
    for variant, runs in sorted(groups.items()):
        colour = colours.get(variant, "tab:green")
        label = "SAC, true reward" if variant == "sac_true" else variant.replace("pebble_", "PEBBLE, ") + " labels"
        plot_group(ax, [curve(r) for r in runs], colour, label)
        plot_group(corr_ax, [curve(r, "reward_model/correlation") for r in runs], colour, label)
    for variant, runs in sorted(before.items()):
        if variant == "sac_true":
            continue
        colour = colours.get(variant, "tab:green")
        label = variant.replace("pebble_", "PEBBLE, ") + f" labels, {args.before_label}"
        plot_group(ax, [curve(r) for r in runs], colour, label, "--")
        plot_group(corr_ax, [curve(r, "reward_model/correlation") for r in runs], colour, label, "--")
    corr_ax.set_xlabel("environment steps")
    corr_ax.set_ylabel("corr(learned, true reward), last 10k steps")
    corr_ax.set_title("reward model after each feedback session")
    corr_ax.legend(fontsize=8)
    corr_ax.grid(alpha=0.3)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation true return")
    ax.set_title(f"{args.env}: deterministic policy, 5 episodes per point")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
