"""The labelling page: a small Flask app served by werkzeug from a background thread.

Security model: the page is for one person, on this machine unless ``--host`` says otherwise.
Every request must carry the run's random token (``?token=`` for the page and the videos,
the ``X-Pebble-Token`` header or a JSON ``token`` field for answers); without it the answer
is 403, whatever the path. Answers change state and are POST-only, JSON-only. Videos are
looked up by (query id, clip index) among the clips this run rendered: no part of a
request's path reaches the filesystem.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import threading
from importlib import resources
from typing import Any

from flask import Flask, Response, abort, jsonify, request, send_file
from werkzeug.serving import (
    BaseWSGIServer,
    WSGIRequestHandler,
    get_sockaddr,
    make_server,
    select_address_family,
)

from teachers.contract import Answer, TeacherError
from teachers.human_board import LabelBoard, NotPending

#: Longest a long-polling ``/api/state`` request waits for a change (seconds).
LONG_POLL_SECONDS = 20.0
TOKEN_HEADER = "X-Pebble-Token"


def page_template() -> str:
    """The HTML of the page (``teachers/human_page.html``)."""
    return resources.files("teachers").joinpath("human_page.html").read_text(encoding="utf-8")


def create_app(board: LabelBoard, token: str) -> Flask:
    """The WSGI app of the page, its JSON API and the clip videos."""
    app = Flask("pebble-human-teacher")
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024  # an answer is a few bytes
    _guard(app, token)
    template = page_template()

    @app.get("/")
    def page() -> Response:
        return _page(template)

    @app.get("/api/state")
    def state() -> Response:
        since = request.args.get("since", type=int)
        return jsonify(board.snapshot(since, LONG_POLL_SECONDS if since is not None else 0.0))

    @app.post("/api/answer")
    def answer() -> tuple[Response, int] | Response:
        parsed = _parse_answer(request.get_json(silent=True))
        if isinstance(parsed, str):
            return _error(400, parsed)
        query_id, given = parsed
        try:
            accepted = board.submit(query_id, given)
        except NotPending as exc:
            return _error(409 if exc.answered else 404, str(exc))
        except TeacherError as exc:
            return _error(400, str(exc))
        return jsonify({"ok": True, "query_id": query_id, "kind": accepted.kind, "ranking": list(accepted.ranking)})

    @app.get("/clips/<int:query_id>/<int:index>.mp4")
    def clip(query_id: int, index: int) -> Response:
        path = board.clip_path(query_id, index)
        if path is None or not path.is_file():
            abort(404)
        response = send_file(path, mimetype="video/mp4", conditional=True, max_age=3600)
        response.headers["Cache-Control"] = "private, max-age=3600"  # a clip never changes
        return response

    return app


def _guard(app: Flask, token: str) -> None:
    """Every request needs the run's token; every response gets headers that keep it private."""

    def token_ok() -> bool:
        given = request.args.get("token") or request.headers.get(TOKEN_HEADER)
        if given is None and request.method == "POST":
            body = request.get_json(silent=True)
            given = body.get("token") if isinstance(body, dict) else None
        return isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode())

    @app.before_request
    def require_token() -> tuple[Response, int] | None:
        if not token_ok():
            return _error(403, "missing or wrong token: open the address that the run printed")
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        # The token is in the page's address: never send it on as a Referer.
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
        return response


def _page(template: str) -> Response:
    """The labelling page, its scripts and styles allowed by a fresh nonce only."""
    nonce = secrets.token_urlsafe(12)
    response = Response(template.replace("__NONCE__", nonce), mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "media-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return response


def _parse_answer(body: object) -> tuple[int, Answer] | str:
    """(query id, answer) from a POSTed JSON body, or what is wrong with it."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    query_id = body.get("query_id")
    if not isinstance(query_id, int) or isinstance(query_id, bool):
        return "query_id must be an integer"
    kind = body.get("kind")
    if kind not in ("ranking", "equal", "skip"):
        return "kind must be 'ranking', 'equal' or 'skip'"
    ranking = body.get("ranking", [])
    if not isinstance(ranking, list):
        return "ranking must be a list of clip indices, best first"
    return query_id, Answer(kind, tuple(ranking))


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"ok": False, "error": message}), status


class _QuietHandler(WSGIRequestHandler):
    """No access log: it would interleave with training output (and print tokens)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LabelServer:
    """Serves a WSGI app from a daemon thread; binds on :meth:`start`, stops on :meth:`stop`."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; raise ``OSError`` if the address cannot be bound."""
        # Bind here rather than in werkzeug: on a busy port werkzeug prints to stderr and calls
        # sys.exit(1), where the run should report one clear error instead.
        family = select_address_family(self.host, self.requested_port)
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(get_sockaddr(self.host, self.requested_port, family))
            sock.listen(64)
            # werkzeug duplicates the descriptor, so this one can be closed.
            self._server = make_server(
                self.host,
                self.requested_port,
                self.app,
                threaded=True,
                request_handler=_QuietHandler,
                fd=sock.fileno(),
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="pebble-label-server", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        assert self._server is not None, "not started"
        return int(self._server.port)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
