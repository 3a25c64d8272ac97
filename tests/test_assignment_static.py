"""Fast checks of the graded assignment's notebooks: nbgrader metadata, locked setup, no hard-coded ids."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT

A = "language_models"
SOURCE = ROOT / "source" / A
RELEASE = ROOT / "release" / A
NOTEBOOKS = sorted(SOURCE.glob("*.ipynb"))
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


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["01_theory.ipynb", "02_tokenization.ipynb",
                                            "03_generation.ipynb", "04_chat.ipynb"]
    assert [p.name for p in sorted(RELEASE.glob("*.ipynb"))] == [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
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


def test_grade_ids_and_points_across_the_assignment():
    auto, manual = {}, {}
    for path in NOTEBOOKS:
        for cell, meta in nbgrader_cells(nbformat.read(path, as_version=4)):
            if meta["grade"]:
                (manual if meta["solution"] else auto)[meta["grade_id"]] = meta["points"]
    assert sum(auto.values()) == 21, auto
    assert set(manual) == {"jensen_proof", "word_boundary", "context_counterexample"}, manual
    assert all(2 <= p <= 5 for p in manual.values()), manual
    for exercise in ("reverse_dict", "stopping_criteria", "decode_chat_messages", "kl_divergence"):
        assert f"test_{exercise}" in auto and f"test_{exercise}_hidden" in auto, exercise


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_test_cells_are_model_agnostic(path: Path):
    """No token ids, devices or paths written into tests or reference solutions."""
    for cell, meta in nbgrader_cells(nbformat.read(path, as_version=4)):
        if cell.cell_type != "code" or not (meta["grade"] or meta["solution"]):
            continue
        numbers = [n for n in ids_in(cell.source) if n not in (500, 1234)]  # loop count, seed
        assert not numbers, f"{meta['grade_id']}: integer literals that look like token ids: {numbers}"
        assert not NOT_PORTABLE.search(cell.source), f"{meta['grade_id']}: device or path hard-coded"
        assert "load_model(" not in cell.source, f"{meta['grade_id']}: load models in the setup, not in tests"


def test_readme_documents_the_self_check():
    text = (SOURCE / "README.md").read_text()
    assert "nbgrader validate" in text and "Colab" in text
    assert "BEGIN SOLUTION" not in text, "this README is copied into the student release"
    main = (SOURCE.parent.parent / "README.md").read_text()
    assert "course release" in main and "nbgrader validate" in main
