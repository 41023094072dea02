"""Plug-in teachers: names, ``module:Class`` and entry points; docs/teachers.md's velocity teacher, in real runs."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import envs.make  # noqa: F401  (routes MuJoCo's warnings through Python instead of ./MUJOCO_LOG.TXT)
from pebble.cli import main
from teachers import (
    ENTRY_POINT_GROUP,
    PRESETS,
    Answer,
    Clip,
    Query,
    ScriptedTeacher,
    TeacherError,
    TeachingContext,
    available,
    make_teacher,
    validate_answer,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SPEC = "velocity_teacher:VelocityTeacher"

HALF_CHEETAH = [
    "--env", "HalfCheetah-v5", "--total-steps", "800", "--seed-steps", "200", "--unsup-steps", "200",
    "--segment-length", "10", "--max-feedback", "12", "--num-interact", "200", "--net-arch", "32",
    "--reward-hidden", "32", "--batch-size", "64", "--eval-freq", "0", "--eval-episodes", "1",
    "--log-interval", "0", "--threads", "1",
]  # fmt: skip


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo what resolving teachers does to ``sys.path`` and forget the example module afterwards."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(EXAMPLES))])
    monkeypatch.delitem(sys.modules, "velocity_teacher", raising=False)
    importlib.invalidate_caches()


@pytest.fixture
def example(isolated_imports: None, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The example module, importable as ``velocity_teacher`` (as if the user's file were on PYTHONPATH)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("velocity_teacher")


@pytest.fixture
def entry_point(example: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """An installed distribution that registers ``velocity`` (and a broken one) in ``pebble.teachers``.

    No pip: a ``*.dist-info`` folder on ``sys.path`` is all ``importlib.metadata`` looks for.
    """
    site = tmp_path / "site"
    info = site / "pebble_velocity_teacher-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pebble-velocity-teacher\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nvelocity = {SPEC}\nbroken = no_such_module_for_pebble_tests:Teacher\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return example


def velocity_clip(speeds: list[float], mask: np.ndarray | None = None, index: int = 8, dim: int = 17) -> Clip:
    obs = np.random.default_rng(len(speeds)).normal(size=(len(speeds), dim)).astype(np.float32)
    obs[:, index] = speeds
    mask = np.ones(len(speeds), bool) if mask is None else mask
    return Clip(obs, np.zeros((len(speeds), 6), np.float32), np.zeros(len(speeds)), mask)


# ---------------------------------------------------------------------- registry
def test_names_module_class_and_entry_points_resolve(entry_point: ModuleType) -> None:
    oracle = make_teacher("oracle")
    assert isinstance(oracle, ScriptedTeacher) and oracle.name == "oracle"
    by_path = make_teacher(SPEC, env_id="Hopper-v5")
    assert isinstance(by_path, entry_point.VelocityTeacher) and by_path.index == 5
    by_entry_point = make_teacher("velocity", env_id="Walker2d-v5", tolerance=0.2)
    assert isinstance(by_entry_point, entry_point.VelocityTeacher)
    assert (by_entry_point.index, by_entry_point.tolerance) == (8, 0.2)
    assert make_teacher("velocity", index=3).index == 3  # type: ignore[attr-defined]
    names = available()
    assert set(PRESETS) <= set(names) and {"velocity", "broken"} <= set(names)


def test_unknown_name_lists_the_available_ones(entry_point: ModuleType) -> None:
    with pytest.raises(TeacherError) as info:
        make_teacher("velocty")
    message = str(info.value)
    assert message.startswith("unknown teacher 'velocty'; available: ")
    for name in [*PRESETS, "velocity", "broken", "'package.module:Class'"]:
        assert name in message
    with pytest.raises(TeacherError, match="cannot load teacher entry point 'broken'.*no_such_module_for_pebble_tests"):
        make_teacher("broken")


def test_module_is_found_in_the_current_folder(
    isolated_imports: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pebble train --teacher my_module:Class`` finds ``./my_module.py`` (console scripts do not add the cwd)."""
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    with pytest.raises(
        TeacherError, match="cannot import teacher module 'velocity_teacher'.*nor in the current folder"
    ):
        make_teacher(SPEC, env_id="Hopper-v5")
    assert sys.path == before  # a failed look-up leaves sys.path alone
    monkeypatch.chdir(EXAMPLES)
    teacher = make_teacher(SPEC, env_id="Hopper-v5")
    assert type(teacher).__name__ == "VelocityTeacher"
    assert sys.path == [*before, str(EXAMPLES)]  # appended: it cannot shadow installed modules


def test_resolution_errors_are_one_line_teacher_errors(
    example: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exploding_teacher.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "picky_teacher.py").write_text(
        "class Picky:\n    name = 'picky'\n\n    def __init__(self, level=0):\n"
        "        if level < 0:\n            raise ValueError('level must be >= 0')\n\n"
        "    def answer(self, queries, context):\n        return iter(())\n\n\n"
        "class Nameless:\n    def answer(self, queries, context):\n        return iter(())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("velocity_teacher:Nope", {}, "module 'velocity_teacher' has no attribute 'Nope'"),
        ("exploding_teacher:T", {}, "teacher module 'exploding_teacher' failed on import: RuntimeError: boom"),
        ("collections:OrderedDict", {}, "'collections:OrderedDict' is not a teacher"),
        ("picky_teacher:Nameless", {}, "'picky_teacher:Nameless' is not a teacher"),
        ("picky_teacher:Picky", {"level": -1}, "cannot build teacher 'picky_teacher:Picky' with {'level': -1}"),
        ("picky_teacher:Picky", {"colour": 1}, "unexpected keyword argument 'colour'"),
        (SPEC, {}, "teacher 'velocity': pass env_id=ID"),
        (SPEC, {"env_id": "Reacher-v5"}, "got env_id='Reacher-v5'"),
    ]
    for spec, kwargs, message in cases:
        with pytest.raises(TeacherError) as info:
            make_teacher(spec, **kwargs)
        assert message in str(info.value) and "\n" not in str(info.value), (spec, str(info.value))
    assert make_teacher("picky_teacher:Picky", level=2).name == "picky"


def test_cli_reports_an_unknown_teacher_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--env", "InvertedPendulum-v5", "--teacher", "no-such-teacher", "--run-dir", str(tmp_path / "r")]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown teacher 'no-such-teacher'; available: ") and "oracle" in err
    assert "\n" not in err


# ---------------------------------------------------------- the velocity teacher
def test_velocity_teacher_ranks_by_mean_forward_velocity(example: ModuleType) -> None:
    teacher = example.VelocityTeacher(env_id="HalfCheetah-v5")
    ctx = TeachingContext(0, 0, np.random.default_rng(0))
    fallen = np.arange(10) < 3  # fast for 3 steps, then terminated: 3 * 3 / 10 = 0.9 m/s
    q = Query(7, (velocity_clip([0.5] * 10), velocity_clip([3.0] * 10, fallen), velocity_clip([1.0] * 10)))
    ((qid, answer),) = list(teacher.answer([q], ctx))
    assert qid == 7 and validate_answer(answer, q, teacher.name) == Answer.rank([2, 1, 0])
    backwards = Query(8, (velocity_clip([-2.0] * 10), velocity_clip([0.1] * 10)))
    assert teacher.judge(backwards, ctx) == Answer.prefer(1)
    tie = Query(9, (velocity_clip([1.0] * 10), velocity_clip([1.0] * 10)))
    orders = {teacher.judge(tie, ctx).ranking for _ in range(40)}
    assert orders == {(0, 1), (1, 0)}  # exact ties are broken at random
    tolerant = example.VelocityTeacher(env_id="HalfCheetah-v5", tolerance=0.2)
    close = Query(10, (velocity_clip([1.0] * 10), velocity_clip([1.15] * 10), velocity_clip([1.1] * 10)))
    assert tolerant.judge(close, ctx) == Answer.equal()
    assert tolerant.judge(q, ctx) == Answer.rank([2, 1, 0])
    hopper = example.VelocityTeacher(env_id="Hopper-v5")
    with pytest.raises(TeacherError, match="teacher 'velocity': observations have 4 entries, no index 5"):
        hopper.judge(Query(0, (velocity_clip([1.0], index=0, dim=4),) * 2), ctx)


def test_velocity_index_table_matches_gymnasium(example: ModuleType) -> None:
    """The observation entry the teacher reads is the root's x-velocity, qvel[0], in every listed task."""
    for family, index in example.VELOCITY_INDEX.items():
        env = gym.make(f"{family}-v5")
        try:
            env.reset(seed=0)
            env.action_space.seed(0)
            for _ in range(3):
                obs, *_ = env.step(env.action_space.sample())
                qvel = env.unwrapped.data.qvel  # type: ignore[attr-defined]
                assert abs(qvel[0]) > 1e-6 and obs[index] == pytest.approx(qvel[0]), family
                assert np.sum(np.isclose(obs, qvel[0])) == 1, family
        finally:
            env.close()
        assert example.VelocityTeacher(env_id=f"{family}-v5").index == index


def teacher_docs_section() -> str:
    """The "Write your own teacher" section of docs/teachers.md (where the README links to)."""
    heading = re.compile(r"^#{2,3} Write your own teacher\s*$", re.M)
    text = (ROOT / "docs" / "teachers.md").read_text()
    match = heading.search(text)
    assert match, "no 'Write your own teacher' section in docs/teachers.md"
    return text[match.end() :]


def test_teacher_docs_show_the_example_verbatim() -> None:
    section = teacher_docs_section()
    python = re.search(r"```python\n(.*?)```", section, re.S)
    assert python, "the section has no python block"
    assert python.group(1) == (EXAMPLES / "velocity_teacher.py").read_text()
    toml = re.search(r"```toml\n(.*?)```", section, re.S)
    assert toml, "the section has no toml block"
    import tomllib

    points = tomllib.loads(toml.group(1))["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert points == {"velocity": SPEC}


# ------------------------------------------------------------------- real runs
def record_judgements(module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Query, Answer]]:
    seen: list[tuple[Query, Answer]] = []
    judge = module.VelocityTeacher.judge

    def recording(self: object, query: Query, context: TeachingContext) -> Answer:
        answer = judge(self, query, context)
        seen.append((query, answer))
        return answer

    monkeypatch.setattr(module.VelocityTeacher, "judge", recording)
    return seen


def check_run(run_dir: Path, seen: list[tuple[Query, Answer]], queries: int) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["queries_asked"] == queries and summary["labels"] == queries == len(seen)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["feedback"]["teacher_kwargs"] == {}  # env_id was offered by pebble, not configured
    for query, answer in seen:
        assert answer.kind == "ranking" and all(c.observations.shape == (10, 17) for c in query.clips)
        speeds = [float(np.mean(c.observations[:, 8] * c.mask)) for c in query.clips]
        assert speeds[answer.ranking[0]] == max(speeds)
    assert len({answer.ranking for _, answer in seen}) == 2  # not a constant answer


def test_train_with_a_module_class_teacher(
    example: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = record_judgements(example, monkeypatch)
    run_dir = tmp_path / "run"
    argv = ["train", *HALF_CHEETAH, "--teacher", SPEC]  # pebble offers env_id itself
    assert main([*argv, "--run-dir", str(run_dir)]) == 0
    check_run(run_dir, seen, 12)
    assert "12 labels from 12 queries" in capsys.readouterr().out


def test_train_with_an_entry_point_teacher(
    entry_point: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = record_judgements(entry_point, monkeypatch)
    run_dir = tmp_path / "run"
    argv = ["train", *HALF_CHEETAH, "--total-steps", "600", "--max-feedback", "8", "--teacher", "velocity"]
    assert main([*argv, "--run-dir", str(run_dir)]) == 0
    check_run(run_dir, seen, 8)
