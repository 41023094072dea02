"""Bradley-Terry-Luce and Plackett-Luce likelihoods against hand computation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from pebble.preferences import pairwise_agreement, preference_nll, ranking_log_likelihood


def test_btl_loss_equals_hand_computed_value() -> None:
    # Segment scores are sums of per-step rewards: R0 = 0.5 + 0.25, R1 = -0.5 + 1.0.
    r0, r1 = 0.5 + 0.25, -0.5 + 1.0
    scores = torch.tensor([[r0, r1], [r0, r1], [r0, r1]])
    rankings = torch.tensor([[0, 1], [1, 0], [0, 1]])
    equal = torch.tensor([False, False, True])
    nll = preference_nll(scores, rankings, equal)
    p1 = math.exp(r1) / (math.exp(r0) + math.exp(r1))
    expected = [-math.log(1 - p1), -math.log(p1), -(0.5 * math.log(p1) + 0.5 * math.log(1 - p1))]
    for got, want in zip(nll.tolist(), expected):
        assert abs(got - want) < 1e-6


def test_plackett_luce_over_three_items_matches_enumeration() -> None:
    scores = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    u = [math.exp(s) for s in scores.tolist()]
    total = 0.0
    for perm in itertools.permutations(range(3)):
        a, b, c = perm
        hand = u[a] / (u[a] + u[b] + u[c]) * u[b] / (u[b] + u[c])
        got = math.exp(ranking_log_likelihood(scores, torch.tensor(perm)).item())
        assert abs(got - hand) < 1e-12
        total += got
    assert abs(total - 1.0) < 1e-12


def test_plackett_luce_with_two_items_is_btl() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(1000, 2, generator=gen, dtype=torch.float64) * 5
    rankings = torch.stack([torch.randperm(2, generator=gen) for _ in range(1000)])
    pl = ranking_log_likelihood(scores, rankings)
    best = torch.gather(scores, 1, rankings[:, :1]).squeeze(1)
    btl = best - torch.logsumexp(scores, dim=1)
    assert torch.allclose(pl, btl, atol=1e-12, rtol=0)


def test_ensemble_dimension_broadcasts() -> None:
    scores = torch.randn(3, 8, 4)
    rankings = torch.stack([torch.randperm(4) for _ in range(8)])
    equal = torch.zeros(8, dtype=torch.bool)
    nll = preference_nll(scores, rankings, equal)
    assert nll.shape == (3, 8)
    for m in range(3):
        assert torch.allclose(nll[m], preference_nll(scores[m], rankings, equal))


def test_pairwise_agreement() -> None:
    scores = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    rankings = torch.tensor([[0, 1, 2], [0, 1, 2]])
    assert pairwise_agreement(scores, rankings).tolist() == [1.0, 0.0]
    assert pairwise_agreement(torch.tensor([[1.0, 3.0, 2.0]]), torch.tensor([[1, 0, 2]])).item() == pytest.approx(2 / 3)
