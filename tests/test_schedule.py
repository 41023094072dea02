"""Feedback schedule: budget use, clipping, decay and increase."""

from __future__ import annotations

import pytest

from pebble.schedule import FeedbackSchedule


def test_auto_size_spends_the_whole_budget() -> None:
    s = FeedbackSchedule(10_000, 5000, 100_000, 1000, 0, "constant")
    assert s.steps() == list(range(10_000, 100_000, 5000))
    assert sum(s.sizes()) == 1000 and max(s.sizes()) - min(s.sizes()) <= 1


def test_explicit_size_last_session_clipped() -> None:
    s = FeedbackSchedule(1000, 1000, 100_000, 250, queries_per_session=60, kind="constant")
    assert s.sizes()[:5] == [60, 60, 60, 60, 10] and sum(s.sizes()) == 250
    assert s.size_at(4, 240) == 10 and s.size_at(5, 250) == 0


@pytest.mark.parametrize("kind", ["decay", "increase"])
def test_decay_and_increase(kind: str) -> None:
    sizes = FeedbackSchedule(0, 1000, 10_000, 550, queries_per_session=0, kind=kind).sizes()
    assert sum(sizes) == 550
    ordered = sorted(sizes, reverse=kind == "decay")
    assert sizes == ordered and sizes[0] != sizes[-1]
