"""A teacher that only cares about forward speed: a stand-in for a domain expert.

It judges clips from their observations alone (never from the reward): in Gymnasium's
MuJoCo locomotion tasks the forward (x) velocity of the torso is the first entry of
``qvel``, at a fixed index of the default v5 observation.

    pebble train --env HalfCheetah-v5 --teacher velocity_teacher:VelocityTeacher
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from teachers import Answer, Query, TeacherError, TeachingContext

#: Index of the forward velocity in the default v5 observations (qpos without x, then qvel).
VELOCITY_INDEX = {"HalfCheetah": 8, "Hopper": 5, "Walker2d": 8, "Swimmer": 3, "Ant": 13, "Humanoid": 22}


class VelocityTeacher:
    """Ranks clips by mean forward velocity, fastest first.

    Steps after a fall (padding, ``mask == False``) count as standing still. Clips whose
    mean velocities differ by less than ``tolerance`` (m/s) are "equal". ``env_id`` picks the
    observation index from :data:`VELOCITY_INDEX` (pebble passes the run's environment id to
    any teacher whose constructor has an ``env_id`` parameter); ``index`` sets it directly.
    """

    name = "velocity"

    def __init__(self, env_id: str | None = None, index: int | None = None, tolerance: float = 0.0) -> None:
        family = (env_id or "").split(":")[-1].split("-")[0]
        if index is None and family not in VELOCITY_INDEX:
            known = ", ".join(VELOCITY_INDEX)
            raise TeacherError(f"teacher 'velocity': pass env_id=ID ({known}) or index=N, got env_id={env_id!r}")
        self.index = int(VELOCITY_INDEX[family] if index is None else index)
        self.tolerance = float(tolerance)

    def answer(self, queries: Sequence[Query], context: TeachingContext) -> Iterator[tuple[int, Answer]]:
        for query in queries:
            yield query.query_id, self.judge(query, context)

    def judge(self, query: Query, context: TeachingContext) -> Answer:
        speed = np.array([self.mean_velocity(clip.observations, clip.mask) for clip in query.clips])
        if self.tolerance > 0 and np.ptp(speed) < self.tolerance:
            return Answer.equal()
        # Fastest first; exact ties broken at random, with the run's generator (reproducible).
        return Answer.rank(np.lexsort((context.rng.random(speed.size), -speed)))

    def mean_velocity(self, observations: np.ndarray, mask: np.ndarray) -> float:
        if observations.shape[-1] <= self.index:
            size = observations.shape[-1]
            raise TeacherError(f"teacher 'velocity': observations have {size} entries, no index {self.index}")
        return float(np.sum(observations[:, self.index] * mask) / len(mask))
