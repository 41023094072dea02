"""Render clips offscreen with MuJoCo, encode them as browser-playable videos, log them to TensorBoard.

A :class:`~teachers.contract.Clip` recorded with render states (``--teacher human`` or
``--tb-videos``) carries the MuJoCo ``(qpos, qvel)`` before each step (for Meta-World also
the episode's goal variation: :mod:`envs.sim`). Rendering sets the simulator to each state in
turn (``mj_forward``, no physics step), so a clip can be drawn long after it was played, by a
separate environment, in any thread. Gymnasium MuJoCo, DeepMind Control and Meta-World tasks
are drawn alike.

Offscreen rendering uses EGL (headless; Mesa's software renderer works without a GPU) and
falls back to OSMesa. ``MUJOCO_GL`` chooses the backend when set by the user.

Nothing here runs for scripted teachers: only the human teacher and ``--tb-videos`` import
this module.
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The backend is read when MuJoCo/PyOpenGL create their first context, so it must be in the
# environment before any rendering module is imported. A user's choice always wins.
_USER_GL = os.environ.get("MUJOCO_GL")
os.environ.setdefault("MUJOCO_GL", "egl")

#: Brightness of padding frames after the episode terminated (the robot fell).
PADDING_DIM = 0.35
#: Colour of the band marking padding frames.
FELL_COLOUR = np.array([200, 30, 30], np.uint8)


class RenderError(RuntimeError):
    """Clips cannot be rendered or encoded; the message is one line and says what to install."""


_PROBE = """
import sys
backend = sys.argv[1]
if backend == "egl":
    from mujoco.egl import GLContext
else:
    from mujoco.osmesa import GLContext
context = GLContext(8, 8)
context.make_current()
context.free()
"""


def _probe(backend: str) -> bool:
    """Whether an offscreen context of ``backend`` can be made, tried in a child process.

    PyOpenGL binds its platform once per process, so a failed EGL attempt here could not be
    undone; a child process (about half a second, once) keeps this process clean.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYOPENGL_PLATFORM"}
    env["PYOPENGL_PLATFORM"] = backend
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, backend], env=env, capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@functools.cache
def gl_backend() -> str:
    """The offscreen OpenGL backend in use: the user's ``MUJOCO_GL``, else EGL, else OSMesa."""
    if _USER_GL:
        return _USER_GL
    for backend in ("egl", "osmesa"):
        if _probe(backend):
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    raise RenderError(
        "cannot render clips offscreen: neither EGL nor OSMesa works (Debian: apt-get install libegl1 "
        "libgl1-mesa-dri, or libosmesa6; or set MUJOCO_GL)"
    )


class ClipRenderer:
    """Draws clips of one MuJoCo task at a fixed size.

    Owns an environment and its OpenGL context: use it from one thread only (the context
    is current in the thread that created it). Shadows are off by default: with Mesa's
    software renderer (no GPU) they make each frame about four times slower (~100 ms at
    320x240), which a person waiting for the next clip feels.
    """

    def __init__(self, env_id: str, width: int, height: int, shadows: bool = False) -> None:
        # H.264 with 4:2:0 chroma needs even sizes; one pixel more is invisible.
        self.width = int(width) + int(width) % 2
        self.height = int(height) + int(height) % 2
        self.env_id = env_id
        gl_backend()
        import gymnasium as gym

        from envs import families
        from envs.make import check_env_id
        from envs.sim import simulator

        check_env_id(env_id)
        size = (self.width, self.height)
        try:
            if families.family(env_id):
                self._env = families.make(env_id, render=size)
            else:
                self._env = gym.make(env_id, render_mode="rgb_array", width=self.width, height=self.height)
        except Exception as exc:
            raise RenderError(f"cannot build {env_id!r} for rendering: {str(exc).splitlines()[0]}") from None
        self._env.reset(seed=0)
        sim = simulator(self._env)
        if sim is None:
            self._env.close()
            raise RenderError(f"{env_id!r} is not a MuJoCo environment: its clips cannot be rendered")
        self._sim = sim
        self.state_dim = sim.state_dim
        if not shadows:
            # Lights that cast no shadow: works for every renderer (DeepMind Control draws
            # through dm_control's own, which exposes no scene flags).
            sim.model.light_castshadow[:] = 0
        try:
            self._env.render()  # creates the viewer and its OpenGL context now, in this thread
        except Exception as exc:
            self._env.close()
            raise RenderError(f"cannot render {env_id!r} offscreen ({gl_backend()}): {exc}") from None
        # Gymnasium's MujocoRenderer (Gymnasium tasks, Meta-World); dm_control makes its
        # context current on every render itself.
        renderer = getattr(self._env.unwrapped, "mujoco_renderer", None)
        self._viewer = getattr(renderer, "viewer", None)
        if not shadows and self._viewer is not None:
            import mujoco

            self._viewer.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0

    def frame(self, state: np.ndarray) -> np.ndarray:
        """One (height, width, 3) uint8 image of the simulator in ``state`` (:mod:`envs.sim`)."""
        self._sim.set_state(np.asarray(state, np.float64))
        if self._viewer is not None:
            # Another renderer made in this thread may have taken the current context.
            self._viewer.make_context_current()
        image = self._env.render()
        if image is None:  # pragma: no cover - render_mode is rgb_array
            raise RenderError(f"{self.env_id!r} rendered nothing")
        return np.ascontiguousarray(image, dtype=np.uint8)

    def frames(self, clip: Any) -> np.ndarray:
        """(H, height, width, 3) uint8: one frame per step of ``clip``.

        Frame t shows the state in which action t was taken. Padding steps after the episode
        terminated repeat the last real frame, dimmed, with a red band: "the robot fell".
        """
        states = getattr(clip, "render_states", None)
        if states is None:
            raise RenderError(
                "the clip has no render states (the run must record them: --teacher human or --tb-videos)"
            )
        states = np.asarray(states, dtype=np.float64)
        if states.ndim != 2 or states.shape[1] < self.state_dim:
            raise RenderError(
                f"render states of shape {states.shape} do not fit {self.env_id!r} (state size {self.state_dim})"
            )
        mask = np.asarray(clip.mask, dtype=bool)
        out = np.empty((len(states), self.height, self.width, 3), np.uint8)
        last: np.ndarray | None = None
        for t, state in enumerate(states):
            if mask[t] or last is None:
                last = self.frame(state)
                out[t] = last
            else:
                out[t] = fell_frame(last)
        return out

    def close(self) -> None:
        """Free the environment and its OpenGL context."""
        self._env.close()

    def __enter__(self) -> ClipRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fell_frame(frame: np.ndarray) -> np.ndarray:
    """``frame`` dimmed with a red band at the bottom: a padding step after termination."""
    out = (frame.astype(np.float32) * PADDING_DIM).astype(np.uint8)
    band = max(2, frame.shape[0] // 12)
    out[-band:] = FELL_COLOUR
    return out


def encode_video(frames: np.ndarray, path: str | Path, fps: int) -> Path:
    """Write (T, H, W, 3) uint8 frames as an H.264 MP4 that every current browser plays.

    H.264 baseline-compatible 4:2:0 with the index up front (``+faststart``) plays in
    Chromium (Debian's build included), Chrome, Firefox, Safari and Edge; VP9 WebM does not
    play in older Safari. The file appears atomically (written beside it, then renamed), so a
    server never hands out half a video.
    """
    import imageio_ffmpeg

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise RenderError(f"frames must be (T, H, W, 3) with T >= 1, got {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=path.parent)
    os.close(fd)
    try:
        writer = imageio_ffmpeg.write_frames(
            tmp,
            (frames.shape[2], frames.shape[1]),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            quality=None,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=["-preset", "veryfast", "-crf", "23", "-movflags", "+faststart"],
        )
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        os.replace(tmp, path)
    except Exception as exc:
        Path(tmp).unlink(missing_ok=True)
        raise RenderError(f"cannot encode {path.name}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    return path


def side_by_side(clips: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Tile K clips of (T, H, W, 3) horizontally, with white gaps, into one (T, H, K*W + gaps, 3)."""
    spacer = np.full((*clips[0].shape[:2], gap, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, clip in enumerate(clips):
        if i:
            parts.append(spacer)
        parts.append(clip)
    return np.concatenate(parts, axis=2)


def gif_bytes(frames: np.ndarray, fps: int) -> bytes:
    """An endlessly looping animated GIF of (T, H, W, 3) frames: what TensorBoard shows as a video."""
    from PIL import Image

    images = [Image.fromarray(f) for f in np.asarray(frames, dtype=np.uint8)]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0
    )
    return buffer.getvalue()


def answer_label(answer: Any, size: int) -> str:
    """A short, tag-safe description of an answer: ``left``, ``right``, ``rank_2-0-1``, ``equal``, ``skip``."""
    if answer is None:
        return "unanswered"
    if answer.kind != "ranking":
        return str(answer.kind)
    if size == 2:
        return "left" if answer.ranking[0] == 0 else "right"
    return "rank_" + "-".join(str(i) for i in answer.ranking)


_log_lock = threading.Lock()


def log_query_videos(
    writer: Any,
    env_id: str,
    queries: Sequence[Any],
    answers: Mapping[int, Any],
    step: int,
    width: int,
    height: int,
    fps: int,
) -> int:
    """Log each query's clips, side by side, as a TensorBoard video tagged with its label.

    Tags are ``queries/q{id}_{label}`` (label: ``left``/``right`` for pairs, ``rank_...`` best
    first for K > 2, ``equal``, ``skip`` or ``unanswered``). TensorBoard's video is an animated
    GIF in an image summary; ``SummaryWriter.add_video`` makes it with moviepy 1.x only
    (moviepy 2 dropped ``moviepy.editor``), so the GIF is made here with Pillow and written
    the way ``add_video`` writes it. Returns the number of videos logged.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary

    logged = 0
    renderable = [q for q in queries if all(c.render_states is not None for c in q.clips)]
    if not renderable:
        return 0
    with _log_lock, ClipRenderer(env_id, width, height) as renderer:
        file_writer = writer._get_file_writer()  # what add_video itself writes to
        for query in renderable:
            tiled = side_by_side([renderer.frames(c) for c in query.clips])
            label = answer_label(answers.get(query.query_id), query.size)
            image = Summary.Image(
                height=tiled.shape[1], width=tiled.shape[2], colorspace=3, encoded_image_string=gif_bytes(tiled, fps)
            )
            summary = Summary(value=[Summary.Value(tag=f"queries/q{query.query_id}_{label}", image=image)])
            file_writer.add_summary(summary, step)
            logged += 1
    writer.flush()
    return logged
