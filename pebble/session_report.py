"""What a feedback session reports: its TensorBoard scalars and its line in the terminal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pebble.feedback import FeedbackCounts
from pebble.reward_learning import SessionFit
from pebble.tensorboard import ScalarWriter


@dataclass
class SessionDelta:
    """Totals before a session, to report what the session itself added."""

    labels: int
    skipped: int
    equal: int
    agreement: int  # entries of FeedbackCounts.oracle_agreement

    @classmethod
    def of(cls, counts: FeedbackCounts, labels: int) -> SessionDelta:
        return cls(labels, counts.skipped, counts.equal, len(counts.oracle_agreement))


def log_session(
    writer: ScalarWriter, step: int, counts: FeedbackCounts, before: SessionDelta, fit: SessionFit,
    correlation: float, timings: Mapping[str, float],
) -> None:  # fmt: skip
    """``reward_model/*``, ``feedback/*`` and ``time/*_seconds`` at the session's step."""
    s = fit.stats
    scalars = {
        "reward_model/loss": s.loss,
        "reward_model/train_accuracy": s.train_accuracy,
        "reward_model/heldout_accuracy": fit.heldout_accuracy,
        "reward_model/heldout_loss": fit.heldout_loss,
        "reward_model/heldout_return_correlation": fit.heldout_return_correlation,
        "reward_model/quadratic_action_inputs": float(fit.candidate == "quadratic"),
        "reward_model/epochs": s.epochs,
        "reward_model/correlation": correlation,
        "feedback/sessions": counts.sessions,
        "feedback/queries_asked": counts.asked,
        "feedback/labels_used": counts.labelled,
        "feedback/skipped": counts.skipped,
        "feedback/equal": counts.equal,
    }
    if fit.features_kept:
        scalars["reward_model/screened_features"] = fit.features_kept
    for tag, value in scalars.items():
        writer.add_scalar(tag, value, step)
    agreement = counts.oracle_agreement[before.agreement :]
    if agreement:  # of this session's rankings: first choice has the highest true return
        writer.add_scalar("feedback/oracle_agreement", float(np.mean(agreement)), step)
    for name, seconds in timings.items():
        writer.add_scalar(f"time/{name}_seconds", seconds, step)


def session_line(
    step: int, size: int, scheme: str, counts: FeedbackCounts, before: SessionDelta, labels: int, pending: int,
    fit: SessionFit, budget: int,
) -> str:  # fmt: skip
    """The terminal line of a session."""
    s = fit.stats
    return (
        f"[pebble] feedback session {counts.sessions} at step {step}: {size} queries ({scheme}), "
        f"{labels - before.labels} labels, {counts.skipped - before.skipped} skipped, "
        f"{counts.equal - before.equal} equal, {pending} awaiting an answer; "
        f"reward model: {s.epochs} epochs on {s.labels} labels, train acc {s.train_accuracy:.3f}, "
        f"held-out acc {fit.heldout_accuracy:.3f}, return corr {fit.heldout_return_correlation:.2f}"
        f"{'' if fit.candidate == 'plain' else f', action inputs {fit.candidate}'}"
        f"{f', {fit.features_kept} screened features' if fit.features_kept else ''}; "
        f"budget {counts.asked}/{budget}"
    )
