"""Teachers: the contract (:mod:`teachers.contract`), scripted B-Pref teachers and the registry."""

from teachers.contract import Answer, Clip, Query, Teacher, TeacherError, TeachingContext, validate_answer
from teachers.registry import ENTRY_POINT_GROUP, available, make_teacher
from teachers.scripted import PRESETS, ScriptedTeacher, preset

__all__ = [
    "ENTRY_POINT_GROUP",
    "PRESETS",
    "Answer",
    "Clip",
    "Query",
    "ScriptedTeacher",
    "Teacher",
    "TeacherError",
    "TeachingContext",
    "available",
    "make_teacher",
    "preset",
    "validate_answer",
]
