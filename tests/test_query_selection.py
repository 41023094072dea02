"""Query schemes: shapes, informed selection picks what it claims, k-center spreads out."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import fill, make_buffer

from pebble.config import QUERY_SCHEMES
from pebble.query_selection import disagreement, entropy, kcenter, select_queries


def score_by_obs(obs: np.ndarray, act: np.ndarray, mask: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """Members disagree in proportion to the clips' first observation coordinate."""
    first = obs[..., 0, 0]  # (C, K)
    return np.stack([first * 0.0, first * 0.01, -first * 0.01])


@pytest.mark.parametrize("scheme", QUERY_SCHEMES)
@pytest.mark.parametrize("k", [2, 3])
def test_every_scheme_returns_count_queries(scheme: str, k: int, rng: np.random.Generator) -> None:
    buffer = make_buffer(500)
    fill(buffer, [[40] * 10])
    labelled = np.zeros((0, k * 8 * 3))
    clips = select_queries(scheme, buffer, 7, k, 8, 5, rng, score_by_obs, labelled)
    assert clips.obs.shape == (7 * k, 8, 3)


def test_disagreement_selects_the_most_disputed(rng: np.random.Generator) -> None:
    buffer = make_buffer(500)
    fill(buffer, [[40] * 10])
    clips = select_queries("disagreement", buffer, 5, 2, 8, 10, rng, score_by_obs, np.zeros((0, 0)))
    chosen = disagreement(score_by_obs(clips.obs.reshape(5, 2, 8, 3), None, None, None))  # type: ignore[arg-type]
    pool = buffer.sample_clips(2000, 8, np.random.default_rng(1))
    typical = disagreement(score_by_obs(pool.obs.reshape(1000, 2, 8, 3), None, None, None))  # type: ignore[arg-type]
    assert chosen.min() > np.median(typical)


def test_disagreement_and_entropy_for_pairs_match_the_reference_definitions() -> None:
    scores = np.random.default_rng(0).normal(size=(3, 6, 2))
    p1 = 1 / (1 + np.exp(scores[..., 0] - scores[..., 1]))  # P(clip 1 preferred), per member
    np.testing.assert_allclose(disagreement(scores), p1.std(0), rtol=1e-10)
    h = -(p1 * np.log(p1) + (1 - p1) * np.log(1 - p1))
    np.testing.assert_allclose(entropy(scores), h.mean(0), rtol=1e-10)


def test_kcenter_spreads_picks_and_avoids_labelled() -> None:
    points = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [10.0]])
    picks = kcenter(points, labelled=np.array([[0.05]]), count=2)
    assert set(picks.tolist()) == {5, 3} or set(picks.tolist()) == {5, 4}
    assert len(set(kcenter(points, np.zeros((0, 1)), 6).tolist())) == 6
