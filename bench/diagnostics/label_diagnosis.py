"""Why a run's reward model does or does not generalise to the next session's clips.

From a run's label store (``labels.db``; its clips carry next observations and true rewards):

1. **What the labels are about**: per session, the spread of the pairs' true-return
   differences and its parts (for MuJoCo locomotion rewards: the healthy bonus, i.e. the real
   steps of each clip, the control cost -w * sum(a^2), and the rest: forward velocity less any
   contact cost), and the share of pairs in which a clip ended in a termination.
2. **A ceiling**: a Bradley-Terry model linear in a few hand-made clip features (real steps,
   sum of a^2, sum of one observation entry) trained on the sessions before each session and
   tested on it: what the labels allow a model that knows where to look.
3. **Input scale**: how far (in first-session standard deviations) later sessions' inputs are
   from the first session's, which fixes the model's input statistics.
4. **Screening**: after each session, the features of [z, z^2] (z: the inputs standardised with
   the first session's statistics) whose clip-sum difference best predicts the answers so far
   (``RewardModel.screening_scores``), as ``--reward-feature-screening`` sees them.
5. **Replays** (``pebble fit-reward --by-session``) with other reward-model settings, or with
   the observation or the action blanked out, or all observation entries but the velocity
   (``velocity_only``) or but the first ``--obs-prefix`` ones (``obs_prefix*``) zeroed: mean
   held-out accuracy and return correlation of the new labels over sessions 2 on.

    python bench/diagnostics/label_diagnosis.py --run runs/ant_diag0 --ctrl-weight 0.5 --velocity-index 13 \
        --variant default quadratic auto actions_only screening_3

Parts 1 and 2 need the task's reward weights (``--ctrl-weight``, ``--velocity-index``), which
this script is told, not pebble: pebble itself never names an environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for common.py
from common import DIAGNOSTICS_RESULTS, ROOT, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))
from pebble import offline  # noqa: E402
from pebble.config import RewardModelConfig  # noqa: E402
from pebble.label_store import LabelStore, StoredAnswer  # noqa: E402
from pebble.reward_model import RewardModel  # noqa: E402

#: name -> (settings of the ``reward`` section, inputs kept: "all", "actions", "observations",
#: "velocity" (actions and the --velocity-index entry) or "prefix" (actions and the first --obs-prefix entries))
VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "default": ({}, "all"),
    "no_next_state": ({"reward_next_state": False}, "all"),
    "linear_reward": ({"reward_hidden": []}, "all"),
    "narrow_32x2": ({"reward_hidden": [32, 32]}, "all"),
    "ensemble_7": ({"ensemble_size": 7}, "all"),
    "weight_decay_10": ({"reward_weight_decay": 10.0}, "all"),
    "no_early_stop": ({"accuracy_stop": 1.01}, "all"),
    "early_stop_0.8": ({"accuracy_stop": 0.8}, "all"),
    "actions_only": ({}, "actions"),
    "observations_only": ({}, "observations"),
    "quadratic": ({"reward_action_inputs": "quadratic"}, "all"),
    "auto": ({"reward_action_inputs": "auto"}, "all"),
    "screening_3": ({"reward_feature_screening": 3.0}, "all"),
    "screening_4": ({"reward_feature_screening": 4.0}, "all"),
    "velocity_only": ({}, "velocity"),
    "obs_prefix": ({}, "prefix"),
    "obs_prefix_quadratic": ({"reward_action_inputs": "quadratic"}, "prefix"),
}


def read(run: Path) -> list[StoredAnswer]:
    store = LabelStore(run / "labels.db", read_only=True)
    rows = [r for r in store if r.answer.kind == "ranking"]
    store.close()
    return rows


def parts(clip: Any, ctrl_weight: float) -> np.ndarray:
    """(true return, healthy steps, control cost, rest) of one clip."""
    m = clip.mask
    total = float(clip.true_rewards[m].sum())
    healthy = float(m.sum())
    ctrl = -ctrl_weight * float((clip.actions[m] ** 2).sum())
    return np.array([total, healthy, ctrl, total - healthy - ctrl])


def label_parts(rows: list[StoredAnswer], ctrl_weight: float) -> list[dict[str, float]]:
    out = []
    for session in sorted({r.session for r in rows}):
        given = [r for r in rows if r.session == session]
        diff = np.array([parts(r.query.clips[0], ctrl_weight) - parts(r.query.clips[1], ctrl_weight) for r in given])
        sd = diff.std(0)
        corr = [float(np.corrcoef(diff[:, 0], diff[:, i])[0, 1]) if sd[i] > 0 else float("nan") for i in (1, 2, 3)]
        ended = np.mean([not all(c.mask.all() for c in r.query.clips) for r in given])
        out.append({"session": session, "pairs": len(given), "sd_total": float(sd[0]), "sd_healthy": float(sd[1]),
                    "sd_ctrl": float(sd[2]), "sd_rest": float(sd[3]), "corr_healthy": corr[0], "corr_ctrl": corr[1],
                    "corr_rest": corr[2], "share_with_termination": float(ended)})  # fmt: skip
    return out


def features(clip: Any, velocity_index: int, which: list[str]) -> np.ndarray:
    m = clip.mask
    table = {"steps": float(m.sum()), "sum_a2": float((clip.actions[m] ** 2).sum()),
             "velocity": float(clip.next_observations[m, velocity_index].sum())}  # fmt: skip
    return np.array([table[w] for w in which])


def fit_logistic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Weights of a logistic regression without intercept (a Bradley-Terry model on differences)."""
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w], max_iter=200)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w, y) + 1e-4 * (w**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)  # type: ignore[arg-type]
    return w.detach()


def ceiling(rows: list[StoredAnswer], velocity_index: int, which: list[str]) -> list[float]:
    """Held-out accuracy of a Bradley-Terry model linear in ``which`` on each session after the first."""
    sessions = sorted({r.session for r in rows})

    def pairs(chosen: set[int]) -> tuple[torch.Tensor, torch.Tensor]:
        given = [r for r in rows if r.session in chosen]
        x = [features(r.query.clips[0], velocity_index, which) - features(r.query.clips[1], velocity_index, which)
             for r in given]  # fmt: skip
        y = [1.0 if r.answer.ranking[0] == 0 else 0.0 for r in given]
        return torch.tensor(np.array(x)), torch.tensor(y, dtype=torch.float64)

    accuracies = []
    for i, session in enumerate(sessions[1:], 1):
        x, y = pairs(set(sessions[:i]))
        scale = x.std(0) + 1e-9
        w = fit_logistic(x / scale, y)
        xt, yt = pairs({session})
        accuracies.append(float((((xt / scale) @ w > 0).double() == yt).double().mean()))
    return accuracies


def input_scale(rows: list[StoredAnswer]) -> list[dict[str, float]]:
    def inputs(session: int) -> np.ndarray:
        steps = [
            np.concatenate([c.observations[c.mask], c.actions[c.mask], c.next_observations[c.mask]], 1)  # type: ignore[index]
            for r in rows
            if r.session == session
            for c in r.query.clips
        ]
        return np.concatenate(steps)

    sessions = sorted({r.session for r in rows})
    first = inputs(sessions[0])
    mean, std = first.mean(0), first.std(0)
    std = np.where(std < 1e-6, 1.0, std)  # as the reward model does: constant inputs are only centred
    out = []
    for session in sessions:
        z = np.abs((inputs(session) - mean) / std)
        constant = int((first.std(0) < 1e-6).sum())
        out.append({"session": session, "constant_inputs": constant, "max_abs_z": float(z.max()),
                    "mean_abs_z": float(z.mean()), "inputs_beyond_10_sd": int((z.max(0) > 10).sum())})  # fmt: skip
    return out


def blank(rows: list[StoredAnswer], keep: str, kept_obs: list[int] | None = None) -> list[StoredAnswer]:
    """The labels with the observations (keep="actions") or the actions (keep="observations")
    zeroed, or (keep="velocity", "prefix") every observation entry but ``kept_obs``."""
    if keep == "all":
        return rows

    def cut(clip: Any) -> Any:
        if keep == "observations":
            return dataclasses.replace(clip, actions=clip.actions * 0)
        obs, nxt = clip.observations * 0, clip.next_observations * 0
        if keep != "actions":
            obs[..., kept_obs] = clip.observations[..., kept_obs]
            nxt[..., kept_obs] = clip.next_observations[..., kept_obs]
        return dataclasses.replace(clip, observations=obs, next_observations=nxt)

    return [dataclasses.replace(r, query=dataclasses.replace(r.query, clips=tuple(cut(c) for c in r.query.clips)))
            for r in rows]  # fmt: skip


def screening(run: Path, sessions: set[int], top: int = 10) -> list[dict[str, Any]]:
    """After each session, on every label so far: the ``top`` features of [z, z^2] by
    ``RewardModel.screening_scores`` (inputs standardised with the first session's clips, as a
    replay fixes them) and how many pass 3 and 3.5."""
    rows, meta = offline._read(str(run / "labels.db"), True)
    rows = [r for r in rows if r.session in sessions]
    data = offline._dataset(meta, True)
    model = RewardModel(data.obs_dim, data.act_dim, RewardModelConfig(reward_next_state=True))
    names = model.feature_names()
    out = []
    for session in sorted(sessions):
        for r in rows:
            if r.session == session:
                data.add(r.query, r.answer)
        if model.needs_input_normalization:
            model.fit_input_normalization(*offline._real_steps(data, True))
        z = model.screening_scores(data).numpy()
        order = np.argsort(-np.abs(z))[:top]
        out.append({"session": session, "labels": len(data), "above_3": int((np.abs(z) > 3).sum()),
                    "above_3.5": int((np.abs(z) > 3.5).sum()),
                    "top": [[names[i], round(float(z[i]), 2)] for i in order]})  # fmt: skip
    return out


def replay(
    run: Path, variant: str, seed: int, kept_obs: dict[str, list[int]], sessions: set[int]
) -> dict[str, Any]:  # fmt: skip
    settings, keep = VARIANTS[variant]
    # on plain inputs unless a variant screens: the variants were defined before screening became the default (0.8.0)
    reward = dataclasses.replace(RewardModelConfig(), reward_feature_screening=0.0, **settings)
    original = offline._read

    def read_kept(store: str, next_state: bool) -> tuple[list[StoredAnswer], dict[str, Any]]:
        rows, meta = original(store, next_state)
        return blank([r for r in rows if r.session in sessions], keep, kept_obs.get(keep)), meta

    offline._read = read_kept  # type: ignore[assignment]
    try:
        sessions = offline.replay_sessions(str(run / "labels.db"), reward=reward, seed=seed, print_fn=lambda _: None)
    finally:
        offline._read = original  # type: ignore[assignment]
    later = sessions[1:]
    return {
        "heldout_accuracy": [s["heldout_accuracy"] for s in later],
        "heldout_return_correlation": [s["heldout_return_correlation"] for s in later],
        "action_inputs": [s["action_inputs"] for s in sessions],
        "mean_heldout_accuracy": float(np.nanmean([s["heldout_accuracy"] for s in later])),  # type: ignore[arg-type]
        "mean_heldout_return_correlation": float(np.nanmean([s["heldout_return_correlation"] for s in later])),  # type: ignore[arg-type]
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a run folder with labels.db")
    p.add_argument("--ctrl-weight", type=float, required=True, help="the task's control-cost weight")
    p.add_argument("--velocity-index", type=int, required=True, help="the observation entry of forward velocity")
    p.add_argument("--variant", nargs="*", default=["default"], choices=sorted(VARIANTS))
    p.add_argument("--obs-prefix", type=int, default=0, help="observation entries the obs_prefix variants keep")
    p.add_argument("--sessions", type=int, default=0, help="use only the labels of the first N sessions (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="", help="result name (default: label_diagnosis_<run folder>)")
    args = p.parse_args()
    torch.set_num_threads(1)
    run = Path(args.run)
    rows = read(run)
    if args.sessions:
        first = sorted({r.session for r in rows})[: args.sessions]
        rows = [r for r in rows if r.session in first]
    result: dict[str, Any] = {"run": str(run), "labels": len(rows), "sessions": args.sessions or "all",
                              "label_parts": label_parts(rows, args.ctrl_weight),
                              "input_scale": input_scale(rows), "ceiling": {}, "replays": {}}  # fmt: skip
    for which in (["steps", "sum_a2", "velocity"], ["steps", "sum_a2"], ["steps", "velocity"], ["sum_a2"]):
        result["ceiling"]["+".join(which)] = ceiling(rows, args.velocity_index, which)
        print(f"ceiling {'+'.join(which)}: {np.round(result['ceiling']['+'.join(which)], 2).tolist()}", flush=True)
    for s in result["label_parts"]:
        print(
            f"session {s['session']}: pair-difference sd {s['sd_total']:.1f} (healthy {s['sd_healthy']:.1f}, "
            f"ctrl {s['sd_ctrl']:.1f}, rest {s['sd_rest']:.1f}); with a termination {s['share_with_termination']:.2f}"
        )
    result["screening"] = screening(run, {r.session for r in rows})
    for s in result["screening"]:
        top = ", ".join(f"{n} {z:.1f}" for n, z in s["top"][:6])
        print(f"screening after session {s['session']} ({s['labels']} labels): {s['above_3']} above 3; {top}")
    kept_obs = {"velocity": [args.velocity_index], "prefix": list(range(args.obs_prefix))}
    for variant in args.variant:
        r = result["replays"][variant] = replay(run, variant, args.seed, kept_obs, {r.session for r in rows})
        print(f"{variant:>18}: held-out acc {r['mean_heldout_accuracy']:.3f}, return corr "
              f"{r['mean_heldout_return_correlation']:.3f}", flush=True)  # fmt: skip
    path = write_result(args.name or f"label_diagnosis_{run.name}", result, DIAGNOSTICS_RESULTS)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
