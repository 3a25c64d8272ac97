"""Scratch courses: a copy of this course (its files unchanged, some assignments' sources) in a temporary folder.

The copy is made by the course's own ``course_tools.demo.scratch_course`` (what `make demo` grades), so
it holds what `course release` reads: nbgrader_config.py, pyproject.toml, models.txt and the recorded
answers of the hidden checks. Released with the real `course release` command.
"""

from __future__ import annotations

from pathlib import Path

from course_tools.release import LECTURES, STUDENT_DIR

from . import cli
from .notebooks import ROOT


def scratch_course(dest: Path, names: list[str]) -> Path:
    """Return a scratch copy of this course at ``dest`` holding the sources of the assignments ``names``."""
    from course_tools.demo import scratch_course as copy_course

    return copy_course(ROOT, dest, names)


def released_course(dest: Path, name: str, base: dict[str, str] | None = None) -> Path:
    """Return a scratch course at ``dest`` with the assignment ``name`` released by `course release`
    (run with the environment ``base``, os.environ by default)."""
    course = scratch_course(dest, [name])
    cli.course(course, "release", name, check=True, base=base)
    return course


def release_dir(course: Path, name: str) -> Path:
    """Return where `course release` puts the student copies of ``name`` (notebooks/ for the lectures)."""
    return course / STUDENT_DIR if name == LECTURES else course / "release" / name
