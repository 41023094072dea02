"""The shared state of the browser teacher: queries on the board, their clips, the answers.

Three threads meet here: the training loop (asks, collects answers), the render worker
(publishes clips) and the web server (shows the board, submits answers). Every method
takes the one lock; waiting uses its condition, so that a person's answer or a newly
rendered clip wakes the waiting side at once instead of on the next poll.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teachers.contract import Answer, Query, validate_answer

TEACHER_NAME = "human"


class NotPending(LookupError):
    """An answer for a query that is not waiting for one (unknown, or answered already)."""

    def __init__(self, query_id: int, answered: bool) -> None:
        self.query_id = query_id
        self.answered = answered
        super().__init__(f"query {query_id} was answered already" if answered else f"no query {query_id} is pending")


@dataclass(frozen=True)
class ShownClip:
    """A rendered clip as the page shows it."""

    path: Path  #: the video file, written by the render worker
    steps: int  #: clip length H
    real_steps: int  #: steps before the episode terminated (== steps if it did not)
    start_step: int  #: global environment step of the first frame


@dataclass
class BoardItem:
    """One asked query and what became of it."""

    query: Query
    session: int
    asked_at: float
    clips: tuple[ShownClip, ...] | None = None  #: None while rendering
    ready_at: float | None = None  #: wall-clock time (time.time) the clips were published
    answer: Answer | None = None
    answered_at: float | None = None


@dataclass
class Progress:
    """Counts the page shows."""

    session: int = -1
    env_step: int = 0
    session_asked: int = 0
    session_answered: int = 0
    total_asked: int = 0
    total_answered: int = 0
    budget: int | None = None


@dataclass
class LabelBoard:
    """Thread-safe store of the browser teacher; see the module docstring."""

    budget: int | None = None
    log_path: Path | None = None  #: answers are appended here as JSON lines, one per answer
    items: dict[int, BoardItem] = field(default_factory=dict)
    version: int = 0  #: bumped on every change the page should see
    blocking: bool = False  #: the training loop is waiting for answers right now
    closed: bool = False
    error: str | None = None  #: why clips cannot be shown (the render worker failed)
    answer_log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: deque[tuple[int, Answer]] = deque()
        self.progress = Progress(budget=self.budget)

    # ------------------------------------------------------------ training loop side
    def ask(self, queries: Sequence[Query], session: int, env_step: int) -> None:
        """Put a session's queries on the board (clips follow via :meth:`publish`)."""
        now = time.time()
        with self._cond:
            p = self.progress
            if session != p.session:
                p.session, p.session_asked, p.session_answered = session, 0, 0
            p.env_step = env_step
            p.session_asked += len(queries)
            p.total_asked += len(queries)
            for query in queries:
                self.items[query.query_id] = BoardItem(query, session, now)
            self._changed()

    def take_answers(self) -> list[tuple[int, Answer]]:
        """Answers given since the last call, oldest first."""
        with self._cond:
            out = list(self._ready)
            self._ready.clear()
            return out

    def wait_for_answers(self, timeout: float) -> None:
        """Block until an answer is ready, the board fails or closes, or ``timeout`` seconds pass."""
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self.error or self.closed, timeout)

    def set_blocking(self, blocking: bool) -> None:
        with self._cond:
            if self.blocking != blocking:
                self.blocking = blocking
                self._changed()

    # ------------------------------------------------------------ render worker side
    def publish(self, query_id: int, clips: Sequence[ShownClip]) -> None:
        """The query's clips are written: show it."""
        with self._cond:
            item = self.items.get(query_id)
            if item is None:  # pragma: no cover - the worker renders only asked queries
                return
            item.clips = tuple(clips)
            item.ready_at = time.time()
            self._changed()

    def fail(self, message: str) -> None:
        """Rendering failed: the page and the training loop are told why."""
        with self._cond:
            self.error = message
            self._changed()

    # ------------------------------------------------------------ web server side
    def submit(self, query_id: int, answer: Answer) -> Answer:
        """Accept a person's answer for a pending query; raise :class:`NotPending` or ``TeacherError``."""
        with self._cond:
            item = self.items.get(query_id)
            if item is None or item.answer is not None:
                raise NotPending(query_id, item is not None)
            answer = validate_answer(answer, item.query, TEACHER_NAME)
            item.answer = answer
            item.answered_at = time.time()
            p = self.progress
            p.total_answered += 1
            if item.session == p.session:
                p.session_answered += 1
            record = {
                "query_id": query_id,
                "session": item.session,
                "kind": answer.kind,
                "ranking": list(answer.ranking),
                "asked_at": item.asked_at,
                "ready_at": item.ready_at,
                "answered_at": item.answered_at,
            }
            self.answer_log.append(record)
            if self.log_path is not None:
                # Written at once, so a person's work survives a crash of the run.
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with self.log_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
            self._ready.append((query_id, answer))
            self._changed()
            return answer

    def clip_path(self, query_id: int, index: int) -> Path | None:
        """The video of clip ``index`` of a query, if it has been rendered; else None."""
        with self._cond:
            item = self.items.get(query_id)
            if item is None or item.clips is None or not 0 <= index < len(item.clips):
                return None
            return item.clips[index].path

    def snapshot(self, since: int | None = None, timeout: float = 0.0) -> dict[str, Any]:
        """The page's view (pending queries, oldest first, and progress); with ``since``,
        wait up to ``timeout`` seconds for a version newer than ``since`` (long polling)."""
        with self._cond:
            if since is not None and timeout > 0:
                self._cond.wait_for(lambda: self.version != since or self.closed, timeout)
            pending = [item for item in self.items.values() if item.answer is None]
            p = self.progress
            return {
                "version": self.version,
                "session": p.session,
                "env_step": p.env_step,
                "session_asked": p.session_asked,
                "session_answered": p.session_answered,
                "total_asked": p.total_asked,
                "total_answered": p.total_answered,
                "budget": p.budget,
                "blocking": self.blocking,
                "closed": self.closed,
                "error": self.error,
                "rendering": sum(1 for item in pending if item.clips is None),
                "queries": [_query_view(item) for item in pending if item.clips is not None],
            }

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._cond.notify_all()


def _query_view(item: BoardItem) -> dict[str, Any]:
    assert item.clips is not None
    qid = item.query.query_id
    return {
        "id": qid,
        "session": item.session,
        "ready_at": item.ready_at,
        "clips": [
            {
                "url": f"/clips/{qid}/{i}.mp4",
                "steps": c.steps,
                "real_steps": c.real_steps,
                "start_step": c.start_step,
            }
            for i, c in enumerate(item.clips)
        ],
    }
