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

Informed schemes draw ``oversample`` times more candidates than they return.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pebble.buffer import PreferenceReplayBuffer, Segments

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


def select_queries(
    scheme: str,
    buffer: PreferenceReplayBuffer,
    count: int,
    query_size: int,
    segment_length: int,
    oversample: int,
    rng: np.random.Generator,
    score_fn: ScoreFn | None,
    labelled_features: np.ndarray,
    recent: int = 0,
) -> Segments:
    """``count`` queries of ``query_size`` clips; returns ``count * query_size`` clips, query-major.

    ``recent > 0`` draws clips (and candidates) from the last ``recent`` stored steps only.
    """
    if scheme == "uniform" or score_fn is None:
        return buffer.sample_clips(count * query_size, segment_length, rng, recent)
    candidates = count * max(1, oversample)
    clips = buffer.sample_clips(candidates * query_size, segment_length, rng, recent)
    shape = (candidates, query_size)

    def grouped(a: np.ndarray) -> np.ndarray:
        return a.reshape(*shape, *a.shape[1:])

    if scheme in ("kcenter",):
        keep = np.arange(candidates)
    else:
        assert clips.next_obs is not None  # buffer clips always carry them
        scores = score_fn(grouped(clips.obs), grouped(clips.actions), grouped(clips.mask), grouped(clips.next_obs))
        value = disagreement(scores) if scheme.endswith("disagreement") else entropy(scores)
        order = np.argsort(-value, kind="stable")
        keep = order[: max(count, candidates // 2)] if scheme.startswith("kcenter") else order[:count]
    if scheme.startswith("kcenter"):
        features = grouped(clips.obs)[keep].reshape(len(keep), -1)
        keep = keep[kcenter(features, labelled_features, count)]
    clip_index = (keep[:, None] * query_size + np.arange(query_size)[None, :]).reshape(-1)
    return clips.take(clip_index)
