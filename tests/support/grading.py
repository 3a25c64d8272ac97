"""Reading what grading left in a course: a student's autograded outputs and gradebook scores."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

TINY = "tiny"  # tests/fixtures/tiny_course.py's assignment


def outputs(root: Path, student: str, notebook: str = "one", assignment: str = TINY) -> str:
    """Return all text outputs (streams, data, tracebacks) of a student's autograded notebook."""
    nb = nbformat.read(root / "autograded" / student / assignment / f"{notebook}.ipynb", as_version=4)
    return "\n".join(o.get("text", "") + json.dumps(o.get("data", {})) + " ".join(o.get("traceback", []))
                     for c in nb.cells for o in c.get("outputs", []))


def auto_scores(root: Path, student: str, assignment: str = TINY) -> dict[str, float]:
    """Return {grade cell: auto score} of a student, from the gradebook."""
    from course_tools import grade

    return {r[2]: r[3] for r in grade.gradebook_rows(root, assignment) if r[0] == student}


def results(root: Path, assignment: str = TINY) -> dict:
    """Return `course grade`'s results.json of an assignment ({student: {status, seconds, events, ...}})."""
    from course_tools import grade

    return json.loads((root / "autograded" / grade.STATE_DIR / assignment / "results.json").read_text())
