"""Query selectors: shapes, informed selection picks what it claims, k-center spreads out and composes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import fill, make_buffer

from pebble.clips import BufferClipPool
from pebble.config import QUERY_SCHEMES
from pebble.query_selection import (
    KCenterSelector,
    ScoredSelector,
    UniformSelector,
    disagreement,
    entropy,
    kcenter,
    make_selector,
)


def score_by_obs(obs: np.ndarray, act: np.ndarray, mask: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """Members disagree in proportion to the clips' first observation coordinate."""
    first = obs[..., 0, 0]  # (C, K)
    return np.stack([first * 0.0, first * 0.01, -first * 0.01])


@pytest.mark.parametrize("scheme", QUERY_SCHEMES)
@pytest.mark.parametrize("k", [2, 3])
def test_every_scheme_returns_count_queries(scheme: str, k: int, rng: np.random.Generator) -> None:
    buffer = make_buffer(500)
    fill(buffer, [[40] * 10])
    selector = make_selector(scheme, score_by_obs, lambda: np.zeros((0, k * 8 * 3)), 5)  # type: ignore[arg-type]
    clips = selector.select(BufferClipPool(buffer, 8), 7, k, rng)
    assert clips.obs.shape == (7 * k, 8, 3)


def test_every_configurable_scheme_has_a_selector_and_others_are_refused() -> None:
    kinds = {name: type(make_selector(name, score_by_obs, lambda: np.zeros((0, 0)), 3)) for name in QUERY_SCHEMES}
    assert kinds["uniform"] is UniformSelector and kinds["entropy"] is ScoredSelector
    assert kinds["kcenter_disagreement"] is KCenterSelector
    with pytest.raises(ValueError, match="unknown query scheme"):
        make_selector("kcenter_uniform", score_by_obs, lambda: np.zeros((0, 0)), 3)  # type: ignore[arg-type]


def disputes(clips, k: int = 2) -> np.ndarray:  # type: ignore[no-untyped-def]
    return disagreement(score_by_obs(clips.obs.reshape(-1, k, 8, 3), None, None, None))  # type: ignore[arg-type]


def test_disagreement_selects_the_most_disputed(rng: np.random.Generator) -> None:
    buffer = make_buffer(500)
    fill(buffer, [[40] * 10])
    selector = ScoredSelector(disagreement, score_by_obs, oversample=10)
    chosen = disputes(selector.select(BufferClipPool(buffer, 8), 5, 2, rng))
    typical = disputes(UniformSelector().select(BufferClipPool(buffer, 8), 1000, 2, np.random.default_rng(1)))
    assert chosen.min() > np.median(typical)


def test_kcenter_on_a_base_selector_keeps_the_bases_top_half_and_spreads_within_it(rng: np.random.Generator) -> None:
    buffer = make_buffer(500)
    fill(buffer, [[40] * 10])
    pool = BufferClipPool(buffer, 8)
    base = ScoredSelector(disagreement, score_by_obs, oversample=10)
    clips = KCenterSelector(lambda: np.zeros((0, 2 * 8 * 3)), 10, base).select(pool, 6, 2, np.random.default_rng(5))
    # the same draw of candidates, ranked by the base: every pick lies in its top half
    candidates = base.candidates(pool, 6, 2, np.random.default_rng(5))
    top_half = candidates.take(np.concatenate([[2 * i, 2 * i + 1] for i in base.rank(candidates, 2)[:30]]))
    assert disputes(clips).min() >= disputes(top_half).min()
    picked = {tuple(row) for row in clips.obs.reshape(6, -1)}
    assert picked <= {tuple(row) for row in top_half.obs.reshape(30, -1)} and len(picked) == 6


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
