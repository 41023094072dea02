"""Diagnostic: the fingerprint of four short fixed-seed runs, to check that a refactoring keeps behaviour.

Each run is a 1400-step Hopper-v5 ``pebble train`` with pre-training and four feedback
sessions; the fingerprint is a hash of every label-store row (clips, answers, sessions, env
steps), of the final reward-model weights and of the final policy weights. Run it at two
commits on the same machine: equal hashes mean the same labels, the same reward model and the
same policy. Float rounding differs between CPUs, so hashes are only comparable on one machine
(the test suite instead checks that two runs with the same seed agree)::

    python bench/diagnostics/fingerprint.py --name fingerprint_<commit> --out runs/fingerprint
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import DIAGNOSTICS_RESULTS, write_result  # noqa: E402

BASE = [
    "--env", "Hopper-v5", "--total-steps", "1400", "--seed-steps", "200", "--unsup-steps", "200",
    "--max-feedback", "30", "--num-interact", "300", "--segment-length", "10", "--eval-freq", "700",
    "--eval-episodes", "2", "--log-interval", "0", "--net-arch", "32", "--reward-hidden", "32",
    "--batch-size", "64", "--threads", "1", "--checkpoint-freq", "500", "--seed", "3",
]  # fmt: skip
RUNS = {
    "disagreement": [],
    "kcenter_entropy_k3": ["--query-scheme", "kcenter_entropy", "--query-size", "3", "--teacher", "noisy"],
    "kcenter_reset_actor": ["--query-scheme", "kcenter", "--reset-actor", "--algo", "td3"],
    "true_reward": ["--true-reward"],
}


def tensor_hash(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprint(run_dir: Path) -> dict[str, str]:
    out = {}
    if (run_dir / "labels.db").exists():
        db = sqlite3.connect(run_dir / "labels.db")
        h = hashlib.sha256()
        columns = "query_id, kind, ranking, session, env_step, obs, actions, true_rewards, mask, clip_meta, next_obs"
        for row in db.execute(f"SELECT {columns} FROM answers ORDER BY query_id"):
            h.update(repr(row).encode())
        db.close()
        out["labels"] = h.hexdigest()[:16]
    if (run_dir / "reward_model.pt").exists():
        out["reward_model"] = tensor_hash(torch.load(run_dir / "reward_model.pt", weights_only=False)["ensemble"])
    with zipfile.ZipFile(run_dir / "policy.zip") as z:
        out["policy"] = tensor_hash(torch.load(io.BytesIO(z.read("policy.pth")), weights_only=False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="fingerprint", help="result file name (default: fingerprint)")
    parser.add_argument("--out", default="runs/fingerprint", help="folder for the four runs")
    args = parser.parse_args()
    result = {}
    for name, extra in RUNS.items():
        run_dir = Path(args.out) / name
        cmd = [sys.executable, "-m", "pebble.cli", "train", *BASE, *extra, "--run-dir", str(run_dir), "--overwrite"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{name}: {proc.stderr.strip().splitlines()[-1]}")
        result[name] = fingerprint(run_dir)
        print(name, result[name], flush=True)
    print(write_result(args.name, {"runs": result}, results=DIAGNOSTICS_RESULTS))


if __name__ == "__main__":
    main()
