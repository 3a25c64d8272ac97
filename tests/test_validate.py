"""nbgrader's Validate (the JupyterLab button and `nbgrader validate`) tells students the truth.

For every assignment under source/, the student copy is generated afresh with nbgrader into a
scratch course, then validated twice with nbgrader's own Validator (what the button and the
command run):

* solved: every solution cell replaced by the reference answer from source/ (cells matched by
  grade_id). Validate must report success, and no test cell may show a value under it (a test
  cell's last expression is displayed, and a float there is read as a partial score);
* untouched: Validate may fail only on test cells, each failing with the NotImplementedError of
  an exercise not yet answered, and on written answers still holding "YOUR ANSWER HERE" ("You
  did not provide a response."), never on a changed cell or another error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_tools.checks import copy_recorded

import submissions as sub
from conftest import ROOT

pytestmark = pytest.mark.slow

SUCCESS = "Success! Your notebook passes all the tests."

# Runs in the scratch course (so its nbgrader_config.py applies): validates each notebook with
# nbgrader's Validator, records the executed notebook, and writes both to a JSON file.
VALIDATE_SCRIPT = r"""
import json, sys
from nbgrader.apps.validateapp import ValidateApp
from nbgrader.validator import Validator


class Recording(Validator):
    # Keep the executed notebook that validate() computes its verdict from.
    def _preprocess(self, nb):
        self.executed = super()._preprocess(nb)
        return self.executed


app = ValidateApp()
app.initialize([])
validator = Recording(parent=app)
found = {}
for path in sys.argv[2:]:
    results = validator.validate(path)
    found[path] = {"results": results, "executed": getattr(validator, "executed", None)}
with open(sys.argv[1], "w") as fh:
    json.dump(found, fh)
"""


def has_nbgrader_cells(path: Path) -> bool:
    """Return whether a notebook has any cell with nbgrader metadata."""
    return any("nbgrader" in c.metadata for c in nbformat.read(path, as_version=4).cells)


def discover_assignments() -> list[str]:
    """Return the folders under source/ that hold at least one nbgrader notebook."""
    return sorted(d.name for d in (ROOT / "source").iterdir()
                  if d.is_dir() and any(has_nbgrader_cells(p) for p in d.glob("*.ipynb")))


ASSIGNMENTS = discover_assignments()


def nbgrader_env() -> dict[str, str]:
    """Return the environment for nbgrader subprocesses: offline, the venv's bin/ first on PATH."""
    from course_tools.environment import nbgrader_env as env

    return env(HF_HUB_OFFLINE="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))


def generate(course: Path, assignment: str) -> Path:
    """Copy source/<assignment> into ``course``, run nbgrader generate_assignment, return the release folder."""
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(ROOT / "source" / assignment, course / "source" / assignment)
    copy_recorded(ROOT, course, assignment)
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force",
                           "--create"], cwd=course, env=nbgrader_env(), capture_output=True, text=True)
    assert proc.returncode == 0, f"generate_assignment {assignment} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return course / "release" / assignment


def validate(course: Path, paths: list[Path]) -> dict[str, dict]:
    """Validate notebooks with nbgrader's Validator in ``course``; return {stem: {results, executed}}."""
    out = course / f"validate-{paths[0].parent.name}.json"
    proc = subprocess.run([sys.executable, "-c", VALIDATE_SCRIPT, str(out), *map(str, paths)], cwd=course,
                          env=nbgrader_env(), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"the validator crashed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return {Path(path).stem: found for path, found in json.loads(out.read_text()).items()}


def cell_by_source(nb, source: str):
    """Return the cell of ``nb`` whose stripped source is ``source`` (how nbgrader reports cells)."""
    return next((c for c in nb.cells if c.source.strip() == source), None)


def describe(nb, source: str) -> str:
    """Return a readable name for the cell nbgrader reported by its source: its grade_id or first line."""
    cell = cell_by_source(nb, source)
    gid = cell is not None and sub.grade_id(cell)
    return f"cell {gid!r}" if gid else f"the cell starting {source.splitlines()[0][:60]!r}"


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def release(request, tmp_path_factory) -> Path:
    """Return a freshly generated release folder of one assignment, in its own scratch course."""
    return generate(tmp_path_factory.mktemp(request.param), request.param)


def test_there_are_assignments():
    assert "language_models" in ASSIGNMENTS, ASSIGNMENTS


def test_solved_release_validates(release: Path):
    assignment = release.name
    answers = sub.reference_answers(ROOT / "source" / assignment)
    solved_dir = release.parent.parent / "solved" / assignment
    shutil.copytree(release, solved_dir)
    paths = sorted(solved_dir.glob("*.ipynb"))
    solved = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for gid, source in answers.get(path.stem, {}).items():
            sub.find_cell(nb, gid).source = source
        nbformat.write(nb, path)
        solved[path.stem] = nb
    problems = []
    for stem, found in validate(release.parent.parent, paths).items():
        results, nb = found["results"], solved[stem]
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


def test_untouched_release_fails_only_on_unanswered_exercises(release: Path):
    assignment = release.name
    paths = sorted(release.glob("*.ipynb"))
    problems = []
    for stem, found in validate(release.parent.parent, paths).items():
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
