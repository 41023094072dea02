"""TensorBoard output of a run: scalars against env steps, the custom-scalars layout, hyperparameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from torch.utils.tensorboard import SummaryWriter

#: Charts that overlay several tags (TensorBoard's "Custom Scalars" tab).
LAYOUT = {
    "PEBBLE": {
        "training episode return: true vs learned": [
            "Multiline",
            ["charts/episode_true_return", "charts/episode_learned_return"],
        ],
        "evaluation true return": ["Multiline", ["eval/true_return"]],
        "reward model accuracy: train vs held-out": [
            "Multiline",
            ["reward_model/train_accuracy", "reward_model/heldout_accuracy"],
        ],
        "reward model calibration: new clips before training, and recent buffer rows": [
            "Multiline",
            ["reward_model/heldout_return_correlation", "reward_model/correlation"],
        ],
        "labels": [
            "Multiline",
            ["feedback/queries_asked", "feedback/labels_used", "feedback/skipped", "feedback/equal"],
        ],
    }
}


def open_writer(log_dir: Path, hyperparameters: list[tuple[str, Any]], purge_step: int | None = None) -> SummaryWriter:
    """A writer for ``log_dir`` with the custom-scalars layout and the hyperparameter table.

    ``purge_step`` (on resume) hides events at or after that step written by the
    interrupted process.
    """
    writer = SummaryWriter(str(log_dir), purge_step=purge_step)
    writer.add_custom_scalars(LAYOUT)
    rows = "\n".join(f"|{name}|{value}|" for name, value in hyperparameters)
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + rows, 0)
    return writer


class ScalarWriter(Protocol):
    """What the roles log through: a ``SummaryWriter`` or a :class:`NullWriter`."""

    def add_scalar(self, tag: str, scalar_value: Any, global_step: int | None = None) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class NullWriter:
    """Stands in for a ``SummaryWriter`` when a run has no folder (a notebook): logs nothing."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_text(self, *args: Any, **kwargs: Any) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
