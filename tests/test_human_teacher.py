"""The browser teacher: rendering, the web API's security, and a person's clicks in a real browser.

The browser tests drive Debian's Chromium (``apt-get install -y chromium``) with Playwright
(``pip install playwright``; no browser download). They fail, never skip, when either is
missing, so that CI cannot pass without having run them.
"""

from __future__ import annotations

import gc
import http.client
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from envs.make import make_env
from pebble.render import ClipRenderer, encode_video, fell_frame, log_query_videos
from teachers.contract import Answer, Clip, Query, TeacherError, TeachingContext
from teachers.human import HumanTeacher

ROOT = Path(__file__).resolve().parent.parent
#: ``PEBBLE_RECORD_BENCH=1`` makes the browser run also write its latency figures and page
#: screenshot to bench/results (the figure in docs/browser.md).
RECORD = os.environ.get("PEBBLE_RECORD_BENCH") == "1"
BENCH_RESULTS = ROOT / "bench" / "results"
CHROMIUM = os.environ.get("PEBBLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SIZE = (64, 48)  # small videos: the unit tests are about plumbing, not looks


# ---------------------------------------------------------------------------- helpers
def hopper_clip(actions: float, steps: int, length: int | None = None, seed: int = 0) -> Clip:
    """A real Hopper clip with render states; ``length`` > real steps pads it like a termination."""
    env = make_env("Hopper-v5", seed=seed, record_render_state=True)
    env.reset(seed=seed)
    states = []
    for _ in range(steps):
        _, _, terminated, _, info = env.step(np.full(3, actions, np.float32))
        states.append(info["render_state"])
        if terminated:
            break
    env.close()
    real = len(states)
    length = length or real
    states += [np.zeros_like(states[0])] * (length - real)  # padding rows are never drawn
    mask = np.arange(length) < real
    return Clip(
        observations=np.zeros((length, 11)),
        actions=np.zeros((length, 3)),
        true_rewards=np.zeros(length),
        mask=mask,
        render_states=np.array(states),
    )


def make_queries(n: int, k: int, first_id: int = 0, length: int = 8) -> list[Query]:
    clips = [hopper_clip(0.3 * (i % 3) - 0.3, length, seed=i) for i in range(n * k)]
    return [Query(first_id + q, tuple(clips[q * k : (q + 1) * k])) for q in range(n)]


def context(session: int = 0, env_step: int = 100) -> TeachingContext:
    return TeachingContext(session=session, env_step=env_step, rng=np.random.default_rng(0))


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """A raw GET: the path is sent exactly as given (no client-side normalisation of ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def http_post(port: int, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, data, {"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw
    finally:
        conn.close()


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def load_bench_common() -> Any:
    """``bench/common.py`` (the benchmark scripts' helpers; bench is not a package)."""
    spec = importlib.util.spec_from_file_location("pebble_bench_common", ROOT / "bench" / "common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def teacher(tmp_path: Path) -> Iterator[HumanTeacher]:
    t = HumanTeacher("Hopper-v5", tmp_path / "clips", port=0, width=SIZE[0], height=SIZE[1], wait=False, budget=10)
    yield t
    t.close()


def started(t: HumanTeacher, queries: list[Query]) -> dict[str, Any]:
    """Ask (without waiting) and return the state once every query's clips are on the board."""
    assert list(t.answer(queries, context())) == []
    port = t.port
    assert port is not None

    def ready() -> dict[str, Any] | None:
        state = json.loads(http_get(port, f"/api/state?token={t.token}")[1])
        return state if len(state["queries"]) == len(queries) else None

    return wait_until(ready, 60, "clips to be rendered")


# ---------------------------------------------------------------------------- rendering
def test_render_frames_follow_the_clip_and_video_decodes(tmp_path: Path) -> None:
    clip = hopper_clip(1.0, 40, length=30)  # constant push: Hopper falls (terminates) after ~22 steps
    real = int(clip.mask.sum())
    assert 5 < real < 30, "the clip should end in a termination followed by padding"
    with ClipRenderer("Hopper-v5", 65, 48) as renderer:
        frames = renderer.frames(clip)
        assert renderer.width == 66  # rounded up to even for H.264
    assert frames.shape == (30, 48, 66, 3) and frames.dtype == np.uint8
    for t in range(real - 1):
        assert not np.array_equal(frames[t], frames[t + 1]), f"frames {t} and {t + 1} are identical"
    assert np.abs(frames[0].astype(int) - frames[real - 1]).mean() > 1.0
    for t in range(real, 30):  # padding: the last real frame, dimmed, with the red band
        np.testing.assert_array_equal(frames[t], fell_frame(frames[real - 1]))

    path = encode_video(frames, tmp_path / "clip.mp4", fps=25)
    assert path.read_bytes()[4:8] == b"ftyp"
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == 30
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert tuple(meta["size"]) == (66, 48) and meta["codec"] == "h264"
    decoded = [np.frombuffer(f, np.uint8).reshape(48, 66, 3) for f in reader]
    assert len(decoded) == 30
    for t in (0, real - 1, 29):  # lossy, but the same pictures
        assert np.abs(decoded[t].astype(int) - frames[t]).mean() < 8, t


def test_log_query_videos_writes_labelled_animations(tmp_path: Path) -> None:
    queries = make_queries(3, 2, length=6)
    answers = {0: Answer.prefer(1), 1: Answer.skip()}
    writer = SummaryWriter(str(tmp_path))
    assert log_query_videos(writer, "Hopper-v5", queries, answers, 500, *SIZE, fps=10) == 3
    writer.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    acc.Reload()
    tags = sorted(acc.Tags()["images"])
    assert tags == ["queries/q0_right", "queries/q1_skip", "queries/q2_unanswered"]
    event = acc.Images("queries/q0_right")[0]
    assert event.step == 500 and event.width == 2 * SIZE[0] + 4 and event.height == SIZE[1]
    gif = Image.open(io.BytesIO(event.encoded_image_string))
    assert gif.format == "GIF" and getattr(gif, "n_frames", 1) == 6


# ---------------------------------------------------------------------------- web API security
def test_requests_need_the_token(teacher: HumanTeacher) -> None:
    state = started(teacher, make_queries(1, 2))
    port = teacher.port
    assert port is not None
    clip_url = state["queries"][0]["clips"][0]["url"]
    assert http_get(port, f"/?token={teacher.token}")[0] == 200
    assert http_get(port, f"{clip_url}?token={teacher.token}")[0] == 200
    for path in ("/", "/api/state", clip_url, "/?token=wrong", f"{clip_url}?token=x", "/nothing-here", "/api/answer"):
        assert http_get(port, path)[0] == 403, path
    answer = {"query_id": 0, "kind": "skip"}
    assert http_post(port, "/api/answer", answer)[0] == 403
    assert http_post(port, "/api/answer", answer, {"X-Pebble-Token": "nope"})[0] == 403
    assert http_post(port, "/api/answer", {**answer, "token": teacher.token[:-1]})[0] == 403
    assert teacher.board.take_answers() == []
    # the token in the JSON body is as good as the header
    assert http_post(port, "/api/answer", {**answer, "token": teacher.token})[0] == 200
    assert teacher.answer_log[0]["kind"] == "skip"


def test_bad_answers_are_refused(teacher: HumanTeacher) -> None:
    started(teacher, make_queries(1, 2) + make_queries(1, 3, first_id=1))
    port = teacher.port
    assert port is not None
    token = {"X-Pebble-Token": teacher.token}
    bad = [
        {"query_id": 0, "kind": "ranking", "ranking": [0, 0]},
        {"query_id": 0, "kind": "ranking", "ranking": [0, 1, 2]},
        {"query_id": 0, "kind": "ranking", "ranking": [0, 2]},
        {"query_id": 0, "kind": "ranking", "ranking": [0.0, 1.0]},
        {"query_id": 0, "kind": "ranking", "ranking": [True, False]},
        {"query_id": 0, "kind": "ranking"},
        {"query_id": 0, "kind": "equal", "ranking": [0, 1]},
        {"query_id": 0, "kind": "best"},
        {"query_id": "0", "kind": "skip"},
        {"query_id": 1, "kind": "ranking", "ranking": [0, 1]},  # K = 3 needs the whole order
        [0, "skip"],
    ]
    for body in bad:
        status, reply = http_post(port, "/api/answer", body, token)
        assert status == 400, (body, status, reply)
    assert http_post(port, "/api/answer", b"{not json", token)[0] == 400
    assert http_post(port, "/api/answer", {"query_id": 99, "kind": "skip"}, token)[0] == 404  # never asked
    assert teacher.board.take_answers() == []
    assert http_post(port, "/api/answer", {"query_id": 1, "kind": "ranking", "ranking": [2, 0, 1]}, token)[0] == 200
    assert http_post(port, "/api/answer", {"query_id": 1, "kind": "skip"}, token)[0] == 409  # answered already
    assert teacher.board.take_answers() == [(1, Answer.rank([2, 0, 1]))]


def test_videos_are_served_only_by_id(teacher: HumanTeacher, tmp_path: Path) -> None:
    state = started(teacher, make_queries(1, 2))
    port = teacher.port
    assert port is not None
    t = f"?token={teacher.token}"
    (tmp_path / "secret.txt").write_text("secret")
    status, body = http_get(port, f"/clips/0/1.mp4{t}")
    assert status == 200 and body[4:8] == b"ftyp"
    assert state["queries"][0]["clips"][1]["url"] == "/clips/0/1.mp4"
    refused = [
        "/clips/0/2.mp4",  # no such clip
        "/clips/7/0.mp4",  # no such query
        "/clips/-1/0.mp4",
        "/clips/0/0.webm",
        "/clips/../secret.txt",
        "/clips/0/../../secret.txt",
        "/clips/0/..%2F..%2Fsecret.txt",
        "/clips/%2e%2e/%2e%2e/secret.txt",
        "/clips/0/0.mp4/../../../../etc/passwd",
        "/clips/q000000_0.mp4",
        "/clips/answers.jsonl",
    ]
    for path in refused:
        status, body = http_get(port, path + t)
        assert status == 404, (path, status)
        assert b"secret" not in body
    # a range request (what browsers send for video) gets part of the file
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/clips/0/0.mp4{t}", headers={"Range": "bytes=0-99"})
    response = conn.getresponse()
    assert response.status == 206 and len(response.read()) == 100
    conn.close()


def test_get_cannot_change_state(teacher: HumanTeacher) -> None:
    started(teacher, make_queries(1, 2))
    port = teacher.port
    assert port is not None
    version = teacher.board.version
    for path in (
        f"/api/answer?token={teacher.token}&query_id=0&kind=skip",
        f"/api/state?token={teacher.token}&query_id=0&kind=skip",
        f"/?token={teacher.token}&query_id=0&kind=equal",
    ):
        assert http_get(port, path)[0] in (200, 405), path
    assert http_get(port, f"/api/answer?token={teacher.token}&query_id=0&kind=skip")[0] == 405
    assert teacher.board.take_answers() == [] and teacher.answer_log == []
    assert teacher.board.version == version


def test_binds_locally_late_and_stops(tmp_path: Path) -> None:
    t = HumanTeacher("Hopper-v5", tmp_path / "clips", port=0, width=SIZE[0], height=SIZE[1], wait=False)
    assert t.port is None and t.url is None and not (tmp_path / "clips").exists()  # nothing until asked
    assert list(t.answer([], context())) == []
    port = t.port
    assert port is not None and t.url == f"http://127.0.0.1:{port}/?token={t.token}"
    assert t._runtime.server is not None and t._runtime.server._server is not None
    assert t._runtime.server._server.server_address[0] == "127.0.0.1"
    assert http_get(port, f"/?token={t.token}")[0] == 200
    t.close()
    with pytest.raises(OSError):
        http_get(port, "/")
    # garbage collection stops the server too
    t2 = HumanTeacher("Hopper-v5", tmp_path / "clips2", port=0, wait=False)
    list(t2.answer([], context()))
    port2 = t2.port
    assert port2 is not None and http_get(port2, f"/?token={t2.token}")[0] == 200
    del t2
    gc.collect()
    with pytest.raises(OSError):
        http_get(port2, "/")


def test_busy_port_and_unrenderable_clips_are_one_line_errors(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        t = HumanTeacher("Hopper-v5", tmp_path / "a", port=busy.getsockname()[1])
        with pytest.raises(TeacherError, match="cannot serve the labelling page .* --port 0"):
            list(t.answer([], context()))
        t.close()
    bare = hopper_clip(0.0, 4)
    bare = Clip(bare.observations, bare.actions, bare.true_rewards, bare.mask)  # no render states
    t = HumanTeacher("Hopper-v5", tmp_path / "b", port=0, wait=True)
    try:
        with pytest.raises(TeacherError, match="rendering query 3 failed: .*no render states"):
            list(t.answer([Query(3, (bare, bare))], context()))
        state = json.loads(http_get(t.port or 0, f"/api/state?token={t.token}")[1])
        assert "no render states" in state["error"]  # the page says so too
    finally:
        t.close()


def test_wait_false_yields_late_answers_at_the_next_call(teacher: HumanTeacher) -> None:
    first = make_queries(2, 2)
    started(teacher, first)
    port = teacher.port
    assert port is not None
    token = {"X-Pebble-Token": teacher.token}
    assert http_post(port, "/api/answer", {"query_id": 1, "kind": "equal"}, token)[0] == 200
    second = make_queries(1, 2, first_id=2)
    assert list(teacher.answer(second, context(session=1, env_step=300))) == [(1, Answer.equal())]
    state = json.loads(http_get(port, f"/api/state?token={teacher.token}")[1])
    assert (state["session"], state["session_asked"], state["session_answered"]) == (1, 1, 0)
    assert (state["total_asked"], state["total_answered"], state["budget"]) == (3, 1, 10)


def test_wait_true_blocks_until_every_query_is_answered(tmp_path: Path) -> None:
    t = HumanTeacher("Hopper-v5", tmp_path / "clips", port=0, width=SIZE[0], height=SIZE[1], wait=True)
    got: list[tuple[int, Answer]] = []
    thread = threading.Thread(target=lambda: got.extend(t.answer(make_queries(2, 2), context())), daemon=True)
    thread.start()
    try:
        wait_until(lambda: t.port, 30, "the server")
        port = t.port
        assert port is not None
        token = {"X-Pebble-Token": t.token}
        wait_until(lambda: t.board.blocking, 10, "the session to block")
        assert http_post(port, "/api/answer", {"query_id": 0, "kind": "ranking", "ranking": [1, 0]}, token)[0] == 200
        time.sleep(0.3)
        assert thread.is_alive() and got == [(0, Answer.prefer(1))]  # still waiting for query 1
        assert http_post(port, "/api/answer", {"query_id": 1, "kind": "skip"}, token)[0] == 200
        thread.join(10)
        assert not thread.is_alive() and got == [(0, Answer.prefer(1)), (1, Answer.skip())]
        assert not t.board.blocking
        lines = (tmp_path / "clips" / "answers.jsonl").read_text().splitlines()
        assert [json.loads(line)["kind"] for line in lines] == ["ranking", "skip"]
    finally:
        t.close()


# ---------------------------------------------------------------------------- a real browser
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's browser (apt-get install -y chromium) "
            "or set PEBBLE_CHROMIUM; the browser tests must not be skipped"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: pip install playwright (no browser download is needed)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def open_page(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1000, "height": 640})
    page.goto(url)
    return page


def save_screenshot(page: Any, path: Path) -> None:
    """A PNG of the page in 256 colours: small enough to commit."""
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def wait_for_query(page: Any, previous: int | None, timeout: float = 120) -> int:
    """Wait until a new query is on screen and all its videos play; return its id."""
    page.wait_for_function(
        """(previous) => {
            const p = window.pebble;
            if (p.current === null || p.current === previous || !p.playing[p.current]) return false;
            return [...document.querySelectorAll('#clips video')].every((v) => v.readyState >= 2 && !v.paused);
        }""",
        arg=previous,
        timeout=timeout * 1000,
    )
    return int(page.evaluate("window.pebble.current"))


def test_browser_ranks_three_clips(browser: Any, tmp_path: Path) -> None:
    t = HumanTeacher("Hopper-v5", tmp_path / "clips", port=0, width=SIZE[0], height=SIZE[1], wait=True)
    got: list[tuple[int, Answer]] = []
    thread = threading.Thread(target=lambda: got.extend(t.answer(make_queries(3, 3), context())), daemon=True)
    thread.start()
    try:
        url = wait_until(lambda: t.url, 30, "the server")
        page = open_page(browser, url)
        q = wait_for_query(page, None)
        assert page.locator("#clips video").count() == 3
        page.locator("#clips figure").nth(2).click()
        page.keyboard.press("1")  # clip 0 second; clip 1 is placed last by itself
        assert page.locator("#clips figure .rank").all_inner_texts() == ["2", "3", "1"]
        page.keyboard.press("Enter")
        q2 = wait_for_query(page, q)
        page.keyboard.press("e")
        q3 = wait_for_query(page, q2)
        page.locator("#clips figure").nth(1).click()
        page.locator("#clips figure").nth(1).click()  # a second click on the same clip changes nothing
        page.keyboard.press("Backspace")  # start over
        page.locator("#clips figure").nth(1).click()
        page.locator("#clips figure").nth(0).click()
        page.locator('button[data-action="submit"]').click()
        thread.join(30)
        assert not thread.is_alive()
        assert got == [(q, Answer.rank([2, 0, 1])), (q2, Answer.equal()), (q3, Answer.rank([1, 0, 2]))]
        page.wait_for_selector("#idle:not([hidden])")
        page.close()
    finally:
        t.close()


# What the person does with each query of the training run, in order: (how, expected answer).
PLAN = [
    ("click left clip", Answer.prefer(0)),
    ("key ArrowRight", Answer.prefer(1)),
    ("key e", Answer.equal()),
    ("key Space", Answer.skip()),
    ("click right button", Answer.prefer(1)),
    ("key 1", Answer.prefer(0)),
]
RUN = [
    "train", "--env", "Hopper-v5", "--teacher", "human", "--port", "0", "--total-steps", "800",
    "--seed-steps", "200", "--unsup-steps", "200", "--num-interact", "200", "--max-feedback", str(len(PLAN)),
    "--segment-length", "10", "--net-arch", "32", "--reward-hidden", "32", "--batch-size", "64",
    "--eval-freq", "0", "--threads", "1", "--render-width", "160", "--render-height", "120",
    "--teacher-kwargs", f"budget={len(PLAN)}",
]  # fmt: skip


def act(page: Any, how: str) -> None:
    verb, _, what = how.partition(" ")
    if verb == "key":
        page.keyboard.press(what)
    elif what == "left clip":
        page.locator("#clips figure").nth(0).click()
    elif what == "right button":
        page.locator('button[data-action="right"]').click()
    else:  # pragma: no cover
        raise ValueError(how)


def test_person_labels_a_training_run_in_the_browser(browser: Any, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code = "import sys; from pebble.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *RUN, "--run-dir", str(run_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "label clips in your browser" in line:
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert found.wait(180), "the run printed no address:\n" + "".join(lines)
        url = re.search(r"http://\S+/\?token=\S+", "".join(lines))
        assert url, "".join(lines)
        page = open_page(browser, url.group(0))
        shown: list[int] = []
        timings: list[dict[str, float]] = []
        previous_answer_at: float | None = None
        for i, (how, _) in enumerate(PLAN):
            q = wait_for_query(page, shown[-1] if shown else None)
            shown.append(q)
            state = page.evaluate("window.pebble.state")
            ready_at = next(item["ready_at"] for item in state["queries"] if item["id"] == q)
            playing_at = page.evaluate(f"window.pebble.playing[{q}]") / 1000
            sizes = page.evaluate("[...document.querySelectorAll('#clips video')].map(v => [v.videoWidth, v.duration])")
            assert [w for w, _ in sizes] == [160, 160] and all(abs(d - 10 / 25) < 0.05 for _, d in sizes)
            idle = previous_answer_at is None or ready_at >= previous_answer_at
            timings.append({"query": q, "ready_to_playing_s": playing_at - ready_at, "page_was_idle": idle})
            if previous_answer_at is not None and not idle:
                timings[-1]["answer_to_next_playing_s"] = playing_at - previous_answer_at
            if i == 0:
                # Let the session's other queries render, so that the next ones queue up behind this one.
                page.wait_for_function("() => window.pebble.state.queries.length === 3", timeout=60_000)
                page.wait_for_function("() => document.getElementById('queue').textContent === '2 more waiting'")
                header = page.locator("header").inner_text()
                assert "this session: 0/3 answered" in header and "3 of 6 (budget)" in header, header
                assert "training waits for your answers" in header
                save_screenshot(page, (BENCH_RESULTS if RECORD else tmp_path) / "human_teacher_page.png")
            act(page, how)
            previous_answer_at = time.time()
        assert proc.wait(timeout=240) == 0, "".join(lines)
        page.wait_for_selector("#closed:not([hidden])", timeout=10_000)
        page.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)

    # exactly the person's answers reached the run
    log = [json.loads(line) for line in (run_dir / "clips" / "answers.jsonl").read_text().splitlines()]
    assert [r["query_id"] for r in log] == shown == sorted(shown)
    assert [Answer(r["kind"], tuple(r["ranking"])) for r in log] == [answer for _, answer in PLAN]
    summary = json.loads((run_dir / "summary.json").read_text())
    skipped = sum(a.kind == "skip" for _, a in PLAN)
    assert summary["queries_asked"] == len(PLAN) and summary["labels"] == len(PLAN) - skipped
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    last = {tag: acc.Scalars(tag)[-1].value for tag in ("feedback/labels_used", "feedback/skipped", "feedback/equal")}
    assert last == {"feedback/labels_used": 5.0, "feedback/skipped": 1.0, "feedback/equal": 1.0}
    assert sorted(p.name for p in (run_dir / "clips").glob("*.mp4")) == [
        f"q{q:06d}_{i}.mp4" for q in shown for i in range(2)
    ]

    idle = [t["ready_to_playing_s"] for t in timings if t["page_was_idle"]]
    queued = [t["answer_to_next_playing_s"] for t in timings if "answer_to_next_playing_s" in t]
    assert idle, timings
    assert max(idle) < 5.0, timings  # generous: CI machines are busy
    if not RECORD:  # a plain test run leaves the committed benchmark files alone
        return
    write_result = load_bench_common().write_result
    write_result(
        "human_teacher_latency",
        {
            "what": "seconds from a query's clips being written by the teacher to all its videos playing in "
            "headless Chromium (page idle, waiting for clips); and from the person's answer to the next, "
            "already rendered, query playing",
            "ready_to_playing_s": {"median": float(np.median(idle)), "max": float(max(idle)), "n": len(idle)},
            "answer_to_next_playing_s": (
                {"median": float(np.median(queued)), "max": float(max(queued)), "n": len(queued)} if queued else None
            ),
            # the session's first query: rendering + encoding its two clips (the next ones render meanwhile)
            "asked_to_ready_s": [
                min(r["ready_at"] for r in log if r["session"] == s)
                - min(r["asked_at"] for r in log if r["session"] == s)
                for s in sorted({r["session"] for r in log})
            ],
            "render_size": [160, 120],
            "segment_length": 10,
            "per_query": timings,
        },
    )


def test_tb_videos_flag_logs_each_sessions_queries(tmp_path: Path) -> None:
    from pebble.cli import main

    run = [a for a in RUN if a not in ("--teacher-kwargs", f"budget={len(PLAN)}")]
    run[run.index("human")] = "oracle"
    assert main([*run, "--tb-videos", "--render-width", "32", "--render-height", "24", "--run-dir", str(tmp_path)]) == 0
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    acc.Reload()
    tags = acc.Tags()["images"]
    assert len(tags) == len(PLAN), tags  # one animation per query, labelled by the oracle's answer
    assert all(re.fullmatch(r"queries/q\d+_(left|right|equal|skip)", tag) for tag in tags), tags
    assert not (tmp_path / "clips").exists()  # scripted teachers get no clip files
