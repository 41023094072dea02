"""Resolve a teacher from a name, a ``"package.module:Class"`` string or an entry point.

Third-party packages register teachers under the entry-point group ``pebble.teachers``::

    [project.entry-points."pebble.teachers"]
    velocity = "mypackage.teachers:VelocityTeacher"
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from teachers.contract import Teacher, TeacherError
from teachers.scripted import PRESETS, preset

ENTRY_POINT_GROUP = "pebble.teachers"

#: Built-in teachers that live in their own module (imported only when used).
BUILTIN = {"human": "teachers.human:HumanTeacher"}


def available() -> list[str]:
    """Names that :func:`make_teacher` accepts besides ``module:Class`` strings."""
    return sorted(PRESETS) + sorted(BUILTIN) + sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def make_teacher(spec: str, **kwargs: Any) -> Teacher:
    """Build the teacher named by ``spec`` with keyword arguments ``kwargs``."""
    if spec in PRESETS:
        factory: Any = lambda **kw: preset(spec, **kw)  # noqa: E731
    elif spec in BUILTIN:
        factory = _import(BUILTIN[spec])
    elif ":" in spec:
        factory = _import(spec)
    else:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec]
        if not matches:
            raise TeacherError(
                f"unknown teacher {spec!r}; available: {', '.join(available())}, or 'package.module:Class'"
            )
        try:
            factory = matches[0].load()
        except Exception as exc:
            raise TeacherError(f"cannot load teacher entry point {spec!r}: {exc}") from None
    try:
        teacher = factory(**kwargs)
    except TeacherError:
        raise
    except TypeError as exc:
        raise TeacherError(f"cannot build teacher {spec!r} with {kwargs}: {exc}") from None
    if not isinstance(teacher, Teacher):
        raise TeacherError(f"{spec!r} is not a teacher: it needs a 'name' and an 'answer(queries, context)' method")
    return teacher


def _import(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TeacherError(f"cannot import teacher module {module_name!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TeacherError(f"module {module_name!r} has no attribute {attr!r}") from None
