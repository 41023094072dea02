"""A person as teacher: label clips in the browser while the agent trains (``--teacher human``).

On the first :meth:`HumanTeacher.answer` call the teacher starts a small web server and
prints its address once; a background thread renders each query's clips to videos
(:mod:`pebble.render`), and the page shows them as soon as they are written. Each answer
is handed to the training loop the moment the person gives it.

With ``wait=True`` (the default) a session waits until every query of it is answered; with
``wait=False`` training goes on, and answers that arrive later are yielded at the next call
(with their old query ids: the loop keeps such queries pending).
"""

from __future__ import annotations

import queue
import secrets
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from teachers.contract import Answer, Query, TeacherError, TeachingContext
from teachers.human_board import LabelBoard, ShownClip
from teachers.human_web import LabelServer, create_app

#: How often a waiting session wakes up to notice Ctrl-C or a closed teacher (seconds).
WAIT_SLICE = 0.5


class _RenderWorker(threading.Thread):
    """Renders queued queries to videos, one after another, and publishes them on the board.

    One thread owns the renderer, because an OpenGL context is current in one thread only.
    """

    def __init__(self, board: LabelBoard, env_id: str, clip_dir: Path, width: int, height: int, fps: int) -> None:
        super().__init__(name="pebble-clip-renderer", daemon=True)
        self.board = board
        self.env_id = env_id
        self.clip_dir = clip_dir
        self.size = (width, height)
        self.fps = fps
        self.jobs: queue.Queue[Query | None] = queue.Queue()

    def run(self) -> None:
        from pebble.render import ClipRenderer, encode_video

        renderer = None
        try:
            while (query := self.jobs.get()) is not None:
                if self.board.error or self.board.closed:
                    continue  # drain the queue quickly: nobody will see these clips
                try:
                    if renderer is None:
                        renderer = ClipRenderer(self.env_id, *self.size)
                    shown = []
                    for i, clip in enumerate(query.clips):
                        path = self.clip_dir / f"q{query.query_id:06d}_{i}.mp4"
                        encode_video(renderer.frames(clip), path, self.fps)
                        mask = np.asarray(clip.mask, dtype=bool)
                        shown.append(ShownClip(path, clip.length, int(mask.sum()), clip.start_step))
                    self.board.publish(query.query_id, shown)
                except Exception as exc:  # told to the person and to the training loop
                    traceback.print_exc(file=sys.stderr)
                    self.board.fail(f"rendering query {query.query_id} failed: {exc}")
        finally:
            if renderer is not None:
                renderer.close()


class _Runtime:
    """Everything that runs in the background; closed by :meth:`HumanTeacher.close`, at exit,
    or when the teacher is garbage-collected (it holds no reference to the teacher)."""

    def __init__(self) -> None:
        self.server: LabelServer | None = None
        self.worker: _RenderWorker | None = None
        self.board: LabelBoard | None = None

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
            if self.server is not None:
                time.sleep(0.2)  # lets open pages' long polls answer "run finished" before the server goes
        if self.worker is not None:
            self.worker.jobs.put(None)
            self.worker.join(timeout=30)
        if self.server is not None:
            self.server.stop()


class HumanTeacher:
    """A person answers queries on a web page; see the module docstring.

    Args:
        env_id: the task, to render clips with.
        clip_dir: where clip videos (and ``answers.jsonl``, the log of answers) are written;
            created when the first clip is.
        host: address to bind; ``127.0.0.1`` keeps the page on this machine.
        port: port to bind; 0 picks a free one (see :attr:`port` and the printed address).
        width, height, fps: size and frame rate of the videos.
        wait: wait for every answer of a session (True) or let training go on (False).
        budget: total queries of the run, shown as progress (optional).
        print_fn: where the address is printed.
    """

    name = "human"
    #: Tells the run to record MuJoCo states with each step, so that clips can be rendered.
    needs_render_states = True

    def __init__(
        self,
        env_id: str,
        clip_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 8765,
        width: int = 320,
        height: int = 240,
        fps: int = 25,
        wait: bool = True,
        budget: int | None = None,
        print_fn: Callable[[str], None] = print,
    ) -> None:
        if not 0 <= int(port) <= 65535:
            raise TeacherError(f"human teacher: port must be in 0..65535, got {port}")
        if min(int(width), int(height), int(fps)) <= 0:
            raise TeacherError("human teacher: width, height and fps must be positive")
        self.env_id = env_id
        self.clip_dir = Path(clip_dir)
        self.host = host
        self.requested_port = int(port)
        self.width, self.height, self.fps = int(width), int(height), int(fps)
        self.wait = bool(wait)
        self.print = print_fn
        self.token = secrets.token_urlsafe(24)
        self.board = LabelBoard(
            budget=None if budget is None else int(budget), log_path=self.clip_dir / "answers.jsonl"
        )
        self._runtime = _Runtime()
        self._runtime.board = self.board
        self._closer = weakref.finalize(self, self._runtime.close)  # also runs at interpreter exit
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- contract
    def answer(self, queries: Sequence[Query], context: TeachingContext) -> Iterator[tuple[int, Answer]]:
        """Show the queries on the page; yield answers as the person gives them.

        Answers to queries of earlier calls that arrived since are yielded too.
        """
        self.start()
        worker = self._runtime.worker
        assert worker is not None
        self.board.ask(queries, context.session, context.env_step)
        for query in queries:
            worker.jobs.put(query)
        waiting = {q.query_id for q in queries}
        self.board.set_blocking(self.wait and bool(waiting))
        try:
            while True:
                for query_id, answer in self.board.take_answers():
                    waiting.discard(query_id)
                    yield query_id, answer
                if self.board.error:
                    raise TeacherError(f"human teacher: {self.board.error}")
                if not self.wait or not waiting:
                    return
                if self.board.closed:
                    raise TeacherError("human teacher: closed while waiting for answers")
                self.board.wait_for_answers(WAIT_SLICE)
        finally:
            self.board.set_blocking(False)

    # ------------------------------------------------------------------ server
    def start(self) -> None:
        """Bind the page and start the render worker (done by the first :meth:`answer`)."""
        with self._lock:
            if self._runtime.server is not None:
                return
            if not self._closer.alive:
                raise TeacherError("human teacher: already closed")
            server = LabelServer(create_app(self.board, self.token), self.host, self.requested_port)
            try:
                server.start()
            except OSError as exc:
                raise TeacherError(
                    f"human teacher: cannot serve the labelling page on {self.host}:{self.requested_port}: "
                    f"{exc.strerror or exc} (choose another --port, or --port 0 for any free one)"
                ) from None
            self._runtime.server = server
            worker = _RenderWorker(self.board, self.env_id, self.clip_dir, self.width, self.height, self.fps)
            worker.start()
            self._runtime.worker = worker
        self.print(f"[pebble] label clips in your browser: {self.url}")
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            self.print(f"[pebble] the page listens on {self.host}: anyone who has the address can label")

    @property
    def port(self) -> int | None:
        """The bound port, or None before the first :meth:`answer`."""
        server = self._runtime.server
        return None if server is None else server.port

    @property
    def url(self) -> str | None:
        """The page's address with its token, or None before the first :meth:`answer`."""
        if self.port is None:
            return None
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else "::1" if self.host == "::" else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/?token={self.token}"

    @property
    def answer_log(self) -> list[dict[str, Any]]:
        """Every answer the person gave, in order (also in ``clip_dir/answers.jsonl``)."""
        return list(self.board.answer_log)

    def close(self) -> None:
        """Stop the server and the render worker (idempotent)."""
        self._closer()

    def __enter__(self) -> HumanTeacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
