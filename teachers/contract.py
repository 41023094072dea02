"""The teacher contract: what a teacher is asked, and what it may answer.

A *query* holds K >= 2 clips (short, contiguous pieces of training episodes). A teacher
answers each query with one of:

* a ranking of the clips, best first (for K = 2: a preference);
* "equal": the clips are equally good (a soft, uniform target);
* "skip": the teacher cannot tell; the query yields no label.

Teachers may be slow (a person in a browser): :meth:`Teacher.answer` is an iterator that
yields ``(query_id, answer)`` pairs as the answers arrive, in any order, so that each one
can be stored the moment it exists. Queries a teacher never answers are simply left
unlabelled.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np


class TeacherError(ValueError):
    """A teacher gave an invalid answer (or could not be built); one-line message naming it."""


@dataclass(frozen=True)
class Clip:
    """A piece of one training episode, ``H`` steps long.

    Steps after the episode *terminated* are padding (``mask == False``): an absorbing
    state whose true and learned reward are both zero (docs/algorithm.md, "Termination").
    """

    observations: np.ndarray  #: (H, obs_dim), the observation each action was taken in
    actions: np.ndarray  #: (H, act_dim), as stored in the replay buffer (scaled to [-1, 1])
    true_rewards: np.ndarray  #: (H,), the environment's reward; 0 on padding
    mask: np.ndarray  #: (H,) bool, True on real steps
    env_index: int = 0  #: which environment copy produced the clip
    start_step: int = 0  #: global environment step at which the clip starts
    render_states: np.ndarray | None = None  #: optional (H, n) simulator states to render the clip
    #: optional (H, obs_dim), the observation each action led to (for rewards r(s, a, s'))
    next_observations: np.ndarray | None = None

    @property
    def length(self) -> int:
        return int(self.observations.shape[0])

    def true_return(self, gamma: float = 1.0) -> float:
        """Sum of true rewards; with ``gamma < 1`` step t of H is weighted gamma^(H-1-t)."""
        weights = gamma ** np.arange(self.length - 1, -1, -1, dtype=np.float64)
        return float(np.sum(weights * self.true_rewards * self.mask))


@dataclass(frozen=True)
class Query:
    """K >= 2 clips to compare. ``query_id`` is unique within a run."""

    query_id: int
    clips: tuple[Clip, ...]

    @property
    def size(self) -> int:
        return len(self.clips)


@dataclass(frozen=True)
class Answer:
    """A teacher's answer to one query."""

    kind: Literal["ranking", "equal", "skip"]
    ranking: tuple[int, ...] = field(default=())  #: clip indices, best first (kind == "ranking")

    @staticmethod
    def prefer(index: int, size: int = 2) -> Answer:
        """Clip ``index`` is best; for pairs this is the whole preference."""
        return Answer("ranking", (index,) + tuple(i for i in range(size) if i != index))

    @staticmethod
    def rank(order: Sequence[int] | np.ndarray) -> Answer:
        """Clips ``order[0]`` (best), ``order[1]``, ...; e.g. ``np.argsort(-scores)``."""
        return Answer("ranking", tuple(int(i) for i in order))

    @staticmethod
    def equal() -> Answer:
        return Answer("equal")

    @staticmethod
    def skip() -> Answer:
        return Answer("skip")


@dataclass(frozen=True)
class TeachingContext:
    """What a teacher may know about the run besides the query itself."""

    session: int  #: index of the feedback session (0-based)
    env_step: int  #: global environment step of the session
    rng: np.random.Generator  #: the only source of randomness a teacher should use (determinism)
    mean_step_reward: float = 0.0  #: mean true reward per step over recent training episodes


@runtime_checkable
class Teacher(Protocol):
    """Anything with a ``name`` and an ``answer`` method is a teacher."""

    name: str

    def answer(self, queries: Sequence[Query], context: TeachingContext) -> Iterator[tuple[int, Answer]]:
        """Yield ``(query_id, answer)`` for the queries, as the answers become available."""
        ...


def validate_answer(answer: object, query: Query, teacher: str) -> Answer:
    """Check an answer against its query; raise :class:`TeacherError` naming ``teacher``.

    A ranking must be a permutation of ``range(query.size)`` (a tuple, list or 1-D array of
    integers, best first); the returned answer holds it as a tuple of Python ``int``.
    """
    if not isinstance(answer, Answer):
        raise TeacherError(f"teacher {teacher!r} answered query {query.query_id} with {answer!r}, not an Answer")
    if answer.kind in ("equal", "skip"):
        carried = answer.ranking.size if isinstance(answer.ranking, np.ndarray) else answer.ranking
        if carried:
            raise TeacherError(f"teacher {teacher!r}: an {answer.kind!r} answer carries no ranking")
        return Answer(answer.kind)
    if answer.kind != "ranking":
        raise TeacherError(f"teacher {teacher!r} gave unknown answer kind {answer.kind!r}")
    if not isinstance(answer.ranking, (tuple, list, np.ndarray)):
        raise TeacherError(
            f"teacher {teacher!r} ranked query {query.query_id} with {answer.ranking!r}, not a sequence of clip indices"
        )
    ranking = tuple(answer.ranking)
    for item in ranking:
        if isinstance(item, (float, np.floating)) and not math.isfinite(float(item)):
            raise TeacherError(f"teacher {teacher!r} ranked query {query.query_id} with a non-finite value {item}")
        if not isinstance(item, (int, np.integer)) or isinstance(item, bool):
            raise TeacherError(f"teacher {teacher!r} ranked query {query.query_id} with non-integer {item!r}")
    if len(ranking) != query.size:
        raise TeacherError(
            f"teacher {teacher!r} ranked {len(ranking)} clips of query {query.query_id}, which has {query.size}"
        )
    if any(not 0 <= i < query.size for i in ranking):
        raise TeacherError(f"teacher {teacher!r} ranked query {query.query_id} with out-of-range index in {ranking}")
    if len(set(ranking)) != len(ranking):
        raise TeacherError(f"teacher {teacher!r} ranked query {query.query_id} with duplicates {ranking}")
    return Answer("ranking", tuple(int(i) for i in ranking))
