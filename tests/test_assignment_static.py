"""Fast checks of the graded assignments' notebooks: nbgrader metadata, locked setup, no hard-coded ids,
test cells that end with a statement (nbgrader reads a final expression's value as a partial score)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

import submissions as sub
from support import ROOT

SPECS = sub.SPECS
NOTEBOOKS = [ROOT / "source" / name / f"{stem}.ipynb" for name, spec in SPECS.items() for stem in spec.notebooks]
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", re.S)
REQUIRED = {"schema_version", "grade", "locked", "solution"}
ALLOWED = REQUIRED | {"task", "grade_id", "points", "checksum", "cell_type"}
GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]+$")
# A device or a model path written into a test would break on another machine or model.
NOT_PORTABLE = re.compile(r"""["'](cuda(:\d)?|mps|/models/|/home/|/root/)""")


def nbgrader_cells(nb):
    """Return (cell, its nbgrader metadata) for every cell that has nbgrader metadata."""
    return [(c, c.metadata["nbgrader"]) for c in nb.cells if "nbgrader" in c.metadata]


def ids_in(source: str) -> list[int]:
    """Return the integer literals in ``source`` that could be token ids (at least 3 digits)."""
    tree = ast.parse(source)
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and type(n.value) is int and n.value >= 100]


def nb_id(path: Path) -> str:
    """Return assignment/notebook for test ids."""
    return f"{path.parent.name}/{path.stem}"


@pytest.mark.parametrize("name", list(SPECS))
def test_there_are_notebooks(name: str):
    source = sorted(p.stem for p in (ROOT / "source" / name).glob("*.ipynb"))
    assert source == SPECS[name].notebooks
    assert sorted(p.stem for p in (ROOT / "release" / name).glob("*.ipynb")) == source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=nb_id)
def test_nbgrader_metadata_is_valid(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    seen = set()
    for cell, meta in nbgrader_cells(nb):
        assert REQUIRED <= set(meta) <= ALLOWED, f"{path.name}: bad nbgrader keys {sorted(meta)}"
        assert meta["schema_version"] == 3, f"{path.name}: schema_version must be 3"
        gid = meta.get("grade_id")
        if meta["grade"] or meta["solution"] or meta["locked"]:
            assert gid and GRADE_ID.match(gid), f"{path.name}: cell needs a valid grade_id, has {gid!r}"
        assert gid not in seen, f"{path.name}: duplicate grade_id {gid!r}"
        seen.add(gid)
        if meta["grade"]:
            assert isinstance(meta.get("points"), (int, float)) and meta["points"] > 0, f"{gid}: points"
        if meta["grade"] and not meta["solution"]:
            assert meta["locked"] and cell.cell_type == "code", f"{gid}: a test cell is locked code"
        if meta["solution"]:
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source, gid
            assert not meta["locked"], f"{gid}: an answer cell cannot be locked"
        if meta["solution"] and cell.cell_type == "markdown":
            assert meta["grade"], f"{gid}: a markdown answer is graded by hand"
        if "### BEGIN HIDDEN TESTS" in cell.source:
            assert meta["grade"] and not meta["solution"], f"{gid}: hidden tests only in test cells"
    assert any(m["grade"] for _, m in nbgrader_cells(nb)), f"{path.name} has no graded cell"


@pytest.mark.parametrize("name", list(SPECS))
def test_grade_ids_and_points_across_the_assignment(name: str):
    """The points in the notebooks are the ones the end-to-end tests (and the README) expect."""
    spec = SPECS[name]
    for stem in spec.notebooks:
        auto, manual, answers = {}, {}, []
        for cell, meta in nbgrader_cells(nbformat.read(ROOT / "source" / name / f"{stem}.ipynb", as_version=4)):
            if meta["grade"]:
                (manual if meta["solution"] else auto)[meta["grade_id"]] = meta["points"]
            elif meta["solution"]:
                answers.append(meta["grade_id"])
        assert auto == spec.auto[stem], (stem, auto)
        assert manual == spec.manual.get(stem, {}), (stem, manual)
        assert all(2 <= p <= 5 for p in manual.values()), manual
        for exercise in answers:
            assert f"test_{exercise}" in auto and f"test_{exercise}_hidden" in auto, exercise
    assert spec.max_auto == 21, spec.max_auto
    total = spec.max_auto + sum(sum(v.values()) for v in spec.manual.values())
    readme = (ROOT / "source" / name / "README.md").read_text()
    assert f"{total} points: {spec.max_auto} autograded" in readme, "the README states the points"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=nb_id)
def test_setup_is_locked_and_quiet(path: Path):
    """The first code cell is the Colab bootstrap; the next is a locked setup cell calling quiet()."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "colab-bootstrap" in code[0].metadata.get("tags", []), "first code cell: Colab bootstrap"
    assert any("colab-badge" in c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "markdown")
    setup = code[1]
    meta = setup.metadata.get("nbgrader", {})
    assert meta.get("locked") and not meta.get("grade") and not meta.get("solution"), "setup must be read-only"
    assert "helpers.quiet()" in setup.source
    first_test = next(i for i, c in enumerate(code) if c.metadata.get("nbgrader", {}).get("grade"))
    loads = [i for i, c in enumerate(code) if "load_model(" in c.source or "from_pretrained(" in c.source]
    for i in loads:
        assert code[i].metadata.get("nbgrader", {}).get("locked"), "models load in locked setup cells"
        assert i < first_test, "models load before the tests"
    assert "nbgrader validate" in nb.cells[1].source, "the self-check instructions open the notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=nb_id)
def test_test_cells_end_with_a_statement(path: Path):
    """In the student copy (hidden tests removed) and in the source, no test cell ends with an expression.

    nbgrader's Validate and autograde read the value of a test cell's last expression as a partial score
    (0.0 from a function returning a float fails a correct notebook); a print() call shows nothing, and
    neither does helpers.checks.answer() (it returns None), which ends many hidden blocks.
    """
    release = ROOT / "release" / path.parent.name / path.name
    for nb in (nbformat.read(path, as_version=4), nbformat.read(release, as_version=4)):
        for cell, meta in nbgrader_cells(nb):
            if cell.cell_type != "code" or not meta["grade"] or meta["solution"]:
                continue
            for source in (cell.source, HIDDEN.sub("", cell.source)):
                body = ast.parse(source).body
                last = body[-1] if body else None
                is_print = (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
                            and getattr(last.value.func, "id", None) in ("print", "answer"))
                assert not isinstance(last, ast.Expr) or is_print, \
                    f"{meta['grade_id']}: the cell ends with an expression; end it with an assert or an assignment"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=nb_id)
def test_test_cells_are_model_agnostic(path: Path):
    """No token ids, devices or paths written into tests or reference solutions."""
    for cell, meta in nbgrader_cells(nbformat.read(path, as_version=4)):
        if cell.cell_type != "code" or not (meta["grade"] or meta["solution"]):
            continue
        numbers = [n for n in ids_in(cell.source) if n not in (500, 1234)]  # loop count, seed
        assert not numbers, f"{meta['grade_id']}: integer literals that look like token ids: {numbers}"
        assert not NOT_PORTABLE.search(cell.source), f"{meta['grade_id']}: device or path hard-coded"
        assert "load_model(" not in cell.source, f"{meta['grade_id']}: load models in the setup, not in tests"


@pytest.mark.parametrize("name", list(SPECS))
def test_readme_documents_the_self_check(name: str):
    text = (ROOT / "source" / name / "README.md").read_text()
    assert "nbgrader validate" in text and "Colab" in text
    assert all(f"{stem}.ipynb" in text for stem in SPECS[name].notebooks), "the README names every notebook"
    assert "BEGIN SOLUTION" not in text, "this README is copied into the student release"
    main = (ROOT / "README.md").read_text()
    assert "course release" in main and "nbgrader validate" in main
    assert f"source/{name}/" in main, "the main README lists the assignment"
