"""The ensemble reward model r_hat(s, a) or r_hat(s, a, s'): networks, inference and persistence.

Training on preferences (loss, epochs, early stop) is :mod:`pebble.reward_learning`'s job.

The members run one after the other, a Python loop over M ``nn.Sequential`` MLPs: on this
CPU one batched computation (weights stacked as (M, in, out), ``torch.matmul``) was no faster
at width 128 and slower at width 256 (``bench/diagnostics/ensemble_layout.py``,
``bench/diagnostics/results/ensemble_layout.json``).
Each member has its own initialisation and its own shuffle of the labels (bootstrap-like
diversity, as in PEBBLE). Outputs are linear by default; ``output="tanh"`` bounds them in
[-1, 1] as PEBBLE does, which flattens the learned reward where the agent is fastest
(docs/performance.md); the learned reward is the mean over members.

Inputs are standardised with a per-feature mean and std fixed once, before the first
training (from the pre-training states, see ``fit_input_normalization``). Raw MuJoCo
observations mix joint angles (~0.1) with velocities (~10); without the rescaling the
first sessions learned a reward with per-step correlation 0.07 to HalfCheetah's true
reward instead of 0.51 from the same 56 labels (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pebble.config import RewardModelConfig
from pebble.labels import PreferenceDataset


def screening_z(differences: Tensor, first_above: Tensor, steps: Tensor | None = None) -> Tensor:
    """Univariate screening of preference features: for each column of ``differences`` (n, F)
    (a feature's clip-sum difference, first clip minus second, per ranked query), the Pearson
    correlation with ``first_above`` (n,) bool as +1/-1, times sqrt(n): about N(0, 1) for a
    feature the answers do not depend on (so |z| > 3 passes one in 370 of those by chance), and
    growing as sqrt(n) for one they do. A constant column, or constant answers, scores 0.

    ``steps`` (n,), the difference in real steps (clips cut by a termination are shorter), is
    regressed out of every column first (a partial correlation): a sum over a longer clip is
    larger for any feature that is positive on average (every square is), so without this
    each would stand in for "lasted longer", which the networks' bias already learns."""
    n = len(first_above)
    if n < 3:
        return torch.zeros(differences.shape[1], dtype=torch.float64)
    d = differences.double() - differences.double().mean(0)
    if steps is not None:
        s = steps.double() - steps.double().mean()
        if s.norm() > 0:
            d = d - torch.outer(s, (s @ d) / (s @ s))
    y = first_above.double() * 2 - 1
    y = y - y.mean()
    scale = d.norm(dim=0) * y.norm()
    # a column that is constant, or all explained by the steps, has no evidence of its own
    scale = torch.where(scale > 1e-9 * differences.double().norm(dim=0) * y.norm(), scale, torch.zeros_like(scale))
    r = (d * y.unsqueeze(-1)).sum(0) / torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.where(scale > 0, r, torch.zeros_like(r)) * n**0.5


class Ensemble(nn.Module):
    """M independent MLPs on concat(s, a): LeakyReLU hidden layers, a linear output (or
    ``tanh``, in [-1, 1], with ``output="tanh"``).

    ``quadratic`` (a slice of the inputs: the action) gives the networks, after
    standardisation, ``w * z_a`` and ``w * z_a**2`` in place of ``z_a``, with
    ``w = sqrt(other inputs / action inputs)`` (at least 1), so that the action part carries as
    much input variance as the rest and a cost quadratic in the action is a linear feature.

    ``screened`` gives them ``[z, z**2] * feature_mask`` instead of ``z`` (z: all standardised
    inputs; the mask is set by :meth:`RewardModel.screen_features`, z alone until then)."""

    input_mean: Tensor  # registered buffers (see __init__)
    input_std: Tensor
    input_fitted: Tensor
    feature_mask: Tensor  # only with ``screened``

    def __init__(
        self,
        input_dim: int,
        hidden: list[int],
        members: int,
        output: str,
        quadratic: slice | None = None,
        screened: bool = False,
    ) -> None:
        super().__init__()
        if output not in ("tanh", "linear"):
            raise ValueError(f"reward output must be 'tanh' or 'linear', not {output!r}")
        self.members = members
        self.quadratic = quadratic
        self.screened = screened
        net_inputs = input_dim * (2 if screened else 1)
        if quadratic is not None:
            part = len(range(input_dim)[quadratic])
            self.action_weight = max(1.0, ((input_dim - part) / part) ** 0.5)
            net_inputs += part

        def mlp() -> nn.Sequential:
            layers: list[nn.Module] = []
            for fan_in, fan_out in zip([net_inputs, *hidden[:-1]], hidden):
                layers += [nn.Linear(fan_in, fan_out), nn.LeakyReLU()]
            # no hidden layers: a reward linear in the (standardised) inputs
            head: list[nn.Module] = [nn.Linear(hidden[-1] if hidden else net_inputs, 1)]
            head += [nn.Tanh()] if output == "tanh" else []
            return nn.Sequential(*layers, *head)

        self.nets = nn.ModuleList(mlp() for _ in range(members))
        # Buffers, so that checkpoints and saved models carry the normalisation.
        self.register_buffer("input_mean", torch.zeros(input_dim))
        self.register_buffer("input_std", torch.ones(input_dim))
        self.register_buffer("input_fitted", torch.tensor(False))
        if screened:  # which of [z, z**2] the networks see: until the first screening, z alone
            self.register_buffer("feature_mask", torch.cat([torch.ones(input_dim), torch.zeros(input_dim)]))

    def forward(self, x: Tensor) -> Tensor:
        """(M, N, input_dim) (member m sees x[m]) or (N, input_dim) (all see x) -> (M, N) rewards."""
        x = (x - self.input_mean) / self.input_std
        if self.quadratic is not None:
            q = self.quadratic
            action = x[..., q] * self.action_weight
            x = torch.cat([x[..., : q.start], action, x[..., q.stop :], action * action], dim=-1)
        if self.screened:
            x = torch.cat([x, x * x], dim=-1) * self.feature_mask
        if x.dim() == 2:
            return torch.stack([net(x).squeeze(-1) for net in self.nets])
        return torch.stack([net(x[m]).squeeze(-1) for m, net in enumerate(self.nets)])


class RewardModel:
    """Ensemble reward model with its optimiser (saved with it, for an exact resume) and persistence."""

    def __init__(self, obs_dim: int, act_dim: int, config: RewardModelConfig | None = None) -> None:
        #: every setting comes from the ``reward`` section of the config tree (one source of defaults)
        self.config = config if config is not None else RewardModelConfig()
        c = self.config
        self.obs_dim, self.act_dim = obs_dim, act_dim
        #: r(s, a, s') instead of r(s, a): inputs are concat(s, a, s')
        self.next_state = c.reward_next_state
        self.normalize_inputs = c.normalize_inputs
        inputs = obs_dim * (2 if self.next_state else 1) + act_dim
        action = slice(obs_dim, obs_dim + act_dim)
        #: the input treatments the model holds ("auto": both; ``record_heldout`` picks the active one)
        self.candidate_names: list[str] = (
            ["plain", "quadratic"] if c.reward_action_inputs == "auto" else [c.reward_action_inputs]
        )
        self.candidates = [
            Ensemble(
                inputs,
                list(c.reward_hidden),
                c.ensemble_size,
                c.reward_output,
                quadratic=action if name == "quadratic" else None,
                screened=c.reward_feature_screening > 0,
            )  # fmt: skip
            for name in self.candidate_names
        ]
        # Decoupled decay (AdamW): an L2 term in the gradient would be rescaled by Adam's
        # per-weight step sizes and regularise the rarely-updated weights least.
        self.optimizers = [
            torch.optim.Adam(
                e.parameters(), lr=c.reward_lr, weight_decay=c.reward_weight_decay, decoupled_weight_decay=True
            )
            for e in self.candidates
        ]
        #: the candidate that scores transitions and clips and that training updates
        self.active = 0
        #: per candidate, the summed held-out accuracy on each session's new labels before training on them
        self.heldout_sums = [0.0] * len(self.candidates)
        #: whether the candidates have been trained (only trained ones are compared)
        self.trained = False

    def __repr__(self) -> str:
        c = self.config
        inputs = "r(s, a, s')" if self.next_state else "r(s, a)"
        return (
            f"RewardModel({inputs}, {c.ensemble_size} x {list(c.reward_hidden)} {c.reward_output}, "
            f"action inputs {'/'.join(self.candidate_names)}, "
            f"obs_dim={self.obs_dim}, act_dim={self.act_dim})"
        )

    @property
    def ensemble(self) -> Ensemble:
        """The active candidate's networks."""
        return self.candidates[self.active]

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.optimizers[self.active]

    @property
    def active_name(self) -> str:
        return self.candidate_names[self.active]

    @contextmanager
    def using(self, index: int) -> Iterator[None]:
        """Make candidate ``index`` the active one for the duration (to train or evaluate it)."""
        previous, self.active = self.active, index
        try:
            yield
        finally:
            self.active = previous

    def record_heldout(self, accuracies: list[float]) -> None:
        """Add each candidate's held-out accuracy on a session's new labels, and activate the one
        with the highest sum so far (prequential model selection: every label counts once,
        measured before any candidate trained on it). Accuracy, not the likelihood: one confident
        mistake can outweigh many right answers in the log-loss (on Ant-v5 a candidate ordering
        0.88 of the new pairs had the higher loss than one ordering 0.63). Ties and NaNs keep the
        current choice; so do measurements of candidates not trained yet."""
        if not self.trained:
            return
        sums = [total + accuracy for total, accuracy in zip(self.heldout_sums, accuracies)]
        if all(np.isfinite(sums)):
            self.heldout_sums = sums
            best = int(np.argmax(sums))
            if sums[best] > sums[self.active]:
                self.active = best

    @property
    def screened(self) -> bool:
        """Whether the networks see screened features (``reward_feature_screening``)."""
        return self.ensemble.screened

    @property
    def members(self) -> int:
        return self.ensemble.members

    @property
    def needs_input_normalization(self) -> bool:
        """True until ``fit_input_normalization`` has fixed the statistics (if enabled)."""
        return self.normalize_inputs and not bool(self.ensemble.input_fitted)

    def fit_input_normalization(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray | None = None) -> None:
        """Fix the input mean and std from N transitions (N, obs_dim), (N, act_dim), (N, obs_dim).

        Called once, before the first training; later sessions keep these statistics, since
        moving them would silently change what the trained networks compute. Features that
        do not vary (std < 1e-6) are only centred. A no-op when normalisation is disabled.
        """
        if not self.normalize_inputs or len(obs) == 0:
            return
        x = self._inputs(obs, actions, next_obs).double()
        std = x.std(0, correction=0)
        for ensemble in self.candidates:
            ensemble.input_mean.copy_(x.mean(0).float())
            ensemble.input_std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std).float())
            ensemble.input_fitted.fill_(True)

    @torch.no_grad()
    def screening_scores(self, data: PreferenceDataset, chunk: int = 256) -> Tensor:
        """:func:`screening_z` of every feature of [z, z**2] (z: the inputs standardised with the
        active candidate's statistics; names in :meth:`feature_names`) over the ranked labels of
        ``data``: how well the difference in clip sums between each query's first two clips
        predicts which of them the teacher ranked higher, beyond what the clips' lengths do."""
        ensemble = self.ensemble
        diffs, steps = [], []
        for start in range(0, len(data), chunk):
            part = slice(start, start + chunk)
            parts = [data.obs[part], data.actions[part]] + ([data.next_obs[part]] if self.next_state else [])
            z = (torch.cat(parts, dim=-1) - ensemble.input_mean) / ensemble.input_std
            mask = data.mask[part]
            sums = (torch.cat([z, z * z], dim=-1) * mask.unsqueeze(-1)).sum(-2)  # (b, K, features)
            diffs.append((sums[:, 0] - sums[:, 1]).double())
            steps.append((mask[:, 0] - mask[:, 1]).sum(-1).double())
        ranked = ~data.equal
        rankings = data.rankings[ranked]
        first_above = (rankings == 0).int().argmax(-1) < (rankings == 1).int().argmax(-1)  # positions of clips 0, 1
        return screening_z(torch.cat(diffs)[ranked], first_above, torch.cat(steps)[ranked])

    @torch.no_grad()
    def screen_features(self, data: PreferenceDataset, threshold: float) -> int:
        """Choose the features the networks see (``reward_feature_screening``): of [z, z**2], those
        whose :meth:`screening_scores` over every ranked label so far exceed ``threshold`` in
        absolute value. If none does, z alone. Returns the features kept. Without a ranked label
        (every query so far skipped or judged equal) there is no evidence, and the mask stays."""
        if not bool((~data.equal).any()):
            return int(self.ensemble.feature_mask.sum())
        keep = (self.screening_scores(data).abs() > threshold).float()
        if not keep.any():
            keep[: len(keep) // 2] = 1
        self.ensemble.feature_mask.copy_(keep)
        return int(keep.sum())

    # ----------------------------------------------------------------- inference
    @torch.inference_mode()
    def reward(
        self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray | None = None, chunk: int = 65536
    ) -> np.ndarray:
        """Mean learned reward of N transitions: (N, obs_dim), (N, act_dim), (N, obs_dim) -> (N,)
        float32. ``next_obs`` is needed only by a model with ``next_state``."""
        out = np.empty(len(obs), dtype=np.float32)
        for start in range(0, len(obs), chunk):
            part = slice(start, start + chunk)
            x = self._inputs(obs[part], actions[part], None if next_obs is None else next_obs[part])
            out[part] = self.ensemble(x).mean(0).numpy()
        return out

    @torch.inference_mode()
    def clip_scores(
        self, obs: np.ndarray, actions: np.ndarray, mask: np.ndarray, next_obs: np.ndarray | None = None
    ) -> np.ndarray:
        """Per-member summed reward of clips: (..., H, d) arrays -> (M, ...) scores."""
        lead = mask.shape[:-1]
        nxt = None if next_obs is None else next_obs.reshape(-1, self.obs_dim)
        x = self._inputs(obs.reshape(-1, self.obs_dim), actions.reshape(-1, self.act_dim), nxt)
        rewards = self.ensemble(x).reshape(self.members, *mask.shape) * torch.as_tensor(mask, dtype=torch.float32)
        return rewards.sum(-1).reshape(self.members, *lead).numpy()

    def member_scores(self, data: PreferenceDataset, index: Tensor) -> Tensor:
        """Scores (M, b, K) of the labelled queries ``index`` (M, b): member m scores its own batch
        ``index[m]`` (with gradients; the trainer in :mod:`pebble.reward_learning` calls this)."""
        obs, act, mask = data.obs[index], data.actions[index], data.mask[index]  # (M, b, K, H, .)
        m, b, k, h = mask.shape
        parts = [obs, act] + ([data.next_obs[index]] if self.next_state else [])
        x = torch.cat(parts, dim=-1).reshape(m, b * k * h, -1)
        return (self.ensemble(x).reshape(m, b, k, h) * mask).sum(-1)

    def transition_inputs(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray | None = None) -> Tensor:
        """The network inputs (N, in) of N transitions, before standardisation (which the networks apply)."""
        return self._inputs(obs, actions, next_obs)

    def input_names(self) -> list[str]:
        """A name for each network input: ``obs[i]``, ``action[j]`` and (r(s, a, s')) ``next_obs[i]``."""
        names = [f"obs[{i}]" for i in range(self.obs_dim)] + [f"action[{j}]" for j in range(self.act_dim)]
        return names + ([f"next_obs[{i}]" for i in range(self.obs_dim)] if self.next_state else [])

    def feature_names(self) -> list[str]:
        """A name for each screening candidate, [z, z**2]: the input names, then each with ``^2``."""
        names = self.input_names()
        return names + [f"{name}^2" for name in names]

    def screened_features(self) -> list[str]:
        """The names of the features the networks see under ``reward_feature_screening`` (see
        :meth:`feature_names`); every input name without it."""
        if not self.screened:
            return self.input_names()
        mask = self.ensemble.feature_mask.bool().tolist()
        return [name for name, kept in zip(self.feature_names(), mask) if kept]

    def input_reliance(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray | None = None) -> np.ndarray:
        """How much the learned reward moves with each input on these N transitions: the mean
        over them of |d r_hat / d x_i| times the standard deviation of x_i among them (the change
        per typical variation of the input; 0 for an input that does not vary here). (n_inputs,)."""
        x = self._inputs(obs, actions, next_obs).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.ensemble(x).mean(0).sum(), x)
        return (grad.abs().mean(0) * x.detach().std(0, correction=0)).numpy()

    # --------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, object]:
        return {
            # the active candidate under the keys of pebble 0.4, for scripts that read model files
            # (torch.save stores a tensor shared by two entries once)
            "ensemble": self.ensemble.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "candidates": self.candidate_names,
            "ensembles": [e.state_dict() for e in self.candidates],
            "optimizers": [o.state_dict() for o in self.optimizers],
            "active": self.active,
            "heldout_sums": list(self.heldout_sums),
            "trained": self.trained,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "next_state": self.next_state,
            "feature_screening": self.screened,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        if (state["obs_dim"], state["act_dim"]) != (self.obs_dim, self.act_dim):
            raise ValueError(
                f"reward model was trained for obs/action dims {state['obs_dim']}/{state['act_dim']}, "
                f"not {self.obs_dim}/{self.act_dim}"
            )
        if bool(state.get("next_state", False)) != self.next_state:
            saved = "r(s, a, s')" if state.get("next_state") else "r(s, a)"
            raise ValueError(f"reward model was trained as {saved} (--reward-next-state must match)")
        if bool(state.get("feature_screening", False)) != self.screened:
            saved = "with" if state.get("feature_screening") else "without"
            raise ValueError(f"reward model was trained {saved} --reward-feature-screening (the setting must match)")
        if "ensembles" not in state:  # saved by pebble 0.4 or older: one plain ensemble
            state = {**state, "candidates": ["plain"], "ensembles": [state["ensemble"]],
                     "optimizers": [state["optimizer"]], "active": 0, "heldout_sums": [0.0]}  # fmt: skip
        if list(state["candidates"]) != self.candidate_names:  # type: ignore[call-overload]
            saved = "auto" if len(state["candidates"]) > 1 else state["candidates"][0]  # type: ignore[arg-type,index]
            raise ValueError(f"reward model was trained with --reward-action-inputs {saved} (the setting must match)")
        for ensemble, optimizer, weights, moments in zip(
            self.candidates,
            self.optimizers,
            state["ensembles"],
            state["optimizers"],  # type: ignore[call-overload]
        ):
            weights = dict(weights)
            if "input_fitted" not in weights:  # saved before inputs were normalised: keep them raw
                weights.update(
                    input_mean=torch.zeros(self.obs_dim + self.act_dim),
                    input_std=torch.ones(self.obs_dim + self.act_dim),
                    input_fitted=torch.tensor(True),
                )
            ensemble.load_state_dict(weights)
            optimizer.load_state_dict(moments)
        self.active = int(state["active"])  # type: ignore[call-overload]
        self.heldout_sums = [float(x) for x in state["heldout_sums"]]  # type: ignore[attr-defined]
        self.trained = bool(state.get("trained", True))

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    def _inputs(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray | None) -> Tensor:
        """The network input concat(s, a) or, with ``next_state``, concat(s, a, s')."""
        if not self.next_state:
            return torch.as_tensor(np.concatenate([obs, actions], axis=-1), dtype=torch.float32)
        if next_obs is None:
            raise ValueError("this reward model is r(s, a, s') and needs the next observations")
        return torch.as_tensor(np.concatenate([obs, actions, next_obs], axis=-1), dtype=torch.float32)
