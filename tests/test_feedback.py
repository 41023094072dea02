"""Feedback collection: every answer is stored once, slow teachers' late answers count, bad answers are named."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from conftest import ACT_DIM, OBS_DIM, fill, make_buffer

from pebble.clips import sample_clips
from pebble.feedback import FeedbackCollector
from pebble.label_store import LabelStore
from pebble.labels import PreferenceDataset
from teachers.contract import Answer, Query, TeacherError, TeachingContext
from teachers.scripted import ScriptedTeacher

H = 5


def queries(collector: FeedbackCollector, count: int, rng: np.random.Generator) -> list[Query]:
    buffer = make_buffer(200)
    fill(buffer, [[20] * 8])
    return collector.make_queries(sample_clips(buffer, 2 * count, H, rng), 2)


def collector(teacher, tmp_path=None) -> FeedbackCollector:  # type: ignore[no-untyped-def]
    store = LabelStore(tmp_path / "labels.db" if tmp_path else LabelStore.MEMORY)
    dataset = PreferenceDataset(OBS_DIM, ACT_DIM, 2, H, next_state=True)
    return FeedbackCollector(teacher, dataset, np.random.default_rng(0), store)


class HalfNowHalfLater:
    """Answers the first half of each call's queries at once and the rest on the next call."""

    name = "slow"

    def __init__(self) -> None:
        self.held: list[Query] = []

    def answer(self, queries: Sequence[Query], context: TeachingContext) -> Iterator[tuple[int, Answer]]:
        for query in self.held:
            yield query.query_id, Answer.prefer(0)
        now = list(queries)[: len(queries) // 2]
        self.held = list(queries)[len(queries) // 2 :]
        for query in now:
            yield query.query_id, Answer.prefer(1)


def test_late_answers_become_labels_and_everything_lands_in_the_store_once(tmp_path, rng) -> None:
    c = collector(HalfNowHalfLater(), tmp_path)
    first = queries(c, 6, rng)
    assert len(c.ask(first, env_step=100, mean_step_reward=0.0)) == 3
    assert sorted(c.pending) == [q.query_id for q in first[3:]]
    second = queries(c, 4, rng)
    answered = c.ask(second, env_step=200, mean_step_reward=0.0)  # 3 late ones + 2 of this session
    assert len(answered) == 5 and len(c.pending) == 2
    assert c.collect_late_answers(env_step=300, mean_step_reward=0.0) == 2 and not c.pending
    assert c.counts.asked == 10 and c.counts.labelled == 10 == len(c.dataset)
    rows = list(c.store)  # type: ignore[union-attr]
    assert sorted(r.query.query_id for r in rows) == list(range(10))
    late = {r.query.query_id: r for r in rows}
    assert late[3].session == 1 and late[3].env_step == 200  # stored when it arrived, not when asked
    assert [q.query_id for q in first + second] == list(range(10))  # ids are unique within the run


def test_stored_answers_are_not_asked_again(tmp_path, rng) -> None:
    c = collector(ScriptedTeacher(), tmp_path)
    asked = queries(c, 4, rng)
    c.ask(asked, 0, 0.0)

    class Never:
        name = "never"

        def answer(self, queries, context):  # type: ignore[no-untyped-def]
            assert not queries, "a stored answer was asked again"
            return iter(())

    again = FeedbackCollector(Never(), PreferenceDataset(OBS_DIM, ACT_DIM, 2, H, True), np.random.default_rng(0),
                              LabelStore(tmp_path / "labels.db"))  # fmt: skip
    answers = again.ask(asked, 0, 0.0)  # as after a crash: same query ids
    assert {k: v.ranking for k, v in answers.items()} == {r.query.query_id: r.answer.ranking for r in c.store}  # type: ignore[union-attr]
    assert again.counts.labelled == 4 and len(again.store) == 4  # type: ignore[arg-type]


def test_skips_spend_budget_without_labels_and_equal_answers_count(rng) -> None:
    class SkipOddEqualEven:
        name = "mixed"

        def answer(self, queries, context):  # type: ignore[no-untyped-def]
            for q in queries:
                yield q.query_id, Answer.skip() if q.query_id % 2 else Answer.equal()

    c = collector(SkipOddEqualEven())
    c.ask(queries(c, 6, rng), 0, 0.0)
    assert (c.counts.asked, c.counts.skipped, c.counts.equal, c.counts.labelled) == (6, 3, 3, 3)
    assert len(c.dataset) == 3 and bool(c.dataset.equal.all())


def test_the_oracle_always_agrees_with_the_true_return_and_a_bad_answer_is_named(rng) -> None:
    c = collector(ScriptedTeacher(name="oracle"))
    c.ask(queries(c, 8, rng), 0, 0.0)
    assert c.counts.oracle_agreement == [1.0] * 8

    class Liar:
        name = "liar"

        def answer(self, queries, context):  # type: ignore[no-untyped-def]
            yield 999, Answer.prefer(0)

    with pytest.raises(TeacherError, match="'liar' answered query 999, which is not pending"):
        collector(Liar()).ask(queries(c, 1, rng), 0, 0.0)


def test_state_dict_round_trip_continues_ids_counts_and_the_teacher_rng(rng) -> None:
    c = collector(ScriptedTeacher(beta=1.0))
    c.ask(queries(c, 3, rng), 0, 0.0)
    clone = collector(ScriptedTeacher(beta=1.0))
    clone.load_state_dict(c.state_dict())
    assert clone.counts == c.counts and clone.next_query_id == c.next_query_id == 3
    assert clone.rng.random() == c.rng.random()
