"""When feedback sessions happen and how many queries each one asks.

Sessions happen at ``first_step``, then every ``num_interact`` env steps, while the run
lasts and budget remains. The budget counts *queries asked*: a skipped query costs the
teacher's attention as much as an answered one, so it counts (as in the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pebble.config import Config


@dataclass
class FeedbackSchedule:
    """Session steps and sizes; the last session is clipped to the remaining budget."""

    first_step: int
    num_interact: int
    total_steps: int
    max_feedback: int
    queries_per_session: int  # 0: spread the budget evenly over the sessions that fit
    kind: str  # constant, decay or increase

    @classmethod
    def of(cls, config: Config, total_steps: int | None = None) -> FeedbackSchedule:
        """The schedule a run's config describes (for ``total_steps``, default the config's):
        the first session right after the seed and pre-training steps."""
        pre, fb = config.pretrain, config.feedback
        total = config.total_steps if total_steps is None else total_steps
        return cls(pre.seed_steps + pre.unsup_steps, fb.num_interact, total, fb.max_feedback,
                   fb.queries_per_session, fb.schedule)  # fmt: skip

    def steps(self) -> list[int]:
        """Env steps at which sessions happen (before the budget is considered)."""
        return list(range(self.first_step, self.total_steps, self.num_interact))

    def sizes(self) -> list[int]:
        """Queries asked per session, aligned with :meth:`steps`; sums to at most ``max_feedback``."""
        n = len(self.steps())
        if n == 0:
            return []
        if self.kind == "decay":
            weights = np.arange(n, 0, -1, dtype=np.float64)
        elif self.kind == "increase":
            weights = np.arange(1, n + 1, dtype=np.float64)
        else:
            weights = np.ones(n)
        weights /= weights.mean()
        base = self.queries_per_session or self.max_feedback / n
        raw = base * weights
        sizes = np.floor(raw).astype(np.int64)
        if not self.queries_per_session:
            # Largest-remainder rounding so that the whole budget is used.
            short = self.max_feedback - int(sizes.sum())
            sizes[np.argsort(-(raw - sizes), kind="stable")[: max(0, short)]] += 1
        sizes = np.maximum(sizes, 1)
        out, left = [], self.max_feedback
        for size in sizes:
            take = int(min(size, left))
            out.append(take)
            left -= take
        return out

    def size_at(self, session: int, asked_so_far: int) -> int:
        """Queries for session ``session`` given what was already asked (never over budget)."""
        sizes = self.sizes()
        if session >= len(sizes):
            return 0
        return int(max(0, min(sizes[session], self.max_feedback - asked_so_far)))
