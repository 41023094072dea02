"""Reward learning: fitting the reward model to the labels, and the reward the RL learner sees.

Two roles, after imitation's split of preference comparisons:

* :class:`RewardTrainer` fits a :class:`~pebble.reward_model.RewardModel` to a
  :class:`~pebble.labels.PreferenceDataset` with a :class:`PreferenceLoss` (the
  trajectory-level Plackett-Luce likelihood; Bradley-Terry-Luce for pairs): up to
  ``reward_epochs`` epochs over all labels, each member with its own shuffle, stopping once
  the mean training accuracy exceeds ``accuracy_stop`` (PEBBLE). The model is never
  re-initialised between sessions.
* :class:`RewardLearner` is what a feedback session calls: fix the input statistics (once),
  measure the new labels before training on them (held-out accuracy), train, and hand out
  the :class:`~pebble.reward_sources.RewardSource` the RL learner is relabelled with.

Where the PEBBLE variants plug in, without editing the loop (docs/architecture.md):

* a noise-robust loss or a label filter (RIME): pass ``loss=`` or override
  :meth:`RewardTrainer.batch_loss`;
* augmented or extra unlabelled pairs (SURF): override :meth:`RewardTrainer.batch_loss`
  (it receives each member's batch indices and may add terms with weights);
* an exploration bonus (RUNE): override :meth:`RewardLearner.reward_source` to return a
  source that adds the ensemble's disagreement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from pebble.faults import crash_point
from pebble.labels import PreferenceDataset
from pebble.preferences import pairwise_agreement, preference_nll
from pebble.reward_model import RewardModel
from pebble.reward_sources import LearnedReward, RewardSource
from pebble.timing import Timings


class PreferenceLoss(Protocol):
    """Per-query loss: scores (M, b, K), rankings (M, b, K) best first, equal (M, b) -> (M, b)."""

    def __call__(self, scores: Tensor, rankings: Tensor, equal: Tensor) -> Tensor: ...


@dataclass
class TrainStats:
    """What one session's reward training did."""

    loss: float
    train_accuracy: float
    epochs: int
    labels: int


class RewardTrainer:
    """Fits a reward model to preference labels; batch size, epochs and early stop from its config."""

    def __init__(self, model: RewardModel, loss: PreferenceLoss = preference_nll) -> None:
        self.model = model
        self.loss = loss

    def batch_loss(self, data: PreferenceDataset, index: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(total loss to minimise, per-query losses (M, b), scores (M, b, K), rankings) of one batch;
        member m trains on queries ``index[m]``. Members are independent: the total is the sum
        of their mean losses."""
        scores = self.model.member_scores(data, index)
        rankings, equal = data.rankings[index], data.equal[index]
        nll = self.loss(scores, rankings, equal)
        return nll.mean(1).sum(), nll, scores, rankings

    def train(self, data: PreferenceDataset, rng: np.random.Generator) -> TrainStats:
        """Fit every candidate of the model on all labels so far (each stopping early at
        ``accuracy_stop``, one after the other from the same RNG); the active one's stats."""
        stats = []
        for index in range(len(self.model.candidates)):
            with self.model.using(index):
                stats.append(self._train_active(data, rng))
        self.model.trained = self.model.trained or len(data) > 0
        return stats[self.model.active]

    def _train_active(self, data: PreferenceDataset, rng: np.random.Generator) -> TrainStats:
        n = len(data)
        if n == 0:
            return TrainStats(math.nan, math.nan, 0, 0)
        cfg, model = self.model.config, self.model
        model.ensemble.train()
        epoch, sums = 0, (0.0, 0.0, 0, 0.0)
        for epoch in range(1, cfg.reward_epochs + 1):
            sums = self._epoch(data, rng)
            crash_point("reward_epoch")
            _, acc_sum, _, ranked = sums
            if ranked and acc_sum / ranked > cfg.accuracy_stop:
                break
        model.ensemble.eval()
        loss_sum, acc_sum, count, ranked = sums
        return TrainStats(loss_sum / count, acc_sum / ranked if ranked else math.nan, epoch, n)

    def _epoch(self, data: PreferenceDataset, rng: np.random.Generator) -> tuple[float, float, int, float]:
        """One pass over the labels; returns (loss sum, agreement sum, queries, ranked queries), per member."""
        members, batch = self.model.members, self.model.config.reward_batch_size
        perms = torch.as_tensor(np.stack([rng.permutation(len(data)) for _ in range(members)]))
        loss_sum = acc_sum = ranked = 0.0
        count = 0
        for start in range(0, len(data), batch):
            index = perms[:, start : start + batch]
            loss, nll, scores, rankings = self.batch_loss(data, index)
            self.model.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.model.optimizer.step()
            with torch.no_grad():
                equal = data.equal[index]
                loss_sum += nll.sum().item() / members
                acc_sum += (pairwise_agreement(scores.detach(), rankings) * (~equal)).sum().item() / members
            count += index.shape[1]
            ranked += (~equal).sum().item() / members
        return loss_sum, acc_sum, count, ranked

    def regress(
        self, inputs: tuple[np.ndarray, np.ndarray, np.ndarray], targets: np.ndarray, epochs: int,
        rng: np.random.Generator,
    ) -> tuple[float, float]:  # fmt: skip
        """Fit every member's per-step reward to ``targets`` (N,) on N transitions ``inputs`` (obs,
        actions, next obs) by mean squared error: ``epochs`` passes in minibatches of
        ``reward_batch_size`` rows, each member with its own shuffle (RIME's warm start).
        Returns the ensemble's MSE (members averaged) before and after."""
        model = self.model
        x = model.transition_inputs(*inputs)
        y = torch.as_tensor(targets, dtype=torch.float32)
        before = self._mse(x, y)
        n, batch = len(y), model.config.reward_batch_size
        model.ensemble.train()
        for _ in range(epochs):
            perms = torch.as_tensor(np.stack([rng.permutation(n) for _ in range(model.members)]))
            for start in range(0, n, batch):
                index = perms[:, start : start + batch]  # (M, b): member m's rows
                loss = ((model.ensemble(x[index]) - y[index]) ** 2).mean(1).sum()
                model.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                model.optimizer.step()
        model.ensemble.eval()
        return before, self._mse(x, y)

    def _mse(self, x: Tensor, y: Tensor) -> float:
        with torch.inference_mode():
            return float(((self.model.ensemble(x) - y) ** 2).mean())

    def evaluate(self, data: PreferenceDataset, start: int = 0) -> Evaluation:
        """Loss, pairwise accuracy (over non-equal labels) and return correlation on labels ``start:``."""
        if len(data) <= start:
            return Evaluation(math.nan, math.nan, math.nan)
        with torch.inference_mode():
            index = torch.arange(start, len(data)).expand(self.model.members, -1)
            scores = self.model.member_scores(data, index)
            rankings, equal = data.rankings[index[0]], data.equal[index[0]]
            loss = self.loss(scores, rankings, equal).mean().item()
            ranked = ~equal
            acc = pairwise_agreement(scores, rankings)[:, ranked].mean().item() if ranked.any() else math.nan
            true = (data.true_rewards[start:] * data.mask[start:]).sum(-1)
        return Evaluation(loss, acc, return_correlation(scores.mean(0).numpy(), true.numpy()))


def return_correlation(learned: np.ndarray, true: np.ndarray) -> float:
    """Pearson correlation of learned and true clip returns (any shapes, flattened); NaN when
    either is constant (a teacher without true rewards stores zeros) or there are under 3 clips."""
    learned, true = learned.reshape(-1).astype(np.float64), true.reshape(-1).astype(np.float64)
    if len(true) < 3 or np.ptp(true) == 0 or np.ptp(learned) == 0:
        return math.nan
    return float(np.corrcoef(learned, true)[0, 1])


@dataclass
class Evaluation:
    """How a reward model does on labels it may not have trained on."""

    loss: float
    accuracy: float  #: share of ranked pairs ordered as the teacher ordered them
    #: correlation of the model's clip returns with the true ones: calibration independent of
    #: the teacher's answers (with an oracle, how well the model knows the task on these clips)
    return_correlation: float


@dataclass
class SessionFit:
    """What a session's reward learning did: training stats and the accuracy on the new labels
    before they were trained on."""

    stats: TrainStats
    heldout_loss: float
    heldout_accuracy: float
    #: correlation of learned and true returns of the new clips, before training on them
    heldout_return_correlation: float = math.nan
    #: the model's candidate that rewards the learner after this session (``reward_action_inputs``)
    candidate: str = "plain"
    #: with ``reward_feature_screening``: the features of [z, z**2] the networks see from now on (else 0)
    features_kept: int = 0


class RewardLearner:
    """The reward-learning role of a feedback session; owns the reward-training RNG."""

    def __init__(
        self,
        model: RewardModel,
        dataset: PreferenceDataset,
        rng: np.random.Generator,
        trainer: RewardTrainer | None = None,
        timings: Timings | None = None,
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.rng = rng
        self.trainer = trainer if trainer is not None else RewardTrainer(model)
        self.timings = timings if timings is not None else Timings()

    def fit(self, new_from: int, stored_inputs: tuple[np.ndarray, np.ndarray, np.ndarray | None]) -> SessionFit:
        """Train on every label; labels ``new_from:`` arrived this session and are measured first.

        ``stored_inputs`` (obs, actions, next obs of the stored transitions) fix the input
        statistics at the first session: the pre-training states are the most diverse ones.
        """
        if self.model.needs_input_normalization:
            self.model.fit_input_normalization(*stored_inputs)
        evaluations = []
        for index in range(len(self.model.candidates)):
            with self.model.using(index):
                evaluations.append(self.trainer.evaluate(self.dataset, start=new_from))
        # the figures reported are those of the candidate the policy was rewarded with until now
        heldout = evaluations[self.model.active]
        if len(evaluations) > 1:  # (untrained candidates and sessions without new labels count nothing)
            self.model.record_heldout([e.accuracy for e in evaluations])
        kept = 0
        with self.timings.measure("reward_training"):
            if self.model.config.reward_feature_screening > 0:  # on every label so far, new ones included
                kept = self.model.screen_features(self.dataset, self.model.config.reward_feature_screening)
            stats = self.trainer.train(self.dataset, self.rng)
        return SessionFit(
            stats, heldout.loss, heldout.accuracy, heldout.return_correlation, self.model.active_name, kept
        )

    def warm_start(
        self, stored_inputs: tuple[np.ndarray, np.ndarray, np.ndarray], intrinsic: np.ndarray, epochs: int
    ) -> tuple[float, float]:
        """RIME's warm start: regress the reward model onto the intrinsic reward (N,) of the stored
        transitions for ``epochs`` epochs, before any label (input statistics are fixed first, as
        :meth:`fit` would). A tanh output cannot reach rewards above 1, so there the targets are
        divided by their largest magnitude. Returns the MSE before and after."""
        if self.model.needs_input_normalization:
            self.model.fit_input_normalization(*stored_inputs)
        targets = intrinsic.astype(np.float32)
        if self.model.config.reward_output == "tanh" and len(targets) and np.abs(targets).max() > 1:
            targets = targets / np.abs(targets).max()
        results = []
        with self.timings.measure("reward_training"):
            for index in range(len(self.model.candidates)):  # every candidate (--reward-action-inputs auto)
                with self.model.using(index):
                    results.append(self.trainer.regress(stored_inputs, targets, epochs, self.rng))
        return results[self.model.active]

    def reward_source(self) -> RewardSource:
        """The reward the RL learner trains on: the ensemble's mean (RUNE would add its std)."""
        return LearnedReward(self.model)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
