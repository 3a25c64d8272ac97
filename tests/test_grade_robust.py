"""`course grade` loses no notebook to a crash in another, and checks its preconditions before any worker starts.

Tiny courses (tests/fixtures/tiny_course.py) graded through the real `course` command line.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_tools import grade, preprocessors

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import tiny_course as tc  # noqa: E402
from test_course_root import clone  # noqa: E402  (a fresh clone: sources only, no gradebook)

A = tc.ASSIGNMENT
NATIVE_CRASH = "import ctypes\nctypes.string_at(0)  # a segmentation fault: the kernel dies, no Python error"


def run_course(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `course` in the course at ``root``."""
    return subprocess.run([sys.executable, "-m", "course_tools.cli", *args], cwd=root, text=True, capture_output=True,
                          env={**tc.env(), "COURSE_ROOT": str(root), "HF_HUB_OFFLINE": "1"}, timeout=900)


def auto_scores(root: Path, student: str) -> dict:
    """Return {grade cell: auto score} of a student."""
    return {r[2]: r[3] for r in grade.gradebook_rows(root, A) if r[0] == student}


def results(root: Path) -> dict:
    """Return `course grade`'s results.json of the tiny assignment."""
    return json.loads((root / "autograded" / grade.STATE_DIR / A / "results.json").read_text())


# ------------------------------------------------------------------------ one notebook at a time

@pytest.mark.slow
def test_native_crash_in_one_notebook_loses_only_that_notebook(tmp_path):
    """A correct submission whose first notebook ends in a segfault: that notebook scores 0 and carries an
    event, the second is graded normally; `course grade` and `course export` say "needs attention"."""
    root = tc.build_course(tmp_path / "course")
    tc.submit(root, "alice", tc.FULL)
    folder = tc.submit(root, "crash", tc.FULL)
    nb = nbformat.read(folder / "one.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(NATIVE_CRASH))
    nbformat.write(nb, folder / "one.ipynb")
    out = run_course(root, "grade", A, "--workers", "2", "--no-prepare")
    assert out.returncode == 0, out.stdout + out.stderr
    assert auto_scores(root, "crash") == {"test_double": 0, "test_reverse": 0, "why": 0, "test_square": 4}
    assert auto_scores(root, "alice") == {"test_double": 2, "test_reverse": 3, "why": None, "test_square": 4}
    row = next(line for line in out.stdout.splitlines() if line.startswith("crash"))
    assert "needs attention" in row and "one.ipynb" in row and "Kernel died" in row, row
    kinds = [(e["notebook"], e["kind"], e["level"]) for e in preprocessors.read_events(root, A, "crash")]
    assert kinds == [("one", "notebook-failed", "attention")]
    assert not (root / "autograded" / "crash" / A / "one.ipynb").exists()
    assert (root / "autograded" / "crash" / A / "two.ipynb").exists()
    to = tmp_path / "grades.csv"
    assert run_course(root, "export", "--to", str(to)).returncode == 0
    exported = {r["student"]: r for r in csv.DictReader(to.open()) if r["assignment"] == A}
    assert (exported["crash"]["score"], exported["crash"]["status"]) == ("4", "needs attention")
    assert "notebook failed" in exported["crash"]["events"] and exported["alice"]["status"] == "ok"
    # Graded again (the crashing notebook is retried: it was not graded), the result is the same.
    again = run_course(root, "grade", A, "--workers", "2", "--no-prepare")
    rows = {line.split()[0]: line for line in again.stdout.splitlines() if line.startswith(("alice", "crash"))}
    assert again.returncode == 0 and " skipped " in rows["alice"] and "needs attention" in rows["crash"]
    assert auto_scores(root, "crash")["test_square"] == 4 and results(root)["crash"]["status"] == "ok"


# --------------------------------------------------------------------------------- preconditions

def one_line(out: subprocess.CompletedProcess) -> str:
    """Return the single line `course grade` printed when it refused (asserting there is only one)."""
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stdout + out.stderr
    return lines[0]


@pytest.mark.slow
def test_grading_before_release_says_to_release(tmp_path):
    """A fresh clone (sources, no gradebook): no worker starts, no gradebook is created, one line says what to run."""
    root = clone(tmp_path / "clone")
    (root / "submitted" / "alice").mkdir(parents=True)
    shutil.copytree(root / "source" / A, root / "submitted" / "alice" / A)
    line = one_line(run_course(root, "grade", A, "--workers", "2", "--no-prepare"))
    assert line.startswith("course grade: no gradebook yet") and f"`course release {A}`" in line
    assert not (root / "gradebook.db").exists() and not (root / "autograded").exists()


@pytest.mark.slow
def test_source_changed_since_release_and_old_gradebook_are_refused(tmp_path):
    """source/ edited after the release, or a gradebook at an older schema: refused in one line naming the fix;
    once released again, grading goes on."""
    root = tc.build_course(tmp_path / "course")
    tc.submit(root, "alice", tc.FULL)
    path = root / "source" / A / "two.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].metadata["nbgrader"]["points"] = 5
    nbformat.write(nb, path)
    line = one_line(run_course(root, "grade", A, "--no-prepare"))
    assert f"source/{A}/two.ipynb changed since it was released (cells test_square)" in line
    assert f"`course release {A}`" in line and not (root / "autograded" / "alice").exists()
    released = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", A, "--force"], cwd=root,
                              env=tc.env(), capture_output=True, text=True)
    assert released.returncode == 0, released.stderr
    con = sqlite3.connect(root / "gradebook.db")
    head = con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    con.execute("UPDATE alembic_version SET version_num = 'd756ae3b0a4d'")  # an older nbgrader's schema
    con.commit()
    line = one_line(run_course(root, "grade", A, "--no-prepare"))
    assert "`nbgrader db upgrade`" in line and "d756ae3b0a4d" in line
    con.execute("UPDATE alembic_version SET version_num = ?", (head,))
    con.commit()
    con.close()
    out = run_course(root, "grade", A, "--no-prepare")
    assert out.returncode == 0, out.stdout + out.stderr
    assert auto_scores(root, "alice")["test_square"] == 5
