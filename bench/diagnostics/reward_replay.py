"""Replay a finished run's feedback sessions offline with other reward-model settings.

The labels (``labels.db``, in the order and sessions they were given) are fed session by
session to a fresh reward model trained the way the loop trains it; after each session the
per-step correlation of the learned with the true reward is measured on the run's final
replay buffer: the 10k rows stored before the session (what relabelling rewrote) and the
5k rows after it (what the policy met next). Queries stay those the run selected, so this
compares how well each setting learns from the same labels, not the query selection.
The ``next_state`` variant tries a reward r(s, a, s') on the same labels (clips lose their last
step, whose next state the label store does not hold).

    python bench/diagnostics/reward_replay.py --run runs/bench/HalfCheetah-v5__pebble_1000__2 \
        --variant raw normalized wide_normalized
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import DIAGNOSTICS_RESULTS, ROOT, final_buffer, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))
from pebble.config import RewardModelConfig  # noqa: E402
from pebble.label_store import LabelStore  # noqa: E402
from pebble.labels import PreferenceDataset  # noqa: E402
from pebble.reward_learning import RewardTrainer  # noqa: E402
from pebble.reward_model import RewardModel  # noqa: E402
from teachers.contract import Query  # noqa: E402

#: name -> settings of the ``reward`` config section that differ from the defaults (with r(s, a))
VARIANTS: dict[str, dict[str, Any]] = {
    "raw": {"normalize_inputs": False, "reward_output": "tanh"},
    "normalized": {"reward_output": "tanh"},
    "wide_normalized": {"reward_hidden": [256, 256, 256], "reward_output": "tanh"},
    "raw_no_early_stop": {"normalize_inputs": False, "reward_output": "tanh", "accuracy_stop": 1.01},
    "normalized_linear": {},
    "normalized_no_early_stop": {"reward_output": "tanh", "accuracy_stop": 1.01},
    "linear_no_early_stop": {"accuracy_stop": 1.01},
    "weight_decay_1e-3": {"reward_weight_decay": 1e-3},
    "weight_decay_1e-2": {"reward_weight_decay": 1e-2},
    "weight_decay_1e-1": {"reward_weight_decay": 1e-1},
    "narrow_64x2": {"reward_hidden": [64, 64]},
    "narrow_32": {"reward_hidden": [32]},
    "linear_reward": {"reward_hidden": []},
    "next_state": {},
}
#: variants whose networks see the next state too, r(s, a, s'): an experiment only, not a
#: library option. Each clip loses its last step (its next state is not stored in the label).
NEXT_STATE = {"next_state"}


def with_next_state(query: Query) -> Query:
    """The query with each step's observation replaced by concat(s_t, s_t+1), H-1 steps."""
    clips = tuple(
        dataclasses.replace(
            c,
            observations=np.concatenate([c.observations[:-1], c.observations[1:]], axis=1),
            actions=c.actions[:-1],
            true_rewards=c.true_rewards[:-1],
            mask=c.mask[:-1] & c.mask[1:],
            render_states=None,
        )
        for c in query.clips
    )
    return dataclasses.replace(query, clips=clips)


def correlation(model: RewardModel, obs: np.ndarray, act: np.ndarray, true: np.ndarray) -> float:
    if len(true) < 2:
        return float("nan")
    return float(np.corrcoef(model.reward(obs, act), true)[0, 1])


def replay(run: Path, variant: str, seed: int) -> dict:
    # today's defaults but r(s, a): the labels of runs made before next states were stored lack them
    # plain inputs unless a variant says otherwise: its variants predate screening as the default (0.8.0)
    base = dataclasses.replace(RewardModelConfig(), reward_next_state=False, reward_feature_screening=0.0)
    settings = dataclasses.replace(base, **VARIANTS[variant])
    store = LabelStore(run / "labels.db", read_only=True)
    meta = store.meta
    rows = [r for r in store if r.answer.kind != "skip"]
    store.close()
    buffer, obs, act, true = final_buffer(run)
    steps = buffer.env_steps[: buffer.size()].reshape(-1)
    next_state = variant in NEXT_STATE
    if next_state:
        obs = np.concatenate([obs, buffer.next_observations[: buffer.size()].reshape(len(obs), -1)], axis=1)
    length = int(meta["segment_length"]) - (1 if next_state else 0)  # type: ignore[call-overload]

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = RewardModel(obs.shape[1], int(meta["act_dim"]), settings)  # type: ignore[call-overload]
    trainer = RewardTrainer(model)
    data = PreferenceDataset(model.obs_dim, model.act_dim, int(meta["query_size"]), length)  # type: ignore[call-overload]
    sessions = []
    tic = time.perf_counter()
    for session in sorted({r.session for r in rows}):
        given = [r for r in rows if r.session == session]
        step = given[0].env_step
        if model.needs_input_normalization:  # as the loop does: every row stored at the first session
            model.fit_input_normalization(obs[steps <= step], act[steps <= step])
        for r in given:
            data.add(with_next_state(r.query) if next_state else r.query, r.answer)
        stats = trainer.train(data, rng)
        before = (steps > step - 10_000) & (steps <= step)
        after = (steps > step) & (steps <= step + 5_000)
        sessions.append(
            {
                "session": session,
                "env_step": step,
                "labels": len(data),
                "epochs": stats.epochs,
                "train_accuracy": stats.train_accuracy,
                "correlation_before": correlation(model, obs[before], act[before], true[before]),
                "correlation_after": correlation(model, obs[after], act[after], true[after]),
            }
        )
        s = sessions[-1]
        print(
            f"{variant:>18} session {session:2d} step {step:6d} labels {len(data):4d}: "
            f"corr before {s['correlation_before']:.3f} after {s['correlation_after']:.3f}",
            flush=True,
        )
    top = true >= np.percentile(true, 90)
    return {
        "sessions": sessions,
        "correlation_whole_buffer": correlation(model, obs, act, true),
        "correlation_top_decile": correlation(model, obs[top], act[top], true[top]),
        "seconds": time.perf_counter() - tic,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a finished pebble run folder (labels.db + checkpoints/)")
    p.add_argument("--variant", nargs="+", default=["raw", "normalized"], choices=sorted(VARIANTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="", help="result name (default: reward_replay_<run folder>)")
    args = p.parse_args()
    torch.set_num_threads(1)
    run = Path(args.run)
    results = {v: replay(run, v, args.seed) for v in args.variant}
    name = args.name or f"reward_replay_{run.name}"
    path = write_result(name, {"run": str(run), "variants": results}, DIAGNOSTICS_RESULTS)
    for v, r in results.items():
        first, last = r["sessions"][0], r["sessions"][-1]
        print(
            f"{v}: first session corr {first['correlation_before']:.3f}, "
            f"mean over sessions {np.mean([x['correlation_before'] for x in r['sessions']]):.3f}, "
            f"last {last['correlation_before']:.3f}, whole buffer {r['correlation_whole_buffer']:.3f}, "
            f"top decile {r['correlation_top_decile']:.3f}"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
