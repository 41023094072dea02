"""Scripted teachers that judge clips by the true environment reward (B-Pref, Lee et al. 2021).

One class, :class:`ScriptedTeacher`, with the five B-Pref imperfections as combinable
parameters; :data:`PRESETS` names the B-Pref teachers. For each query, in this order:

1. **returns**: the undiscounted true return of each clip (padding after termination is 0);
2. **skip**: if every clip's return is below ``eps_skip * margin`` the query is skipped;
3. **label**: clips are ranked by their *myopic* returns (step t of H weighted
   ``gamma**(H-1-t)``): rationally (``beta = inf``; ties broken at random, not always to
   clip 0 as in the reference) or by sampling the Plackett-Luce model of
   ``beta * returns`` (for K = 2: Bernoulli(softmax(beta * [R0, R1])));
4. **mistake**: with probability ``eps_mistake`` the ranking is reversed (for K = 2 a flip);
5. **equal**: if all returns lie within ``eps_equal * |margin|`` of each other the answer
   is "equal".

``margin`` is ``H * mean true reward per step`` of recent training episodes, read from the
:class:`~teachers.contract.TeachingContext` at every session. Thresholds are multiplied by
``eps`` exactly once (the reference multiplies them twice after the first session).
Skip and equal compare undiscounted returns, in the units of the margin.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from teachers.contract import Answer, Query, TeacherError, TeachingContext


@dataclass
class ScriptedTeacher:
    """A B-Pref scripted teacher; all imperfections off gives the perfectly rational oracle."""

    beta: float = math.inf  #: Boltzmann rationality; inf = rational
    gamma: float = 1.0  #: myopic discount; 1 = not myopic
    eps_mistake: float = 0.0  #: probability of reversing the ranking
    eps_skip: float = 0.0  #: skip when every return < eps_skip * margin
    eps_equal: float = 0.0  #: "equal" when returns are within eps_equal * |margin|
    name: str = "scripted"

    def __post_init__(self) -> None:
        # Values may come from the command line as text (``--teacher-kwargs beta=inf``).
        for key in ("beta", "gamma", "eps_mistake", "eps_skip", "eps_equal"):
            value = getattr(self, key)
            try:
                setattr(self, key, float(value))
            except (TypeError, ValueError):
                raise TeacherError(f"teacher {self.name!r}: {key}={value!r} is not a number") from None
        checks = {
            "beta": self.beta >= 0,
            "gamma": 0 < self.gamma <= 1,
            "eps_mistake": 0 <= self.eps_mistake <= 1,
            "eps_skip": self.eps_skip >= 0,
            "eps_equal": self.eps_equal >= 0,
        }
        for key, ok in checks.items():
            value = getattr(self, key)
            if not ok or math.isnan(value):
                rule = {
                    "beta": "beta >= 0 (inf: perfectly rational; the reference's -1 is inf here)",
                    "gamma": "0 < gamma <= 1",
                    "eps_mistake": "0 <= eps_mistake <= 1",
                    "eps_skip": "eps_skip >= 0",
                    "eps_equal": "eps_equal >= 0",
                }[key]
                raise TeacherError(f"teacher {self.name!r}: invalid {key}={value!r}, need {rule}")

    def answer(self, queries: Sequence[Query], context: TeachingContext) -> Iterator[tuple[int, Answer]]:
        for query in queries:
            yield query.query_id, self.judge(query, context)

    def judge(self, query: Query, context: TeachingContext) -> Answer:
        """The answer to one query, drawing randomness from ``context.rng`` only."""
        rng = context.rng
        returns = np.array([clip.true_return() for clip in query.clips])
        margin = query.clips[0].length * context.mean_step_reward
        if self.eps_skip > 0 and np.max(returns) < self.eps_skip * margin:
            return Answer.skip()
        myopic = returns if self.gamma == 1.0 else np.array([c.true_return(self.gamma) for c in query.clips])
        ranking = self._rank(myopic, rng)
        if self.eps_mistake > 0 and rng.random() < self.eps_mistake:
            ranking = ranking[::-1]
        if self.eps_equal > 0 and np.ptp(returns) < self.eps_equal * abs(margin):
            return Answer.equal()
        return Answer.rank(ranking)

    def _rank(self, returns: np.ndarray, rng: np.random.Generator) -> list[int]:
        if math.isinf(self.beta):
            # Descending returns; ties broken by a random secondary key.
            order = np.lexsort((rng.random(returns.size), -returns))
        else:
            # Gumbel-max: sorting utilities + Gumbel noise samples a Plackett-Luce ranking.
            order = np.argsort(-(self.beta * returns + rng.gumbel(size=returns.size)), kind="stable")
        return [int(i) for i in order]


#: The B-Pref teachers with the benchmark's parameter values.
PRESETS: dict[str, dict[str, float]] = {
    "oracle": {},
    "noisy": {"beta": 1.0},
    "myopic": {"gamma": 0.9},
    "mistake": {"eps_mistake": 0.1},
    "skip": {"eps_skip": 0.1},
    "equal": {"eps_equal": 0.1},
}


def preset(name: str, /, **overrides: Any) -> ScriptedTeacher:
    """A named B-Pref teacher; keyword arguments override its parameters (``name`` included)."""
    if name not in PRESETS:
        raise TeacherError(f"unknown scripted teacher {name!r}; presets: {', '.join(PRESETS)}")
    return ScriptedTeacher(**{"name": name, **PRESETS[name], **overrides})
