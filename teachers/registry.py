"""Resolve a teacher from a name, a ``"package.module:Class"`` string or an entry point.

``make_teacher(spec, **kwargs)`` accepts, in this order:

1. a scripted preset (:data:`teachers.scripted.PRESETS`) or a built-in name (``human``);
2. ``"package.module:Class"`` (any callable returning a teacher): the module is imported
   from ``sys.path`` and, failing that, from the current folder (like ``python -m``), so
   ``pebble train --teacher my_teachers:MyTeacher`` finds ``./my_teachers.py``;
3. an entry point of an installed distribution in the group ``pebble.teachers``::

       [project.entry-points."pebble.teachers"]
       velocity = "mypackage.teachers:VelocityTeacher"

The factory is called with ``kwargs`` (``--teacher-kwargs KEY=VALUE ...``); every failure
is a one-line :class:`~teachers.contract.TeacherError`.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
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


def make_teacher(spec: str, offered: dict[str, Any] | None = None, **kwargs: Any) -> Teacher:
    """Build the teacher named by ``spec`` with keyword arguments ``kwargs``.

    ``offered`` holds run facts a teacher *may* take (e.g. ``env_id``): each is passed only
    if the teacher's constructor has a parameter of that name and ``kwargs`` does not set it.
    """
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
    for name, value in (offered or {}).items():
        if name not in kwargs and _accepts(factory, name):
            kwargs[name] = value
    try:
        teacher = factory(**kwargs)
    except TeacherError:
        raise
    except (TypeError, ValueError) as exc:
        raise TeacherError(f"cannot build teacher {spec!r} with {kwargs}: {exc}") from None
    if not isinstance(teacher, Teacher):
        raise TeacherError(f"{spec!r} is not a teacher: it needs a 'name' and an 'answer(queries, context)' method")
    return teacher


def _accepts(factory: Any, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params and params[name].kind in (params[name].POSITIONAL_OR_KEYWORD, params[name].KEYWORD_ONLY)


def _import(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        module = _import_module(module_name)
    except ImportError as exc:
        raise TeacherError(f"cannot import teacher module {module_name!r}: {exc}") from None
    except Exception as exc:  # an error while the module runs
        raise TeacherError(f"teacher module {module_name!r} failed on import: {type(exc).__name__}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TeacherError(f"module {module_name!r} has no attribute {attr!r}") from None


def _import_module(name: str) -> Any:
    """Import ``name``; if its top-level package is not on ``sys.path``, try the current folder.

    The current folder is *appended* to ``sys.path``, so it never shadows installed modules.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        if exc.name != name.partition(".")[0] or cwd in sys.path or "" in sys.path:
            raise
        sys.path.append(cwd)
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as retry:
            if retry.name == exc.name:  # not in the current folder either: leave sys.path as it was
                sys.path.remove(cwd)
                raise ModuleNotFoundError(f"{exc} (not on sys.path nor in the current folder {cwd})") from None
            raise
