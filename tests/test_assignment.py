"""The graded assignments end to end: source and release executed, nbgrader run for real on a
temporary course (generate_assignment, validate, autograde, generate_feedback, export).

Every test runs once per assignment in ``submissions.SPECS``. One course per assignment (the session's
scratch course, released by `course release`) holds every scripted student (reference, blank, partial,
correct alternatives, wrong answers that look right); each is autograded once, and some a second time to
check that scores repeat. The students that probe nbgrader itself (an edited test cell, library warnings,
deleted and retyped cells, an infinite loop) run on language_models only.

Executions are shared for the whole session (tests/support/jobs.py): the source executions, and the
untouched release as nbgrader's Validator executed it, which gives `nbgrader validate --invert`'s verdict
here and tests/test_validate.py's, and is the blank submission (graded without executing it again).
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import nbformat
import pytest

from course_tools.checks import FAILED

import submissions as sub
from support import ROOT, cli

pytestmark = pytest.mark.slow

SPECS = sub.SPECS
LM = "language_models"
LOOP_TIMEOUT = 10  # seconds per cell for the student whose reverse_dict never returns
nbgrader, parallel = cli.nbgrader, cli.parallel


def scores(course: Path, student: str, name: str) -> dict[str, float | None]:
    """Return {grade_id: score (None while it waits for manual grading)} for one student, plus '_total'."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        submission = gb.find_submission(name, student)
        found: dict[str, float | None] = {"_total": submission.score}
        for nb in submission.notebooks:
            for grade in nb.grades:
                found[grade.name] = None if grade.needs_manual_grade else grade.score
        return found


def auto_total(found: dict, spec: sub.Spec) -> float:
    """Return the sum of a student's autograded test-cell scores."""
    return sum(found.get(g) or 0 for tests in spec.auto.values() for g in tests)


def normalised(path: Path) -> dict:
    """Return a notebook as JSON with the fields that may legitimately vary between runs removed."""
    data = json.loads(path.read_text())
    data["metadata"].pop("widgets", None)
    return data


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=list(SPECS))
def spec(request) -> sub.Spec:
    """Return the graded assignment under test (every test runs once per assignment)."""
    return SPECS[request.param]


@pytest.fixture(scope="module")
def answers(spec: sub.Spec) -> dict:
    """Return the reference answers taken from source/."""
    return sub.reference_answers(ROOT / "source" / spec.name)


def prefetch(jobs, items) -> None:
    """Start, per assignment in test order, what its selected tests need: its course, its source executions,
    its untouched release as Validate executes it (the blank student and the --invert verdict)."""
    wanted: dict[str, set[str]] = {}
    for item in items:
        if "spec" in getattr(getattr(item, "callspec", None), "params", {}):
            wanted.setdefault(item.callspec.params["spec"], set()).add(item.originalname)
    static = {"test_source_passes_every_test_cell", "test_release_hides_solutions_and_hidden_tests"}
    for name, tests in wanted.items():
        if tests - static:
            jobs.prefetch(jobs.course(name))
        if "test_source_passes_every_test_cell" in tests:
            for stem in SPECS[name].notebooks:
                jobs.prefetch(source_run(jobs, name, stem))
        if tests - static - {"test_release_is_up_to_date"}:
            for stem in SPECS[name].notebooks:
                jobs.prefetch(jobs.validation(name, "untouched", stem))


def source_run(jobs, name: str, stem: str):
    """Return the session's execution of a source notebook (a task whose result() is an Executed)."""
    return jobs.execution(ROOT / "source" / name / f"{stem}.ipynb", timeout=300)


@pytest.fixture(scope="module")
def course(jobs, spec: sub.Spec) -> Path:
    """Return the session's scratch course holding the assignment, released by `course release`."""
    return jobs.course(spec.name).result()


def robustness_students(course: Path, fresh) -> None:
    """Submit the language_models students that probe nbgrader itself (edited, warnings, mangled, loop)."""
    edited = fresh()
    sub.set_source(edited, "02_tokenization", "reverse_dict", sub.WRONG[("02_tokenization", "reverse_dict")])
    sub.set_source(edited, "02_tokenization", "test_reverse_dict", sub.EDITED_TEST)
    sub.submit(course, "edited", edited, only=["02_tokenization"])

    warn = fresh()
    sub.set_source(warn, "02_tokenization", "reverse_dict", sub.WITH_WARNINGS)
    sub.submit(course, "warn", warn, only=["02_tokenization"])

    mangled = fresh()
    sub.solve(mangled, sub.reference_answers(course / "source" / LM), which=["kl_divergence", "reverse_dict"])
    sub.find_cell(mangled["01_theory"], "kl_divergence").cell_type = "markdown"
    cell = sub.find_cell(mangled["01_theory"], "kl_divergence")
    for key in ("outputs", "execution_count"):
        cell.pop(key, None)
    nb02 = mangled["02_tokenization"]
    nb02.cells.remove(sub.find_cell(nb02, "test_reverse_dict"))
    sub.submit(course, "mangled", mangled, only=["01_theory", "02_tokenization"])

    loop = fresh()
    sub.solve(loop, sub.reference_answers(course / "source" / LM), which=["kl_divergence"])
    sub.set_source(loop, "02_tokenization", "reverse_dict", sub.LOOP_FOREVER)
    sub.submit(course, "loop", loop, only=["01_theory", "02_tokenization"])


@pytest.fixture(scope="module")
def graded(jobs, course: Path, answers: dict, spec: sub.Spec) -> dict:
    """Submit every scripted student, autograde them (twice for some) and return their scores.

    The blank student is the untouched release as nbgrader's Validator executed it (the session's one
    execution of it), graded with --no-execute; every other student is executed by autograde.
    """
    A = spec.name
    release_dir = course / "release" / A

    def fresh():
        return sub.load_release(release_dir)

    ref = fresh()
    sub.solve(ref, answers)
    sub.submit(course, "ref", ref, assignment=A)

    untouched = jobs.validations(A, "untouched", spec.notebooks)
    assert all(found["executed"] for found in untouched.values()), {s: f["results"] for s, f in untouched.items()}
    sub.submit(course, "blank", {stem: nbformat.from_dict(found["executed"]) for stem, found in untouched.items()},
               assignment=A)
    nbgrader(course, "autograde", A, "--student", "blank", "--no-execute", check=True)

    partial = fresh()
    sub.solve(partial, answers, which=[spec.partial])
    for (stem, gid), source in spec.wrong.items():
        if gid != spec.partial:
            sub.set_source(partial, stem, gid, source)
    sub.submit(course, "partial", partial, assignment=A)

    for student, variant in spec.variants.items():
        nbs = fresh()
        for (stem, gid), source in variant.sources.items():
            sub.set_source(nbs, stem, gid, source)
        sub.submit(course, student, nbs, only=variant.notebooks(), assignment=A)

    students = ["ref", "partial", *spec.variants]
    if A == LM:
        robustness_students(course, fresh)
        students += ["edited", "warn", "mangled"]
    # Two autograde processes side by side (2 cores; one BLAS thread per kernel), each grading half of
    # the students in one call; nbgrader's sqlite gradebook copes with the two writers.
    halves = [students[0::2], students[1::2]]
    times = {}
    start = time.perf_counter()
    first = parallel(course, [["autograde", A,
                               "--CourseDirectory.student_id_exclude=" + ",".join(other + ["blank", "loop"])]
                              for other in (halves[1], halves[0])])
    times["autograde"] = time.perf_counter() - start
    students.insert(1, "blank")
    result = {"scores": {s: scores(course, s, A) for s in students}, "log": "".join(first), "times": times}
    if A == LM:
        # The loop student alone, with a short per-cell timeout; meanwhile, grade three other
        # submissions a second time, from scratch: their scores must not move.
        start = time.perf_counter()
        loop_log, *_ = parallel(course, [
            ["autograde", A, "--student", "loop", f"--Execute.timeout={LOOP_TIMEOUT}"],
            ["autograde", A, "--student", "warn", "--force"],
        ])
        parallel(course, [["autograde", A, "--student", "mangled", "--force"],
                          ["autograde", A, "--student", "edited", "--force"]])
        times["loop+regrade"] = time.perf_counter() - start
        result["scores"]["loop"] = scores(course, "loop", A)
        result["loop_log"] = loop_log
        result["again"] = {s: scores(course, s, A) for s in ("warn", "mangled", "edited")}
    else:
        parallel(course, [["autograde", A, "--student", "partial", "--force"]])
        result["again"] = {"partial": scores(course, "partial", A)}
    print(f"{A}: autograde times (s):", {k: round(v, 1) for k, v in times.items()})
    return result


def language_models_only(spec: sub.Spec) -> None:
    """Skip a test that probes nbgrader through the language_models students only."""
    if spec.name != LM:
        pytest.skip("nbgrader robustness is probed once, on language_models")


# ---------------------------------------------------------------- source and release


def test_source_passes_every_test_cell(jobs, spec: sub.Spec):
    """Executing the instructor's source runs every cell, every test included, without an error.

    (How long it takes is measured by benchmarks/bench_notebooks.py, against its goal of a minute.)
    """
    total = 0.0
    for stem in spec.notebooks:
        run = source_run(jobs, spec.name, stem).result()
        assert run.error is None, f"{stem}: {run.error}"
        stderr = [o for c in run.nb.cells if c.cell_type == "code" for o in c.outputs if o.get("name") == "stderr"]
        assert not stderr, f"{stem} writes to stderr: {stderr[:2]}"
        total += run.seconds
    print(f"{spec.name}: source executed in {total:.1f} s")


def test_release_fails_only_with_not_implemented(graded: dict, course: Path, spec: sub.Spec):
    """The untouched release, as executed by nbgrader (its Execute step, nbclient): every error comes from a stub.

    Every exercise is a function, so each test cell that calls a stub meets its NotImplementedError.
    """
    for stem in spec.notebooks:
        nb = nbformat.read(course / "autograded" / "blank" / spec.name / f"{stem}.ipynb", as_version=4)
        errors = [(sub.grade_id(c), o["ename"], o["evalue"]) for c in nb.cells if c.cell_type == "code"
                  for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert errors, f"{stem}: the release should fail somewhere"
        for gid, ename, evalue in errors:
            assert ename in ("NotImplementedError", FAILED), f"{stem}: cell {gid} failed with {ename}: {evalue}"
        failing = {gid for gid, _, _ in errors}
        assert set(spec.auto[stem]) <= failing, f"{stem}: every test cell of the release must fail, failing: {failing}"


def test_release_is_up_to_date(course: Path, spec: sub.Spec):
    """The committed release equals a fresh `course release` of the committed source."""
    fresh_dir, committed_dir = course / "release" / spec.name, ROOT / "release" / spec.name
    fresh = sorted(p.name for p in fresh_dir.iterdir())
    committed = sorted(p.name for p in committed_dir.iterdir())
    assert fresh == committed, "release/ holds other files than a fresh release: run `course release`"
    for name in committed:
        if not name.endswith(".ipynb"):
            same = (fresh_dir / name).read_bytes() == (committed_dir / name).read_bytes()
        else:
            same = normalised(fresh_dir / name) == normalised(committed_dir / name)
        assert same, (
            f"release/{spec.name}/{name} is out of date: run `course release {spec.name}` and commit the result")


def hidden_lines(path: Path) -> list[str]:
    """Return the distinctive lines of the hidden tests and solutions of a source notebook."""
    found = []
    for cell in nbformat.read(path, as_version=4).cells:
        for begin, end in (("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
                           ("### BEGIN SOLUTION", "### END SOLUTION")):
            for block in re.findall(re.escape(begin) + r"(.*?)" + re.escape(end), cell.source, re.S):
                found += [line.strip() for line in block.splitlines() if len(line.strip()) > 25]
    return found


def test_release_hides_solutions_and_hidden_tests(spec: sub.Spec):
    """No markers, no solution line and no hidden test line (with its expected values) in the release."""
    for stem in spec.notebooks:
        release_path = ROOT / "release" / spec.name / f"{stem}.ipynb"
        source_path = ROOT / "source" / spec.name / f"{stem}.ipynb"
        text = release_path.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{stem}: {marker!r} is in the release"
        released = "\n".join(c.source for c in nbformat.read(release_path, as_version=4).cells)
        secret = [line for line in hidden_lines(source_path) if line in released]
        assert not secret, f"{stem}: hidden lines leak into the release: {secret}"
        assert hidden_lines(source_path), f"{stem}: the source should have hidden parts"


def test_validate_invert_passes_on_release(jobs, spec: sub.Spec):
    """`nbgrader validate --invert` on the untouched release: no test passes.

    What nbgrader's ValidateApp prints for `--invert NOTEBOOK`, from the session's one execution of the
    untouched release (tests/support/validate.py; the command line runs in test_edited_test_cell_...).
    """
    for stem, found in jobs.validations(spec.name, "untouched", spec.notebooks).items():
        out = found["invert_output"]
        assert out.count("Success!") == 1 and "does not pass any tests" in out, f"{stem}:\n{out[-3000:]}"
        assert "passed" not in found["inverted"] and "changed" not in found["inverted"], found["inverted"]


# ---------------------------------------------------------------- autograde


def test_reference_scores_the_maximum(graded: dict, spec: sub.Spec):
    found = graded["scores"]["ref"]
    assert auto_total(found, spec) == spec.max_auto == 21, found
    for tests in spec.auto.values():
        for gid, points in tests.items():
            assert found[gid] == points, f"{gid}: {found[gid]} of {points}"
    # Manual answers wait for a person: they carry no automatic score.
    for manual in spec.manual.values():
        for gid in manual:
            assert found[gid] is None, f"{gid} should wait for manual grading, got {found[gid]}"
    assert found["_total"] == spec.max_auto


def test_untouched_release_scores_zero(graded: dict, spec: sub.Spec):
    found = graded["scores"]["blank"]
    assert found["_total"] == 0, found
    assert all(found.get(g) == 0 for manual in spec.manual.values() for g in manual), found


def test_partial_submission_scores_exactly_its_points(graded: dict, spec: sub.Spec):
    found = graded["scores"]["partial"]
    earned = spec.tests_of(spec.partial)
    assert earned and all(found[gid] == pts for gid, pts in earned.items()), (earned, found)
    assert auto_total(found, spec) == sum(earned.values()), found
    assert found["_total"] == sum(earned.values()), found


def test_correct_alternatives_and_wrong_answers_score_exactly(graded: dict, spec: sub.Spec):
    """Correct answers written differently keep every point; answers that only look right lose theirs.

    Alternatives: loops, dict(zip(...)), scipy's rel_entr, torch, a custom StoppingCriteria, einsum,
    recursion, a vectorised span search. Wrong: objects whose __eq__ always says True, first-key-wins,
    no 0 log 0 convention, a chat decoder that knows only ChatML and Phi-3.5, a missing 1/sqrt(d),
    padding averaged in, string-replace merges, insertion-order ties, independent start/end argmax.
    """
    for student, variant in spec.variants.items():
        found = graded["scores"][student]
        wrong = {gid: (found[gid], pts) for gid, pts in variant.expected.items() if found[gid] != pts}
        assert not wrong, f"{spec.name} student {student}: (score, expected) {wrong}"
        assert found["_total"] == sum(variant.expected.values()), f"{student}: {found}"


def test_edited_test_cell_is_detected_and_restored(graded: dict, course: Path, spec: sub.Spec):
    language_models_only(spec)
    path = course / "submitted" / "edited" / LM / "02_tokenization.ipynb"
    proc = nbgrader(course, "validate", str(path), check=False)
    out = proc.stdout + proc.stderr
    assert "THE CONTENTS OF" in out and "HAVE CHANGED" in out, out[-3000:]
    # Autograde put the original test back: the wrong reverse_dict fails it.
    found = graded["scores"]["edited"]
    assert found["test_reverse_dict"] == 0 and found["_total"] == 0, found
    restored = nbformat.read(course / "autograded" / "edited" / LM / "02_tokenization.ipynb", as_version=4)
    assert sub.EDITED_TEST not in sub.find_cell(restored, "test_reverse_dict").source


def test_infinite_loop_times_out_and_is_still_graded(graded: dict, course: Path, spec: sub.Spec):
    language_models_only(spec)
    found = graded["scores"]["loop"]
    assert found["test_reverse_dict"] == 0 and found["test_reverse_dict_hidden"] == 0, found
    assert found["test_kl_divergence"] == 2 and found["test_kl_divergence_hidden"] == 3, found
    assert found["_total"] == 5, found
    nb = nbformat.read(course / "autograded" / "loop" / LM / "02_tokenization.ipynb", as_version=4)
    errors = [o for c in nb.cells if sub.grade_id(c) == "test_reverse_dict" for o in c.outputs
              if o["output_type"] == "error"]
    assert errors, "the looping test cell should record an error (timeout / interrupt)"


def test_library_warnings_do_not_zero_a_correct_answer(graded: dict, course: Path, spec: sub.Spec):
    language_models_only(spec)
    found = graded["scores"]["warn"]
    assert found["test_reverse_dict"] == 2 and found["test_reverse_dict_hidden"] == 3, found
    nb = nbformat.read(course / "autograded" / "warn" / LM / "02_tokenization.ipynb", as_version=4)
    stderr = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("name") == "stderr"]
    assert not stderr, f"stderr reached the graded notebook: {stderr}"


def test_deleted_cell_and_changed_cell_type_are_handled(graded: dict, course: Path, spec: sub.Spec):
    language_models_only(spec)
    found = graded["scores"]["mangled"]
    # The deleted visible test is put back from the gradebook and passes; the solution cell turned
    # into markdown is turned back into code, so the correct answer keeps all its points.
    assert found["test_reverse_dict"] == 2 and found["test_reverse_dict_hidden"] == 3, found
    assert found["test_kl_divergence"] == 2 and found["test_kl_divergence_hidden"] == 3, found
    assert found["_total"] == 10, found
    nb = nbformat.read(course / "autograded" / "mangled" / LM / "01_theory.ipynb", as_version=4)
    assert sub.find_cell(nb, "kl_divergence").cell_type == "code"


def test_grading_twice_gives_identical_scores(graded: dict):
    for student, found in graded["again"].items():
        assert found == graded["scores"][student], f"{student}: {graded['scores'][student]} then {found}"


def test_feedback_and_export(graded: dict, course: Path, spec: sub.Spec):
    A = spec.name
    nbgrader(course, "generate_feedback", A, check=True)
    for student in ("ref", "blank", "partial"):
        pages = sorted((course / "feedback" / student / A).glob("*.html"))
        assert [p.stem for p in pages] == spec.notebooks, pages
    nbgrader(course, "export", "--to", str(course / "grades.csv"), check=True)
    with open(course / "grades.csv") as fh:
        rows = {row["student_id"]: row for row in csv.DictReader(fh) if row["assignment"] == A}
    assert float(rows["ref"]["score"]) == spec.max_auto
    assert float(rows["partial"]["score"]) == sum(spec.tests_of(spec.partial).values())
    assert float(rows["blank"]["score"]) == 0
    assert float(rows["ref"]["max_score"]) == spec.max_auto + sum(sum(v.values()) for v in spec.manual.values())
