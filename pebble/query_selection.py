"""Which clips to show the teacher: the six query schemes of PEBBLE/B-Pref, for K >= 2 clips.

For a query of K clips each ensemble member m gives a first-choice distribution
p_m = softmax(scores_m) over the clips (for K = 2: (1 - P(1 > 0), P(1 > 0))).

* ``uniform``: random queries;
* ``disagreement``: the candidates with the largest std over members of p_m, averaged over
  the K clips (for K = 2: the std of P(1 > 0), as in the reference);
* ``entropy``: the largest mean over members of the entropy of p_m;
* ``kcenter``: greedy k-center on the flattened observations of the K clips, against the
  already-labelled queries and the picks so far;
* ``kcenter_disagreement`` / ``kcenter_entropy``: keep the top half of the candidates by
  disagreement / entropy, then k-center among them.

Informed schemes draw ``oversample`` times more candidates than they return. Each scheme is
one :class:`QuerySelector`; the candidate pool (:class:`~pebble.clips.ClipPool`) is separate
from the scoring rule, so a variant that changes where clips come from (QPA) or how they are
scored is one new class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import torch

from pebble.clips import ClipPool, Segments
from pebble.config import QUERY_SCHEMES, QueryScheme

#: (obs, act, mask, next_obs) -> (M, C, K) per-member clip scores
ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _first_choice(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(-1, keepdims=True)
    p = np.exp(shifted)
    return p / p.sum(-1, keepdims=True)


def disagreement(scores: np.ndarray) -> np.ndarray:
    """(M, C, K) member scores -> (C,) std over members of the first-choice probabilities."""
    return _first_choice(scores).std(0).mean(-1)


def entropy(scores: np.ndarray) -> np.ndarray:
    """(M, C, K) member scores -> (C,) mean over members of the first-choice entropy."""
    p = _first_choice(scores)
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(-1).mean(0)


def kcenter(features: np.ndarray, labelled: np.ndarray, count: int) -> np.ndarray:
    """Greedy k-center: indices of ``count`` rows of ``features`` (C, D) far from ``labelled`` and each other."""
    cand = torch.as_tensor(features, dtype=torch.float32)
    if len(labelled):
        ref = torch.as_tensor(labelled, dtype=torch.float32)
        nearest = torch.full((len(cand),), float("inf"))
        for start in range(0, len(ref), 4096):
            nearest = torch.minimum(nearest, torch.cdist(cand, ref[start : start + 4096]).min(1).values)
    else:
        nearest = torch.full((len(cand),), float("inf"))
    picks: list[int] = []
    for _ in range(min(count, len(cand))):
        i = int(torch.argmax(nearest)) if len(picks) or len(labelled) else 0
        picks.append(i)
        nearest = torch.minimum(nearest, torch.cdist(cand, cand[i : i + 1]).squeeze(1))
        nearest[i] = -1.0  # never pick twice
    return np.asarray(picks, dtype=np.int64)


class QuerySelector(ABC):
    """Chooses ``count`` queries of ``query_size`` clips from a pool of candidate clips."""

    @abstractmethod
    def select(self, pool: ClipPool, count: int, query_size: int, rng: np.random.Generator) -> Segments:
        """``count * query_size`` clips, query-major (clips ``i*K .. i*K+K-1`` form query i)."""


class UniformSelector(QuerySelector):
    """Random queries (the reference's ``uniform``; every run's first session)."""

    def select(self, pool: ClipPool, count: int, query_size: int, rng: np.random.Generator) -> Segments:
        return pool.sample(count * query_size, rng)


def _queries(clips: Segments, keep: np.ndarray, query_size: int) -> Segments:
    """The clips of candidate queries ``keep``, query-major."""
    return clips.take((keep[:, None] * query_size + np.arange(query_size)[None, :]).reshape(-1))


class ScoredSelector(QuerySelector):
    """Draws ``oversample`` times more candidate queries than asked and keeps the top ones by
    ``rule`` applied to the ensemble's clip scores (``disagreement`` or ``entropy``)."""

    def __init__(self, rule: Callable[[np.ndarray], np.ndarray], score_fn: ScoreFn, oversample: int) -> None:
        self.rule, self.score_fn, self.oversample = rule, score_fn, max(1, oversample)

    def candidates(self, pool: ClipPool, count: int, query_size: int, rng: np.random.Generator) -> Segments:
        """``count * oversample`` candidate queries."""
        return pool.sample(count * self.oversample * query_size, rng)

    def rank(self, clips: Segments, query_size: int) -> np.ndarray:
        """Candidate queries, best first."""
        assert clips.next_obs is not None  # buffer clips always carry them

        def grouped(a: np.ndarray) -> np.ndarray:
            return a.reshape(-1, query_size, *a.shape[1:])

        scores = self.score_fn(grouped(clips.obs), grouped(clips.actions), grouped(clips.mask), grouped(clips.next_obs))
        return np.argsort(-self.rule(scores), kind="stable")

    def select(self, pool: ClipPool, count: int, query_size: int, rng: np.random.Generator) -> Segments:
        clips = self.candidates(pool, count, query_size, rng)
        return _queries(clips, self.rank(clips, query_size)[:count], query_size)


class KCenterSelector(QuerySelector):
    """Greedy k-center over candidate queries, far from the labelled ones and from each other.

    With a ``base`` selector (``kcenter_disagreement``, ``kcenter_entropy``) the candidates are
    the base's and only its top half (at least ``count``) enters k-center, as imitation's
    active-selection fragmenter wraps a base fragmenter.
    """

    def __init__(
        self, labelled_features: Callable[[], np.ndarray], oversample: int, base: ScoredSelector | None = None
    ) -> None:
        self.labelled_features, self.oversample, self.base = labelled_features, max(1, oversample), base

    def select(self, pool: ClipPool, count: int, query_size: int, rng: np.random.Generator) -> Segments:
        candidates = count * self.oversample
        if self.base is None:
            clips = pool.sample(candidates * query_size, rng)
            keep = np.arange(candidates)
        else:
            clips = self.base.candidates(pool, count, query_size, rng)
            keep = self.base.rank(clips, query_size)[: max(count, candidates // 2)]
        features = clips.obs.reshape(candidates, query_size, -1)[keep].reshape(len(keep), -1)
        return _queries(clips, keep[kcenter(features, self.labelled_features(), count)], query_size)


def make_selector(
    scheme: QueryScheme, score_fn: ScoreFn, labelled_features: Callable[[], np.ndarray], oversample: int
) -> QuerySelector:
    """The selector of a ``--query-scheme`` name."""
    scored = {"disagreement": disagreement, "entropy": entropy}
    if scheme == "uniform":
        return UniformSelector()
    if scheme in scored:
        return ScoredSelector(scored[scheme], score_fn, oversample)
    if scheme == "kcenter":
        return KCenterSelector(labelled_features, oversample)
    if scheme.startswith("kcenter_") and scheme.removeprefix("kcenter_") in scored:
        base = ScoredSelector(scored[scheme.removeprefix("kcenter_")], score_fn, oversample)
        return KCenterSelector(labelled_features, oversample, base)
    raise ValueError(f"unknown query scheme {scheme!r}; choose one of {', '.join(QUERY_SCHEMES)}")
