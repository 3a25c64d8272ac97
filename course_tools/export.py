"""`course export`: one CSV row per student and assignment, with a status that tells a real 0 from a problem.

Columns: student, assignment, score, max_score, status, needs_manual_grade, events, weight, first_name,
last_name (the names the gradebook holds, e.g. from `course collect --roster`).
status is one of
  ok               graded; nothing a human must look at (events may still say what was repaired),
  needs attention  graded, but something must be checked by hand (a notebook without nbgrader
                   metadata that could not be fully recovered, an answer moved out of a new cell,
                   a notebook that was not submitted, ...),
  failed           autograding failed or timed out for this submission (see `course grade`),
  missing          no submission at all (a submission not graded yet reads "needs attention").
After each student's assignments a row with assignment "weighted total" gives the weighted mean of
score/max_score in percent. Weights come from nbgrader_config.py (``c.CourseExport.weights =
{"lectures": 0.2}``); an assignment not named there weighs 1.

The file is safe to open in a spreadsheet: a text cell that starts with =, +, -, @, a tab or a carriage
return (which Excel, LibreOffice and Sheets would read as a formula) is written with a leading ' so
it shows as text; numbers are written as numbers. Python's csv module reads the file back unchanged
but for that quote (names with commas or quotes included).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from traitlets import Dict, Float
from traitlets.config import Configurable
from traitlets.config.loader import PyFileConfigLoader

from .preprocessors import STATE_DIR, describe, missing_notebooks, needs_attention, read_events

COLUMNS = ["student", "assignment", "score", "max_score", "status", "needs_manual_grade", "events", "weight",
           "first_name", "last_name"]
TOTAL = "weighted total"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """Return a text cell that a spreadsheet would run as a formula as plain text (a leading '); others unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class CourseExport(Configurable):
    """Settings of `course export`, read from nbgrader_config.py."""

    weights = Dict(default_value={}, help="Weight of each assignment in the total (default 1); "
                   "e.g. {'lectures': 0.2} for the practice assignment.").tag(config=True)
    default_weight = Float(1.0, help="Weight of an assignment not named in weights.").tag(config=True)


def settings(root: Path) -> CourseExport:
    """Return the export settings of the course at ``root``."""
    path = root / "nbgrader_config.py"
    config = PyFileConfigLoader(path.name, path=str(root)).load_config() if path.is_file() else None
    return CourseExport(config=config) if config is not None else CourseExport()


def _results(root: Path, assignment: str) -> dict:
    """Return `course grade`'s recorded results of an assignment ({} when it never ran)."""
    path = root / "autograded" / STATE_DIR / assignment / "results.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def rows(root: Path) -> list[dict]:
    """Return the export rows for every student and assignment in the gradebook, totals included."""
    from nbgrader.api import Gradebook, MissingEntry

    root = Path(root).resolve()
    conf = settings(root)
    out: list[dict] = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assignments = sorted(a.name for a in gb.assignments)
        maxima = {a.name: a.max_score for a in gb.assignments}
        results = {a: _results(root, a) for a in assignments}
        names = {s.id: (s.first_name or "", s.last_name or "") for s in gb.students}
        for student in sorted(names):
            weighted, weights = 0.0, 0.0
            first, last = names[student]
            for assignment in assignments:
                weight = float(conf.weights.get(assignment, conf.default_weight))
                row = {"student": student, "assignment": assignment, "weight": weight, "first_name": first,
                       "last_name": last}
                try:
                    sub = gb.find_submission(assignment, student)
                except MissingEntry:
                    handed_in = (root / "submitted" / student / assignment).is_dir()
                    row.update(score=0.0, max_score=maxima[assignment], needs_manual_grade=False,
                               status="needs attention" if handed_in else "missing",
                               events="submitted but not graded yet" if handed_in else "no submission")
                else:
                    events = read_events(root, assignment, student) + missing_notebooks(root, assignment, student)
                    recorded = results[assignment].get(student, {}).get("status")
                    autograded = (root / "autograded" / student / assignment).is_dir()
                    if recorded in ("failed", "timeout") or not autograded:
                        status = "failed"
                    elif needs_attention(events):
                        status = "needs attention"
                    else:
                        status = "ok"
                    row.update(score=sub.score, max_score=sub.max_score, status=status,
                               needs_manual_grade=bool(sub.needs_manual_grade),
                               events=describe(events) or "")
                out.append(row)
                if row["max_score"]:
                    weighted += weight * row["score"] / row["max_score"]
                    weights += weight
            total = round(100 * weighted / weights, 2) if weights else 0.0
            out.append({"student": student, "assignment": TOTAL, "score": total, "max_score": 100.0,
                        "status": "", "needs_manual_grade": "", "events": "", "weight": "", "first_name": first,
                        "last_name": last})
    return out


def export(root: Path, to: Path) -> list[dict]:
    """Write the export CSV to ``to`` and return its rows."""
    data = rows(root)
    with open(to, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for row in data:
            writer.writerow({k: (f"{v:g}" if isinstance(v, float) else spreadsheet_safe(v)) for k, v in row.items()})
    return data
