"""Paired-seed comparison of two arms from ``learning.py`` result files.

An arm is ``FILE:VARIANT`` (a ``bench/results/learning_*.json`` and a variant name in it,
e.g. ``pebble_1000`` or ``sac_true``). Runs are paired by seed; for the final evaluation
return and for the mean over evaluations it reports each arm's mean, the mean paired
difference (B - A), its standard error (sample standard deviation of the differences over
sqrt(n)) and t = difference / SE. Writes ``bench/results/paired_<name>.json``.

    python bench/paired.py --name jax_vs_torch_halfcheetah_100k \\
        --a bench/results/learning_halfcheetah_100k_no_pretraining.json:pebble_1000 \\
        --b bench/results/learning_halfcheetah_100k_jax.json:pebble_1000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def arm(spec: str) -> dict[int, dict[str, Any]]:
    """The runs of ``FILE:VARIANT`` by seed."""
    path, _, variant = spec.rpartition(":")
    data = json.loads(Path(path).read_text())
    labels = 0 if variant == "sac_true" else int(variant.rsplit("_", 1)[1])
    return {r["seed"]: r for r in data["runs"] if r["labels"] == labels}


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    diff = np.asarray(b) - np.asarray(a)
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    mean = float(diff.mean())
    return {"a_mean": float(np.mean(a)), "b_mean": float(np.mean(b)), "difference": mean, "se": se,
            "t": mean / se if se > 0 else float("nan")}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--a", required=True, help="FILE:VARIANT of arm A")
    p.add_argument("--b", required=True, help="FILE:VARIANT of arm B")
    args = p.parse_args()
    a, b = arm(args.a), arm(args.b)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise SystemExit("bench/paired.py: the two arms share no seed")
    finals = [[r[s]["final_eval_return"] for s in seeds] for r in (a, b)]
    means = [[float(np.mean(r[s]["eval_curve"]["returns"])) for s in seeds] for r in (a, b)]
    result = {
        "a": args.a,
        "b": args.b,
        "seeds": seeds,
        "a_commits": sorted({a[s]["commit"] for s in seeds}),
        "b_commits": sorted({b[s]["commit"] for s in seeds}),
        "final_return": {**paired(*finals), "a": finals[0], "b": finals[1]},
        "mean_over_evaluations": {**paired(*means), "a": means[0], "b": means[1]},
        "seconds": paired([a[s]["seconds"] for s in seeds], [b[s]["seconds"] for s in seeds]),
    }
    path = write_result(f"paired_{args.name}", result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
