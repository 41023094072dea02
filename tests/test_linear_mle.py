"""Theory check: the preference likelihood's MLE recovers a linear reward from scripted noisy labels.

With ``r(s, a) = <theta, phi(s, a)>`` and the Boltzmann teacher (``beta = 1``: the labels follow
exactly the Plackett-Luce model that :func:`pebble.preferences.preference_nll` assumes), the
MLE is consistent with error ~ ``sqrt(d / n)`` (Zhu, Jiao and Jordan 2023), for pairs and for
K-wise rankings; the full K-wise likelihood is at least as efficient as splitting each ranking
into its implied pairs. The data, the teacher and the fit are those of
``bench/diagnostics/linear_mle.py`` (which writes the full table to
``bench/diagnostics/results/linear_mle.json``); run with ``-s`` to see the errors measured here.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from pebble.preferences import preference_nll

BENCH = Path(__file__).resolve().parent.parent / "bench" / "diagnostics" / "linear_mle.py"


@pytest.fixture(scope="module")
def lm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_linear_mle", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def traces(lm: ModuleType) -> dict[str, float]:
    """Traces of the asymptotic covariances of sqrt(n) (theta_hat - theta) (Monte Carlo, 20k queries)."""
    torch.set_num_threads(1)
    return lm.asymptotic_traces(k=4, samples=20_000)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_teacher_labels_follow_the_model_and_the_fit_reaches_the_optimum(lm: ModuleType) -> None:
    theta = lm.true_theta()
    features, rankings = lm.simulate(3000, 2, theta, seed=0)
    assert features.shape == (3000, 2, lm.D) and rankings.shape == (3000, 2)
    # The scripted teacher's choices follow BTL on the summed features: mean P(choice) matches.
    scores = features @ theta
    chosen = np.take_along_axis(scores, rankings[:, :1], 1)[:, 0]
    other = np.take_along_axis(scores, rankings[:, 1:], 1)[:, 0]
    p_chosen = 1 / (1 + np.exp(-(chosen - other)))
    # E[P(chosen)] = E[p^2 + (1-p)^2] over queries; compare with 4 standard errors.
    p1 = 1 / (1 + np.exp(-(scores[:, 0] - scores[:, 1])))
    expected = np.mean(p1**2 + (1 - p1) ** 2)
    assert abs(p_chosen.mean() - expected) < 4 * p_chosen.std() / math.sqrt(3000)
    # The fit is the minimum: the gradient vanishes and any perturbation raises the NLL.
    estimate = lm.fit(features, rankings)
    x, r = torch.as_tensor(features), torch.as_tensor(rankings)
    equal = torch.zeros(len(r), dtype=torch.bool)

    def nll(t: np.ndarray) -> float:
        return float(preference_nll(x @ torch.as_tensor(t), r, equal).mean())

    rng = np.random.default_rng(0)
    assert all(nll(estimate + 0.01 * rng.normal(size=lm.D)) > nll(estimate) for _ in range(10))


def test_mle_is_consistent_for_pairs_and_rankings(lm: ModuleType, traces: dict[str, float]) -> None:
    """Mean error over 4 seeds: falls at every 10x more labels, about sqrt(10)x; 100 -> 10,000 at least 5x.

    At n = 10,000 it matches the asymptotic prediction sqrt(trace / n) (within +-40%: the mean
    of 4 errors has a relative standard deviation of about 15%).
    """
    ns = [100, 1000, 10_000]
    rows = lm.table(ns, seeds=[0, 1, 2, 3], k=4, traces=traces)
    print("\n     n   pairs (K=2)       rankings (K=4, PL)   rankings split into pairs   [asymptotic]")
    for row in rows:
        cells = [f"{row[key]:.4f} [{row[key + '_theory']:.4f}]" for key in ("pairs", "kwise_pl", "kwise_split")]
        print(f"{row['n']:>6}   {cells[0]}   {cells[1]}      {cells[2]}")
    for key in ("pairs", "kwise_pl", "kwise_split"):
        errors = [row[key] for row in rows]
        assert errors[0] > errors[1] > errors[2], (key, errors)
        assert errors[0] / errors[2] >= 5, (key, errors)
        for before, after in zip(errors, errors[1:]):
            assert 1.8 < before / after < 6, (key, errors)  # sqrt(10) = 3.16
        # Unbiased: a teacher with beta = 2 would leave an error of |theta| = 1.5 here.
        assert 0.6 < errors[2] / rows[2][key + "_theory"] < 1.4, (key, errors, rows[2][key + "_theory"])
    # Rankings of 4 carry more information than pairs (3 comparisons per query).
    assert all(row["kwise_pl"] < row["pairs"] for row in rows)


def test_rankings_are_more_informative_than_their_split_pairs(traces: dict[str, float]) -> None:
    """Asymptotic covariance traces: PL (inverse Fisher information) < split pairs (sandwich) < pairs.

    Sharp: the split/PL ratio is about 1.09 for these settings, with Monte Carlo error ~1%.
    """
    print(f"\nasymptotic covariance traces: {traces}")
    assert traces["kwise_split"] > 1.03 * traces["kwise_pl"]
    assert traces["pairs"] > 3 * traces["kwise_pl"]  # a ranking of 4 is worth more than 3 pairs here


def test_plackett_luce_is_at_least_as_accurate_as_split_pairs(lm: ModuleType) -> None:
    """Mean squared error of the K = 4 MLE vs the split-pairs estimate on the same rankings (24 seeds, n = 1000).

    Asymptotically (Fisher information against the sandwich covariance of the pairwise
    pseudo-likelihood) the ratio MSE(split) / MSE(PL) is about 1.09 here; over 24 seeds its
    standard deviation is about 0.07, so the 10% tolerance below is ~3 sigma.
    """
    theta = lm.true_theta()
    squared_pl = squared_split = 0.0
    for seed in range(24):
        features, rankings = lm.simulate(1000, 4, theta, seed=100 + seed)
        squared_pl += float(np.sum((lm.fit(features, rankings) - theta) ** 2))
        squared_split += float(np.sum((lm.fit(*lm.split_into_pairs(features, rankings)) - theta) ** 2))
    ratio = squared_split / squared_pl
    print(f"\nMSE split pairs / MSE Plackett-Luce (K = 4, n = 1000, 24 seeds): {ratio:.3f}")
    assert ratio > 1 / 1.1


def test_split_into_pairs_lists_every_implied_comparison(lm: ModuleType) -> None:
    features = np.arange(2 * 3 * 1, dtype=float).reshape(2, 3, 1)  # clip j of query i has feature 3i + j
    rankings = np.array([[2, 0, 1], [0, 1, 2]])
    pairs, order = lm.split_into_pairs(features, rankings)
    assert pairs[..., 0].tolist() == [[2, 0], [2, 1], [0, 1], [3, 4], [3, 5], [4, 5]]
    assert order.tolist() == [[0, 1]] * 6
