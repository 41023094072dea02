"""Preference likelihoods: Plackett-Luce over K clips, which for K = 2 is Bradley-Terry-Luce.

A clip's score is the *sum* of its per-step learned rewards (trajectory-level model,
Christiano et al. 2017; PEBBLE). For a ranking sigma (best first) of K clips with scores
R, the Plackett-Luce probability is

    P(sigma) = prod_{k=0}^{K-2} exp(R[sigma_k]) / sum_{j>=k} exp(R[sigma_j]),

for K = 2 exactly ``exp(R_best) / (exp(R_0) + exp(R_1))``. An "equal" answer is the
soft target that puts probability 1/K on each clip being first (for K = 2 the usual
(0.5, 0.5) cross-entropy target).
"""

from __future__ import annotations

import torch
from torch import Tensor


def ranking_log_likelihood(scores: Tensor, rankings: Tensor) -> Tensor:
    """Plackett-Luce log-probability of ``rankings`` (..., K) under ``scores`` (..., K)."""
    ordered = torch.gather(scores, -1, rankings.expand(scores.shape))
    # log sum_{j>=k} exp(ordered_j): a reversed cumulative logsumexp.
    suffix = torch.flip(torch.logcumsumexp(torch.flip(ordered, dims=[-1]), dim=-1), dims=[-1])
    return (ordered - suffix)[..., :-1].sum(-1)


def equal_log_likelihood(scores: Tensor) -> Tensor:
    """Log-likelihood of an "equal" answer: uniform soft target over the first choice."""
    return torch.log_softmax(scores, dim=-1).mean(-1)


def preference_nll(scores: Tensor, rankings: Tensor, equal: Tensor) -> Tensor:
    """Per-query negative log-likelihood.

    ``scores`` (..., B, K) summed learned rewards; ``rankings`` (B, K) long, best first
    (ignored where ``equal``); ``equal`` (B,) bool.
    """
    ranked = ranking_log_likelihood(scores, rankings)
    tied = equal_log_likelihood(scores)
    return -torch.where(equal, tied, ranked)


def pairwise_agreement(scores: Tensor, rankings: Tensor) -> Tensor:
    """Fraction of the K(K-1)/2 ordered pairs of each ranking that ``scores`` order the same way.

    For K = 2 this is the usual preference accuracy. Returns (..., B).
    """
    ordered = torch.gather(scores, -1, rankings.expand(scores.shape))
    k = ordered.shape[-1]
    upper = torch.triu(torch.ones(k, k, dtype=torch.bool, device=scores.device), diagonal=1)
    agree = (ordered.unsqueeze(-1) > ordered.unsqueeze(-2)) & upper
    return agree.sum((-1, -2)).float() / upper.sum()


def first_choice_probabilities(scores: Tensor) -> Tensor:
    """Probability that each clip is ranked first: softmax over the K scores."""
    return torch.softmax(scores, dim=-1)
