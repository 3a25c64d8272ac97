"""Lecture notebooks: one nbgrader practice assignment, `lectures`, released into notebooks/.

The instructor's source (source/lectures/, solutions and hidden tests) is the single source of
truth; notebooks/ is its nbgrader release, committed. Fast tests check what is stored: valid
nbformat, no outputs, the Colab cells (badges open the student copy), the "check" cells that
assert each lecture's key facts, the exercises' nbgrader cells, and a student copy that holds no
solution or hidden test. Slow tests compare notebooks/ with a fresh `course release`, execute every
source notebook once, as a student would (offline, on the CPU: no error, nothing on stderr, real
figures), and grade two scripted submissions with nbgrader: the executed source scores full marks,
the untouched student copies score 0 and fail only with the stubs' NotImplementedError.

Executions are shared for the whole session (tests/support/jobs.py): the source executions here, and
the untouched student copies as executed by nbgrader's Validator for tests/test_validate.py, which
are also the blank submission graded here (without executing them a second time).
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from course_tools.colab import BADGE_TAG, BOOTSTRAP_TAG, badge_source, bootstrap_source
from course_tools.release import LECTURES
from support import ROOT, Executed, cli

SOURCE = ROOT / "source" / LECTURES
STUDENT = ROOT / "notebooks"
SOURCES = sorted(SOURCE.glob("*.ipynb"))
CHECK_TAG = "check"
MIN_CHECK_CELLS = 3
MIN_PNG_BYTES = 5_000
# Beyond the generic "check" tag, the cells that assert each notebook's central facts.
REQUIRED_TAGS: dict[str, set[str]] = {
    "01_huggingface_tour.ipynb": {"check-loss", "check-perplexity", "check-final-norm", "check-8bit"},
    "02_bert_embeddings.ipynb": {"check-param-count", "check-bank-embedding-layer"},
    "03_attention_heads.ipynb": {"check-attention", "check-masked-row"},
    "04_fine_tuning.ipynb": {"check-lora", "check-baseline", "check-reload", "check-kbit"},
    "09_decoding_evaluation.ipynb": {"check-greedy-miss", "check-beam-search", "check-length-penalty", "check-bleu",
                                     "check-rouge", "check-perplexity", "check-held-out", "check-multiple-choice"},
    "10_token_tasks_seq2seq.ipynb": {"check-data", "check-alignment", "check-seqeval", "check-pipeline",
                                     "check-teacher-forcing", "check-greedy", "check-beam", "check-exposure-bias"},
}
# The autograded exercises of each lecture and their points, test_<id> and test_<id>_hidden together (other
# lectures need at least one).
EXERCISES: dict[str, dict[str, int]] = {
    "01_huggingface_tour.ipynb": {"sequence_log_prob": 3, "nucleus_filter": 3},
    "02_bert_embeddings.ipynb": {"word_vector": 3, "semantic_search": 2},
    "03_attention_heads.ipynb": {"attention": 3, "previous_token_score": 2},
    "04_fine_tuning.ipynb": {"f1_by_hand": 2, "lora_trainable_parameters": 2},
    "09_decoding_evaluation.ipynb": {"ngram_precision": 3, "pick_answers": 3},
    "10_token_tasks_seq2seq.ipynb": {"align_labels": 3, "entity_spans": 3, "shift_right": 3},
}
NBGRADER_KEYS = {"schema_version", "grade", "locked", "solution", "task", "grade_id", "points", "checksum",
                 "cell_type"}
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?", re.S | re.M)


def _tags(cell) -> list[str]:
    """Return a cell's metadata tags."""
    return list(cell.get("metadata", {}).get("tags", []))


def _nbgrader(cell) -> dict:
    """Return a cell's nbgrader metadata ({} when it has none)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def _check_tags(name: str, nb) -> None:
    """Assert the notebook has enough "check" cells and the tags named for it in REQUIRED_TAGS."""
    tagged = [c for c in nb.cells if CHECK_TAG in _tags(c)]
    assert len(tagged) >= MIN_CHECK_CELLS, (
        f"{name}: {len(tagged)} cell(s) tagged {CHECK_TAG!r}; at least {MIN_CHECK_CELLS} expected")
    present = {t for c in nb.cells for t in _tags(c)}
    missing = REQUIRED_TAGS.get(name, set()) - present
    assert not missing, f"{name}: no cell tagged {sorted(missing)}"
    untagged = [t for c in nb.cells for t in _tags(c) if t.startswith("check-") and CHECK_TAG not in _tags(c)]
    assert not untagged, f"{name}: cells tagged {untagged} must also carry the tag {CHECK_TAG!r}"
    graded_checks = [_nbgrader(c).get("grade_id") for c in tagged if _nbgrader(c)]
    assert not graded_checks, f"{name}: demonstration checks must not be nbgrader cells: {graded_checks}"


def _stored_clean(path: Path, nb, badge_target: str) -> None:
    """Assert valid nbformat, python3 kernel, no outputs, and up-to-date Colab cells opening ``badge_target``."""
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec is not python3"
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_outputs, f"{path.name}: cells {with_outputs} store outputs; clear them before saving"
    for tag, source, kind in ((BADGE_TAG, badge_source(badge_target), "markdown"),
                              (BOOTSTRAP_TAG, bootstrap_source(), "code")):
        cells = [c for c in nb.cells if tag in _tags(c)]
        assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged {tag!r}, expected exactly one"
        assert cells[0].cell_type == kind, f"{path.name}: the {tag!r} cell must be a {kind} cell"
        assert "nbgrader" not in cells[0].metadata, f"{path.name}: the {tag!r} cell must carry no nbgrader metadata"
        assert cells[0].source == source, f"{path.name}: the {tag!r} cell is out of date; run `course stamp`"


def _ends_with_expression(source: str) -> bool:
    """Return whether code ends with an expression whose value nbgrader could read as a score."""
    body = ast.parse(source).body
    if not body or not isinstance(body[-1], ast.Expr):
        return False
    last = body[-1].value
    return not (isinstance(last, ast.Call) and isinstance(last.func, ast.Name) and last.func.id == "print")


def exercises_of(nb) -> dict[str, int]:
    """Return {exercise grade_id: points of its test cells} of a source notebook, checking the pairs.

    An exercise has one test cell ``test_<id>`` (visible asserts) and may have a second, ``test_<id>_hidden``
    (hidden checks only), as in the graded assignments.
    """
    found = {}
    for cell in nb.cells:
        meta = _nbgrader(cell)
        if meta.get("solution") and not meta.get("grade"):
            gid = meta["grade_id"]
            test = [c for c in nb.cells if _nbgrader(c).get("grade_id") == f"test_{gid}"]
            assert len(test) == 1, f"answer cell {gid!r} needs exactly one test cell 'test_{gid}'"
            hidden = [c for c in nb.cells if _nbgrader(c).get("grade_id") == f"test_{gid}_hidden"]
            found[gid] = sum(_nbgrader(c)["points"] for c in test + hidden)
    return found


def graded_cells_of(nb) -> dict[str, int]:
    """Return {test cell grade_id: points} of a source notebook."""
    return {_nbgrader(c)["grade_id"]: _nbgrader(c)["points"] for c in nb.cells
            if _nbgrader(c).get("grade") and not _nbgrader(c).get("solution")}


def hidden_lines(nb) -> list[str]:
    """Return the distinctive lines of the hidden tests and solutions of a source notebook."""
    found = []
    for cell in nb.cells:
        for begin, end in (("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
                           ("### BEGIN SOLUTION", "### END SOLUTION")):
            for block in re.findall(re.escape(begin) + r"(.*?)" + re.escape(end), cell.source, re.S):
                found += [line.strip() for line in block.splitlines() if len(line.strip()) > 25]
    return found


def normalised(path: Path) -> dict:
    """Return a notebook as JSON without the fields that may legitimately vary between runs."""
    data = json.loads(path.read_text())
    data["metadata"].pop("widgets", None)
    return data


# ---------------------------------------------------------------- stored: source and student copies


def test_lectures_exist():
    assert SOURCES, f"no lecture notebooks under {SOURCE}"
    students = sorted(p.name for p in STUDENT.glob("*.ipynb"))
    assert students == [p.name for p in SOURCES], (
        "notebooks/ must hold exactly the student copies of source/lectures/: run `course release lectures`")
    assert not (ROOT / "release" / LECTURES).exists(), "the lectures' release is notebooks/, not release/lectures/"
    assert set(EXERCISES) <= {p.name for p in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_source_stored_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    _stored_clean(path, nb, f"notebooks/{path.name}")
    _check_tags(path.name, nb)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_source_exercises_are_real(path: Path):
    """Every exercise: a stub-able answer cell and a locked test cell with visible and hidden tests."""
    nb = nbformat.read(path, as_version=4)
    ids = [_nbgrader(c)["grade_id"] for c in nb.cells if _nbgrader(c).get("grade_id")]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate grade ids {ids}"
    for cell in nb.cells:
        meta = _nbgrader(cell)
        if not meta:
            continue
        gid = meta.get("grade_id")
        assert set(meta) <= NBGRADER_KEYS and meta["schema_version"] == 3, f"{path.name} {gid}: bad metadata {meta}"
        assert gid and re.fullmatch(r"[A-Za-z0-9_\-]+", gid), f"{path.name}: a graded cell needs a grade_id"
        assert cell.cell_type == "code", f"{path.name} {gid}: lecture exercises are code cells"
        if meta["solution"]:
            assert not meta["grade"] and not meta["locked"], f"{path.name} {gid}: an answer cell is solution only"
            lines = cell.source.splitlines()
            assert lines[0].startswith("def ") and lines[1].lstrip().startswith('"""'), (
                f"{path.name} {gid}: the def line and docstring stay outside the solution, so the stub keeps them")
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source, gid
        else:
            assert meta["grade"] and meta["locked"] and meta.get("points", 0) > 0, f"{path.name} {gid}: test cell"
            assert gid.startswith("test_"), f"{path.name} {gid}: test cells are named test_<exercise>"
            assert "### BEGIN HIDDEN TESTS" in cell.source and "### END HIDDEN TESTS" in cell.source, (
                f"{path.name} {gid}: add hidden tests for the edge cases")
            visible = HIDDEN.sub("", cell.source)
            if not gid.endswith("_hidden"):  # a test_<id>_hidden cell holds hidden checks only
                assert "assert " in visible, f"{path.name} {gid}: the student needs visible asserts"
            for part, code in (("with", cell.source), ("without", visible)):
                assert not _ends_with_expression(code), (
                    f"{path.name} {gid}: the test cell ({part} its hidden tests) ends with an expression, "
                    "which nbgrader may read as a partial score")
    found = exercises_of(nb)
    assert found, f"{path.name}: a lecture needs at least one autograded exercise"
    if path.name in EXERCISES:
        assert found == EXERCISES[path.name], f"{path.name}: exercises and points {found}"
    assert hidden_lines(nb), f"{path.name}: no hidden parts"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_student_copy_stored_clean_and_hides_answers(path: Path):
    student = STUDENT / path.name
    assert student.is_file(), f"notebooks/{path.name} is missing: run `course release lectures`"
    nb = nbformat.read(student, as_version=4)
    _stored_clean(student, nb, f"notebooks/{path.name}")
    _check_tags(path.name, nb)
    text = student.read_text()
    for marker in MARKERS:
        assert marker not in text, f"notebooks/{path.name}: {marker!r} is in the student copy"
    released = "\n".join(c.source for c in nb.cells)
    secret = [line for line in hidden_lines(nbformat.read(path, as_version=4)) if line in released]
    assert not secret, f"notebooks/{path.name}: solution or hidden-test lines leak: {secret}"
    stubs = [c for c in nb.cells if _nbgrader(c).get("solution")]
    assert stubs and all("raise NotImplementedError()" in c.source for c in stubs), (
        f"notebooks/{path.name}: every answer cell should be a stub that raises NotImplementedError")


def prefetch(jobs, items) -> None:
    """Start what the selected slow tests need: the released course, the source executions, the blank submission."""
    names = {item.originalname for item in items}
    graded = "test_lectures_are_graded_by_nbgrader" in names
    if graded or "test_student_copies_are_fresh" in names:
        jobs.prefetch(jobs.course(LECTURES))
    paths = SOURCES if graded else [item.callspec.params["path"] for item in items
                                    if item.originalname == "test_source_lecture_runs_offline"]
    for path in paths:
        jobs.prefetch(executed_source(jobs, path))
    for path in SOURCES if graded else []:
        jobs.prefetch(jobs.validation(LECTURES, "untouched", path.stem))


@pytest.fixture(scope="module")
def course(jobs) -> Path:
    """Return the session's scratch course holding this repository's lectures, released by `course release`."""
    return jobs.course(LECTURES).result()


@pytest.mark.slow
def test_student_copies_are_fresh(course: Path):
    """The committed notebooks/ equals a fresh `course release lectures` of the committed source."""
    fresh = sorted(p.name for p in (course / "notebooks").iterdir())
    committed = sorted(p.name for p in STUDENT.iterdir())
    assert fresh == committed, "notebooks/ holds other files than a fresh release: run `course release lectures`"
    for name in committed:
        assert normalised(course / "notebooks" / name) == normalised(STUDENT / name), (
            f"notebooks/{name} is out of date: run `course release lectures` and commit the result")
    for path in SOURCES:  # the release stamps the scratch source; the committed one must already be so
        assert normalised(course / "source" / LECTURES / path.name) == normalised(path), (
            f"source/lectures/{path.name}: its Colab cells are out of date; run `course stamp`")


# ---------------------------------------------------------------- executed


def executed_source(jobs, path: Path):
    """Return the session's execution of a source lecture (offline, as a student would run it): a task whose
    result() is an Executed."""
    return jobs.execution(path, timeout=300, env={"HF_HUB_OFFLINE": "1"})


def _png_ok(data: str) -> tuple[int, tuple[int, int]]:
    """Decode a base64 PNG and return its size in bytes and its pixel size (raises if it is not a PNG)."""
    from PIL import Image

    raw = base64.b64decode(data)
    with Image.open(io.BytesIO(raw)) as image:
        image.verify()
    with Image.open(io.BytesIO(raw)) as image:
        return len(raw), image.size


@pytest.mark.slow
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_source_lecture_runs_offline(jobs, path: Path):
    run: Executed = executed_source(jobs, path).result()
    print(f"{path.name}: executed in {run.seconds:.1f} s")
    assert run.error is None, f"{path.name} failed:\n{run.error}"
    assert run.stderr() == [], f"{path.name} wrote to stderr (fix it at the source):\n{run.stderr()[:3]}"
    images = run.images()
    assert images, f"{path.name}: no figure (PNG) was displayed"
    for number, data in enumerate(images, 1):
        size, (width, height) = _png_ok(data)
        assert size > MIN_PNG_BYTES and width > 100 and height > 100, (
            f"{path.name}: figure {number} looks empty ({size} bytes, {width}x{height} px)")
    _check_tags(path.name, run.nb)


def _submit(course: Path, student: str, notebooks: dict[str, nbformat.NotebookNode]) -> None:
    """Write notebooks as ``student``'s submission of the lectures."""
    folder = course / "submitted" / student / LECTURES
    folder.mkdir(parents=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / name)
    (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")


def _scores(course: Path, student: str) -> dict[str, float]:
    """Return {grade_id: score} of one student's lectures submission, plus '_total' and '_max'."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        submission = gb.find_submission(LECTURES, student)
        found = {"_total": submission.score, "_max": submission.max_score}
        for nb in submission.notebooks:
            for grade in nb.grades:
                found[f"{nb.name}/{grade.name}"] = grade.score
        return found


@pytest.mark.slow
def test_lectures_are_graded_by_nbgrader(jobs, course: Path):
    """`lectures` grades like any assignment: the source scores full marks, the student copies 0.

    Both submissions are graded without executing them again: the reference is each source notebook
    as executed above (its one execution, with the hidden tests in place); the blank one is the
    released student copies (equal to the committed notebooks/, see test_student_copies_are_fresh) as
    nbgrader's own Execute step ran them when Validate checked them (tests/test_validate.py), their
    one execution. A stub's NotImplementedError stops each test cell before its hidden block, so
    putting the hidden tests back changes no output of the blank copies.
    """
    reference = {}
    for path in SOURCES:
        run = executed_source(jobs, path).result()
        assert run.error is None, f"{path.name} failed, so it cannot serve as the reference:\n{run.error}"
        reference[path.name] = run.nb
    untouched = jobs.validations(LECTURES, "untouched", [p.stem for p in SOURCES])
    blank = {}
    for path in SOURCES:
        executed = untouched[path.stem]["executed"]
        assert executed, f"notebooks/{path.name} was not executed by Validate: {untouched[path.stem]['results']}"
        blank[path.name] = nbformat.from_dict(executed)
    _submit(course, "ref", reference)
    _submit(course, "blank", blank)
    cli.parallel(course, [["autograde", LECTURES, "--student", student, "--no-execute"] for student in ("ref", "blank")])

    points = {f"{p.stem}/{gid}": pts for p in SOURCES
              for gid, pts in graded_cells_of(nbformat.read(p, as_version=4)).items()}
    ref, blank = _scores(course, "ref"), _scores(course, "blank")
    print(f"lectures: reference {ref['_total']} of {ref['_max']}, blank {blank['_total']}")
    assert ref["_max"] == sum(points.values()), (ref, points)
    for gid, pts in points.items():
        assert ref[gid] == pts, f"reference {gid}: {ref[gid]} of {pts}"
        assert blank[gid] == 0, f"untouched {gid}: {blank[gid]}"
    assert ref["_total"] == ref["_max"] and blank["_total"] == 0

    for path in SOURCES:
        nb = nbformat.read(course / "autograded" / "blank" / LECTURES / path.name, as_version=4)
        tests = set(graded_cells_of(nbformat.read(path, as_version=4)))
        errors = [(_nbgrader(c).get("grade_id"), o["ename"]) for c in nb.cells if c.cell_type == "code"
                  for o in c.get("outputs", []) if o["output_type"] == "error"]
        from course_tools.checks import FAILED  # the grader's error in front of a cell that reported no answers

        wrong = [(gid, ename) for gid, ename in errors
                 if ename not in ("NotImplementedError", FAILED) or gid not in tests]
        assert not wrong, f"notebooks/{path.name}: errors other than an exercise's NotImplementedError: {wrong}"
        assert {gid for gid, _ in errors} == tests, f"notebooks/{path.name}: every test cell should fail untouched"


# ---------------------------------------------------------------- scripted answers, graded outside the kernel


def _lecture_variants() -> dict:
    """Return tests/lecture_variants.py's scripted students per lecture notebook (stem)."""
    from lecture_variants import LECTURE_VARIANTS

    return LECTURE_VARIANTS


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(_lecture_variants()))
def test_lecture_answers_are_graded_by_their_hidden_checks(course: Path, stem: str):
    """One lecture's scripted students, executed and graded by nbgrader: the reference answers and the correct
    alternatives keep every point, each wrong answer scores exactly what its Variant says (the hidden checks
    are decided by the grader, from the answers recorded in expected/, not by asserts in the kernel)."""
    import subprocess
    import sys

    import submissions as sub
    from course_tools.environment import nbgrader_env

    points = graded_cells_of(nbformat.read(SOURCE / f"{stem}.ipynb", 4))
    reference = {(stem, gid): text for gid, text in sub.reference_answers(SOURCE)[stem].items()}
    students = {"ref": sub.Variant(reference, points), **_lecture_variants()[stem]}
    prefix = stem.split("_")[0]
    for name, variant in students.items():
        nbs = {stem: nbformat.read(course / "notebooks" / f"{stem}.ipynb", as_version=4)}
        for (_, gid), text in variant.sources.items():
            sub.set_source(nbs, stem, gid, text)
        sub.submit(course, f"{prefix}-{name}", nbs, assignment=LECTURES)
    done = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", LECTURES, "--student", f"{prefix}-*",
                           "--Execute.iopub_timeout=60"], cwd=course, text=True, capture_output=True,
                          env=nbgrader_env(COURSE_ROOT=str(course), HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, (
        f"nbgrader autograde failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    found = {name: {gid: _scores(course, f"{prefix}-{name}")[f"{stem}/{gid}"] for gid in points} for name in students}
    print(f"{stem}: {found}")
    wrong = {name: (found[name], variant.expected) for name, variant in students.items()
             if found[name] != {**points, **variant.expected}}
    assert not wrong, f"{stem}: scores (found, expected) differ: {wrong}"
