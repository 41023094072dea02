"""Feedback: asking the teacher, and keeping every answer (imitation's "gatherer").

:class:`FeedbackCollector` turns selected clips into :class:`~teachers.contract.Query`
objects, asks the teacher, validates each answer and stores it the moment it arrives: first
in the durable label store (``labels.db``), then in the training labels. It tracks queries
asked but not answered yet (a person with ``--no-human-wait`` may answer them during a
later session; they become labels when they arrive) and counts what the budget has bought.

The budget counts *queries asked*: a skipped query costs the teacher's attention as much as
an answered one, so it counts (as in the reference).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pebble.clips import Segments
from pebble.faults import crash_point
from pebble.label_store import LabelStore
from pebble.labels import PreferenceDataset
from pebble.timing import Timings
from teachers.contract import Answer, Query, Teacher, TeacherError, TeachingContext, validate_answer


@dataclass
class FeedbackCounts:
    """Running totals of the feedback given so far."""

    sessions: int = 0
    asked: int = 0
    labelled: int = 0
    skipped: int = 0
    equal: int = 0
    #: per ranked answer, 1.0 if its first choice has the highest true return
    oracle_agreement: list[float] = field(default_factory=list)


def teacher_name(teacher: Teacher) -> str:
    """The name a teacher is recorded under."""
    return getattr(teacher, "name", type(teacher).__name__)


class FeedbackCollector:
    """Asks the teacher and streams its answers into the label store and the training labels."""

    def __init__(
        self,
        teacher: Teacher,
        dataset: PreferenceDataset,
        rng: np.random.Generator,
        store: LabelStore | None = None,
        timings: Timings | None = None,
    ) -> None:
        self.teacher = teacher
        self.dataset = dataset
        self.rng = rng  # the teacher's only source of randomness (TeachingContext.rng)
        self.store = store
        self.timings = timings if timings is not None else Timings()
        self.counts = FeedbackCounts()
        self.next_query_id = 0
        self.pending: dict[int, Query] = {}
        self._env_step = 0

    @property
    def teacher_name(self) -> str:
        return teacher_name(self.teacher)

    def make_queries(self, clips: Segments, query_size: int) -> list[Query]:
        """Consecutive groups of ``query_size`` clips, each with a new query id."""
        queries = []
        for start in range(0, len(clips), query_size):
            queries.append(Query(self.next_query_id, tuple(clips.clip(i) for i in range(start, start + query_size))))
            self.next_query_id += 1
        return queries

    def ask(self, queries: list[Query], env_step: int, mean_step_reward: float) -> dict[int, Answer]:
        """Ask the teacher about ``queries`` (one session); returns this call's answers.

        A query answered before a crash or restart is never asked again: its stored answer
        is used. If the resumed run did not reproduce the same clips (an environment that
        cannot be restored mid-episode), the stored label still counts and takes this
        query's place in the budget.
        """
        with self.timings.measure("teacher"):
            return self._ask(queries, env_step, mean_step_reward)

    def _ask(self, queries: list[Query], env_step: int, mean_step_reward: float) -> dict[int, Answer]:
        session = self.counts.sessions
        self.counts.sessions += 1
        self.counts.asked += len(queries)
        self._env_step = env_step
        answers: dict[int, Answer] = {}
        to_ask = []
        for query in queries:
            stored = self.store.get(query.query_id) if self.store is not None else None
            if stored is None:
                self.pending[query.query_id] = query
                to_ask.append(query)
            else:
                self.record(stored.query, stored.answer, durable=False)
                answers[query.query_id] = stored.answer
        if to_ask:
            context = TeachingContext(session, env_step, self.rng, mean_step_reward)
            answers.update(self._take_answers(to_ask, context))
        return answers

    def skip_session(self) -> None:
        """Count a session that asks nothing (its budget share is spent)."""
        self.counts.sessions += 1

    def collect_late_answers(self, env_step: int, mean_step_reward: float) -> int:
        """Store answers a slow teacher gave after the last session; returns how many."""
        if not self.pending:
            return 0
        self._env_step = env_step
        context = TeachingContext(self.counts.sessions, env_step, self.rng, mean_step_reward)
        return len(self._take_answers([], context))

    def _take_answers(self, queries: list[Query], context: TeachingContext) -> dict[int, Answer]:
        """Validate and store each answer the moment the teacher yields it; the teacher may
        also answer queries pending from earlier calls."""
        answers: dict[int, Answer] = {}
        for query_id, raw in self.teacher.answer(queries, context):
            found = self.pending.pop(query_id, None)
            if found is None:
                raise TeacherError(f"teacher {self.teacher_name!r} answered query {query_id!r}, which is not pending")
            answer = validate_answer(raw, found, self.teacher_name)
            self.record(found, answer)
            crash_point("answer_stored")
            answers[query_id] = answer
        return answers

    def record(self, query: Query, answer: Answer, durable: bool = True) -> None:
        """Count one answer, commit it to the label store, and add it to the training labels."""
        if durable and self.store is not None:
            self.store.add(query, answer, self.teacher_name, self.counts.sessions - 1, self._env_step)
        if answer.kind == "skip":
            self.counts.skipped += 1
            return
        if answer.kind == "equal":
            self.counts.equal += 1
        else:
            returns = [c.true_return() for c in query.clips]
            self.counts.oracle_agreement.append(float(returns[answer.ranking[0]] == max(returns)))
        self.dataset.add(query, answer)
        self.counts.labelled += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "counts": dataclasses.asdict(self.counts),
            "next_query_id": self.next_query_id,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts = FeedbackCounts(**state["counts"])
        self.next_query_id = state["next_query_id"]
        self.rng.bit_generator.state = state["rng"]
