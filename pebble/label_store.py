"""The durable label store: every answer, written the moment it arrives.

A run's labels live in ``RUN_DIR/labels.db``, an SQLite database (standard library,
transactional, one file). Each answer is one committed transaction, so a ``kill -9`` at
any moment loses at most the answer being written. The store is also a dataset: it keeps
everything needed to retrain a reward model without the run (the clips' observations,
actions, true rewards and masks) plus who answered, when, and in which session.

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    meta(key TEXT PRIMARY KEY, value TEXT)        -- env, obs_dim, act_dim, query_size, segment_length
    answers(query_id INTEGER PRIMARY KEY,          -- unique within the run
            kind TEXT,                             -- 'ranking', 'equal' or 'skip'
            ranking TEXT,                          -- JSON list of clip indices, best first
            teacher TEXT, session INTEGER, env_step INTEGER, wall_time REAL,
            obs BLOB, actions BLOB, true_rewards BLOB, mask BLOB,   -- (K, H, .) float32 / bool
            clip_meta TEXT,                        -- JSON: env index and start step of each clip
            next_obs BLOB)                         -- (K, H, obs_dim) float32 or NULL (version 2)

Version 1 stores (without ``next_obs``) are upgraded in place when opened for writing and
read as they are otherwise; their clips have no next observations.

Read it from any language with SQLite; :func:`read_labels` gives NumPy arrays.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teachers.contract import Answer, Clip, Query

SCHEMA_VERSION = 2


class LabelStoreError(ValueError):
    """A label store that cannot be used (corrupted, incompatible); one-line message."""


def _blob(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _array(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


@dataclass(frozen=True)
class StoredAnswer:
    """One row of the store: the query (rebuilt from its clips) and its answer."""

    query: Query
    answer: Answer
    teacher: str
    session: int
    env_step: int
    wall_time: float


class LabelStore:
    """Append-only SQLite store of answered queries (``path=":memory:"``: kept in memory only)."""

    MEMORY = ":memory:"

    def __init__(self, path: str | Path, meta: dict[str, object] | None = None, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise LabelStoreError(f"label store {self.path} does not exist")
        uri = f"file:{self.path}?mode=ro" if read_only else str(path)
        try:
            self.db = sqlite3.connect(uri, uri=read_only, isolation_level=None)
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and not read_only:
                self._create()
            elif version == 1 and not read_only:
                self.db.executescript(
                    "BEGIN; ALTER TABLE answers ADD COLUMN next_obs BLOB; PRAGMA user_version = 2; COMMIT;"
                )
            elif version not in (1, SCHEMA_VERSION):
                raise LabelStoreError(
                    f"label store {self.path} has schema version {version}, expected {SCHEMA_VERSION}"
                )
            self.db.execute("SELECT COUNT(*) FROM answers").fetchone()
        except sqlite3.DatabaseError as exc:
            raise LabelStoreError(f"label store {self.path} is corrupted or not a label store ({exc})") from None
        if meta is not None:
            self._check_meta(meta)

    def _create(self) -> None:
        self.db.executescript(
            """
            BEGIN;
            CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE answers(
                query_id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('ranking', 'equal', 'skip')),
                ranking TEXT NOT NULL,
                teacher TEXT NOT NULL,
                session INTEGER NOT NULL,
                env_step INTEGER NOT NULL,
                wall_time REAL NOT NULL,
                obs BLOB NOT NULL,
                actions BLOB NOT NULL,
                true_rewards BLOB NOT NULL,
                mask BLOB NOT NULL,
                clip_meta TEXT NOT NULL,
                next_obs BLOB
            );
            PRAGMA user_version = 2;
            COMMIT;
            """
        )
        # WAL: a writer never blocks readers (e.g. an analysis notebook), and a crash
        # mid-write leaves the last committed answer intact.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")

    def _check_meta(self, meta: dict[str, object]) -> None:
        stored = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if not stored:
            with self.db:
                self.db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            return
        for key, value in meta.items():
            if key in stored and json.loads(stored[key]) != value:
                raise LabelStoreError(
                    f"label store {self.path} holds {key}={json.loads(stored[key])!r}, this run has {value!r}"
                )

    @property
    def meta(self) -> dict[str, object]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def add(self, query: Query, answer: Answer, teacher: str, session: int, env_step: int) -> None:
        """Commit one answer (a skip too: it spent budget and must not be asked again)."""
        clips = query.clips
        self.db.execute(
            "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                query.query_id,
                answer.kind,
                json.dumps(list(answer.ranking)),
                teacher,
                session,
                env_step,
                time.time(),
                _blob(np.stack([c.observations for c in clips]).astype(np.float32)),
                _blob(np.stack([c.actions for c in clips]).astype(np.float32)),
                _blob(np.stack([c.true_rewards for c in clips]).astype(np.float32)),
                _blob(np.stack([c.mask for c in clips]).astype(bool)),
                json.dumps([{"env_index": c.env_index, "start_step": c.start_step} for c in clips]),
                None
                if any(c.next_observations is None for c in clips)
                else _blob(np.stack([c.next_observations for c in clips]).astype(np.float32)),  # type: ignore[misc]
            ),
        )

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def answered_ids(self) -> set[int]:
        return {row[0] for row in self.db.execute("SELECT query_id FROM answers")}

    def get(self, query_id: int) -> StoredAnswer | None:
        row = self.db.execute("SELECT * FROM answers WHERE query_id = ?", (query_id,)).fetchone()
        return None if row is None else _decode(row)

    def __iter__(self) -> Iterator[StoredAnswer]:
        try:
            for row in self.db.execute("SELECT * FROM answers ORDER BY query_id"):
                yield _decode(row)
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise LabelStoreError(f"label store {self.path} has an unreadable row ({exc})") from None

    def backup(self, path: str | Path) -> None:
        """Copy the whole store, consistently, to a new file ``path`` (SQLite's online backup)."""
        target = sqlite3.connect(str(path))
        try:
            self.db.backup(target)
        finally:
            target.close()

    def close(self) -> None:
        self.db.close()


def _decode(row: tuple) -> StoredAnswer:
    query_id, kind, ranking, teacher, session, env_step, wall_time, obs, act, true, mask, clip_meta = row[:12]
    nxt = _array(row[12]) if len(row) > 12 and row[12] is not None else None  # version 1 rows have none
    obs, act, true, mask = _array(obs), _array(act), _array(true), _array(mask)
    metas = json.loads(clip_meta)
    clips = tuple(
        Clip(
            obs[i],
            act[i],
            true[i],
            mask[i],
            int(m["env_index"]),
            int(m["start_step"]),
            next_observations=None if nxt is None else nxt[i],
        )
        for i, m in enumerate(metas)
    )
    answer = Answer(kind, tuple(json.loads(ranking)))
    return StoredAnswer(Query(int(query_id), clips), answer, teacher, int(session), int(env_step), float(wall_time))


def require_next_states(queries: Iterable[Query], source: str) -> None:
    """Refuse labels whose clips have no next observations (rows of a version 1 store), which
    a reward r(s, a, s') needs; ``source`` names them in the one-line message."""
    if any(clip.next_observations is None for query in queries for clip in query.clips):
        raise LabelStoreError(
            f"{source}: its clips carry no next observations (stored by an older pebble), "
            "which a reward r(s, a, s') needs: add --no-reward-next-state"
        )


def read_labels(path: str | Path) -> dict[str, np.ndarray]:
    """The store as arrays: obs (N, K, H, d), actions, true_rewards, mask, rankings (N, K), kind (N,)."""
    store = LabelStore(path, read_only=True)
    rows = list(store)
    store.close()
    labelled = [r for r in rows if r.answer.kind != "skip"]
    if not labelled:
        return {"kind": np.array([r.answer.kind for r in rows])}
    return {
        "obs": np.stack([np.stack([c.observations for c in r.query.clips]) for r in labelled]),
        "actions": np.stack([np.stack([c.actions for c in r.query.clips]) for r in labelled]),
        "true_rewards": np.stack([np.stack([c.true_rewards for c in r.query.clips]) for r in labelled]),
        "mask": np.stack([np.stack([c.mask for c in r.query.clips]) for r in labelled]),
        "rankings": np.array(
            [r.answer.ranking if r.answer.kind == "ranking" else range(r.query.size) for r in labelled]
        ),
        "kind": np.array([r.answer.kind for r in labelled]),
    }
