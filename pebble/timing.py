"""Seconds spent per part of a run (query selection, teacher, reward training, relabelling,
evaluation), summed over the run: ``summary.json``'s ``timings`` and ``time/*_seconds``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Timings(dict[str, float]):
    """Totals by part; one object is shared by the roles of a run."""

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        """Add the time the ``with`` block takes to ``name`` (nothing if it raises)."""
        tic = time.perf_counter()
        yield
        self[name] = self.get(name, 0.0) + time.perf_counter() - tic
