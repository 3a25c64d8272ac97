"""nbgrader's Validate (the JupyterLab button and `nbgrader validate`) tells students the truth.

For every assignment under source/, the student copy is released afresh with `course release` into
a scratch course, then validated twice with nbgrader's own Validator (what the button and the
command run):

* solved: every solution cell replaced by the reference answer from source/ (cells matched by
  grade_id). Validate must report success, and no test cell may show a value under it (a test
  cell's last expression is displayed, and a float there is read as a partial score);
* untouched: Validate may fail only on test cells, each failing with the NotImplementedError of
  an exercise not yet answered, and on written answers still holding "YOUR ANSWER HERE" ("You
  did not provide a response."), never on a changed cell or another error.

The scratch courses and the validations are the session's (tests/support/jobs.py, run by
tests/support/validate.py): each notebook is executed once per variant, and the untouched run also
serves tests/test_assignment.py (`nbgrader validate --invert`, the blank submission) and
tests/test_lectures.py (the blank submission).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import submissions as sub
from support import ROOT
from support.courses import release_dir

pytestmark = pytest.mark.slow

def has_nbgrader_cells(path: Path) -> bool:
    """Return whether a notebook has any cell with nbgrader metadata."""
    return any("nbgrader" in c.metadata for c in nbformat.read(path, as_version=4).cells)


def discover_assignments() -> list[str]:
    """Return the folders under source/ that hold at least one nbgrader notebook."""
    return sorted(d.name for d in (ROOT / "source").iterdir()
                  if d.is_dir() and any(has_nbgrader_cells(p) for p in d.glob("*.ipynb")))


ASSIGNMENTS = discover_assignments()


def cell_by_source(nb, source: str):
    """Return the cell of ``nb`` whose stripped source is ``source`` (how nbgrader reports cells)."""
    return next((c for c in nb.cells if c.source.strip() == source), None)


def describe(nb, source: str) -> str:
    """Return a readable name for the cell nbgrader reported by its source: its grade_id or first line."""
    cell = cell_by_source(nb, source)
    gid = cell is not None and sub.grade_id(cell)
    return f"cell {gid!r}" if gid else f"the cell starting {source.splitlines()[0][:60]!r}"


def stems_of(assignment: str) -> list[str]:
    """Return the notebooks of an assignment (its release holds the same ones, see the static tests)."""
    return sorted(p.stem for p in (ROOT / "source" / assignment).glob("*.ipynb"))


def prefetch(jobs, items) -> None:
    """Start the validations the selected tests need, each notebook on its own (two can run at once)."""
    for item in items:
        assignment = getattr(item, "callspec", None) and item.callspec.params.get("assignment")
        if assignment:
            which = "solved" if item.originalname == "test_solved_release_validates" else "untouched"
            for stem in stems_of(assignment):
                jobs.prefetch(jobs.validation(assignment, which, stem))


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def assignment(request) -> str:
    """Return the assignment under test (every test runs once per assignment)."""
    return request.param


def test_there_are_assignments():
    assert "language_models" in ASSIGNMENTS, ASSIGNMENTS


def test_solved_release_validates(jobs, assignment: str):
    """The release with every reference answer pasted in (cells matched by grade_id) validates."""
    validated = jobs.validations(assignment, "solved", stems_of(assignment))
    solved_dir = jobs.solved_release(assignment).result()
    assert sorted(p.stem for p in solved_dir.glob("*.ipynb")) == sorted(validated)
    problems = []
    for stem, found in validated.items():
        results, nb = found["results"], nbformat.read(solved_dir / f"{stem}.ipynb", as_version=4)
        for kind in ("type_changed", "changed"):
            for cell in results.get(kind, []):
                problems.append(f"{stem}: {describe(nb, cell['source'])} is reported {kind} after pasting answers")
        for cell in results.get("failed", []):
            why = cell["raw_error"].strip().splitlines()[-1] if cell["raw_error"].strip() else "?"
            hint = (" (the student copy of this test cell ends with an expression whose value nbgrader reads "
                    "as a partial score: end it with an assert or a statement)") if "Partial credit" in why else ""
            problems.append(f"{stem}: {describe(nb, cell['source'])} fails with every reference answer: {why}{hint}")
        executed = nbformat.from_dict(found["executed"]) if found["executed"] else None
        for cell in executed.cells if executed else []:
            meta = cell.metadata.get("nbgrader", {})
            values = [o for o in cell.get("outputs", []) if o.get("output_type") == "execute_result"]
            if meta.get("grade") and not meta.get("solution") and values:
                shown = (values[0].get("data", {}).get("text/plain", "").splitlines() or [""])[0][:60]
                problems.append(f"{stem}: test cell {meta.get('grade_id')!r} shows a value under it ({shown}): "
                                f"its student copy must end with an assert or a statement")
    assert not problems, f"{assignment}: Validate is wrong for a correct student:\n" + "\n".join(problems)


def test_untouched_release_fails_only_on_unanswered_exercises(jobs, assignment: str):
    validated = jobs.validations(assignment, "untouched", stems_of(assignment))
    release = release_dir(jobs.course(assignment).result(), assignment)
    assert sorted(p.stem for p in release.glob("*.ipynb")) == sorted(validated)
    problems = []
    for stem, found in validated.items():
        results = found["results"]
        nb = nbformat.read(release / f"{stem}.ipynb", as_version=4)
        for kind in ("type_changed", "changed"):
            for cell in results.get(kind, []):
                problems.append(f"{stem}: {describe(nb, cell['source'])} is reported {kind} in the untouched release")
        for failed in results.get("failed", []):
            cell = cell_by_source(nb, failed["source"])
            meta = cell.metadata.get("nbgrader", {}) if cell is not None else {}
            if meta.get("grade") and meta.get("solution"):
                # A written (manually graded) answer still holding its stub: "You did not provide a response."
                if "did not provide a response" not in failed["raw_error"]:
                    problems.append(f"{stem}: answer cell {meta.get('grade_id')!r} fails for another reason than "
                                    f"being unanswered: {failed['raw_error'].strip()[:200]}")
            elif not (meta.get("grade") and cell.cell_type == "code"):
                problems.append(f"{stem}: {describe(nb, failed['source'])} fails but is not a test cell")
            elif "NotImplementedError" not in failed["raw_error"]:
                last = failed["raw_error"].strip().splitlines()[-1:] or ["(no error text)"]
                problems.append(f"{stem}: test cell {meta.get('grade_id')!r} fails for another reason than an "
                                f"unanswered exercise: {last[0]}")
        stubs = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
        if stubs and not results.get("failed"):
            problems.append(f"{stem}: nothing fails although {len(stubs)} answer cell(s) are empty")
    assert not problems, f"{assignment}: Validate on the untouched release:\n" + "\n".join(problems)
