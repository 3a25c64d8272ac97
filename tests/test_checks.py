"""Hidden checks decided outside the kernel (course_tools/checks.py, helpers/checks.py), in memory.

The end-to-end proofs (real submissions, tampering recipes, feedback) are in test_tampering.py; these
tests pin down each piece on hand-made values and cells, in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from traitlets.config import Config

from course_tools import checks
from helpers.checks import ANSWER_MIME, encode

ROOT = Path(__file__).resolve().parent.parent


def doc(check: str, value=None, raised: str | None = None, **options) -> dict:
    """Return an answer document as helpers.checks.answer writes it."""
    out = {"format": 1, "check": check, "options": options, "kernel": {}}
    out.update({"raised": raised} if raised else {"value": encode(value)})
    return out


def differs(want, got, **options) -> str | None:
    """Return the reason two values differ for the grader (None when they match)."""
    return checks.compare(doc("c", want, **options), doc("c", got))


# ------------------------------------------------------------------------------------ comparison

@pytest.mark.parametrize("want, got", [
    (3, 3.0), (2.0, 2), (True, 1), ((1, 2), [1, 2]), ([1, 2], (1, 2)), ({"a": 1}, [("a", 1)]),
    (torch.ones(2), torch.ones(2, dtype=torch.float64)), (torch.ones(2, 3), torch.ones(3, 2)),
    (torch.ones(2), np.ones(2, dtype=np.float32)), (1, np.int64(1)), (None, 0), ("ab", b"ab"),
])
def test_exact_types_first(want, got):
    assert differs(want, got) is not None


@pytest.mark.parametrize("want, got, options", [
    (0.1 + 0.2, 0.3, {}), ({"a": 1, "b": 2}, {"b": 2, "a": 1}, {}), ({1, 2, 3}, {3, 2, 1}, {}),
    (torch.tensor([1.0, float("nan")]), torch.tensor([1.0 + 1e-7, float("nan")]), {}),
    (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0], dtype=torch.float64), {"dtype": False}),
    (3, np.int64(3), {"numeric": True}), (2.5, 2.5000001, {"rtol": 1e-6}),
    (torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.bfloat16), {}),
])
def test_correct_but_different_answers_match(want, got, options):
    assert differs(want, got, **options) is None


@pytest.mark.parametrize("want, got, options", [
    (0.5, 0.5001, {}), (torch.tensor([1, 2]), torch.tensor([1, 3]), {}), ({"a": 1}, {"a": 1, "b": 2}, {}),
    (torch.tensor([True, False]), torch.tensor([True, True]), {}), ([1.0, 2.0], [1.0, 2.5], {}),
    (torch.zeros(3), torch.tensor([0.0, float("nan"), 0.0]), {}), (float("inf"), 1e308, {}),
    (torch.tensor([1.0]), torch.tensor([1.0 + 1e-3]), {"atol": 1e-4, "rtol": 0}),
])
def test_wrong_answers_fail(want, got, options):
    assert differs(want, got, **options) is not None


def test_reasons_show_no_expected_value():
    secret = 0.7310585786300049
    for got in (0.5, [0.5], (0.5, 1), torch.tensor([0.5, 0.25]), "0.5"):
        reason = differs(secret if not isinstance(got, torch.Tensor) else torch.tensor([secret, 0.1]), got)
        assert reason and "0.73" not in reason and "731" not in reason, reason


def test_only_the_recorded_tolerance_counts():
    """A student's answer that asks for a loose tolerance is still compared with the recorded one."""
    want = doc("c", 1.0, rtol=0, atol=0)
    got = doc("c", 1.5, rtol=10, atol=10)
    assert checks.compare(want, got) is not None


def test_raised_answers():
    assert checks.compare(doc("c", raised="ValueError"), doc("c", raised="ValueError")) is None
    assert "should raise ValueError" in checks.compare(doc("c", raised="ValueError"), doc("c", 3))
    assert checks.compare(doc("c", 3), doc("c", raised="NotImplementedError")) == "raised NotImplementedError"
    # a made-up exception name is not echoed into feedback
    assert checks.compare(doc("c", 3), doc("c", raised="<script>x</script>")) == "raised an exception"


def test_verdict_fails_closed():
    recorded = {"checks": [doc("a", 1), doc("b", 2)]}
    ok, _ = checks.verdict(recorded, [doc("a", 1), doc("b", 2)], 0)
    assert ok == []
    missing, _ = checks.verdict(recorded, [doc("a", 1)], 0)
    assert missing == ["check 'b': no answer"]
    dup, events = checks.verdict(recorded, [doc("a", 1), doc("a", 1), doc("b", 2)], 0)
    assert dup and events[0]["kind"] == "answer-duplicated"
    extra, events = checks.verdict(recorded, [doc("a", 1), doc("b", 2), doc("c", 3)], 0)
    assert extra and events[0]["kind"] == "answer-unknown"
    bad, events = checks.verdict(recorded, [doc("a", 1), doc("b", 2)], 1)
    assert bad and events[0]["kind"] == "answer-malformed"
    nothing, _ = checks.verdict(None, [], 0)
    assert nothing and "no hidden checks were recorded" in nothing[0]


def test_encode_refuses_huge_answers():
    from helpers.checks import MAX_ITEMS, _TooLarge

    with pytest.raises(_TooLarge):
        encode(torch.zeros(MAX_ITEMS + 1))


# -------------------------------------------------------------------------------- static detection

@pytest.mark.parametrize("source, construct", [
    ("get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])", "input transformer"),
    ("ip = get_ipython()\nip.ast_transformers.append(T())", "AST transformer"),
    ("get_ipython().events.register('pre_run_cell', hook)", "event hook"),
    ("import sys\nsys.settrace(tracer)", "sys.settrace"),
    ("import torch\ntorch.allclose = lambda *a, **k: True", "torch.allclose replaced"),
    ("import numpy as np\nnp.isclose = lambda *a, **k: True", "np.isclose replaced"),
    ("import math\nsetattr(math, 'isclose', lambda *a, **k: True)", "setattr on math"),
    ("class T(torch.Tensor):\n    pass\nT.__eq__ = lambda a, b: True", "T.__eq__ replaced"),
    ("import os\nos._exit(0)", "os._exit"),
    ("import ctypes", "ctypes"),
    ("from helpers.checks import answer\nanswer('x', 1)", "answer channel"),
    ("import helpers.checks\nhelpers.checks._BASELINE = {}", "answer channel"),
])
def test_tampering_is_found(source, construct):
    found = checks.tampering(source)
    assert any(construct in f for f in found), found


@pytest.mark.parametrize("source", [
    "import torch\nassert torch.allclose(a, b)\nx = np.isclose(1, 1)",
    "def attention(q, k, v, mask=None):\n    scores = q @ k.transpose(-2, -1)\n    return scores.softmax(-1) @ v, scores",
    "counts = {}\nfor pair in zip(word, word[1:]):\n    counts[pair] = counts.get(pair, 0) + 1",
    "%timeit f(3)",
])
def test_ordinary_code_is_not_flagged(source):
    assert checks.tampering(source) == []


# ------------------------------------------------------------------------------ the preprocessors

def _answer_output(document: dict) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data={ANSWER_MIME: document, "text/plain": "[answer]"})


def _test_cell(gid: str, outputs: list) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("# test\n### BEGIN HIDDEN TESTS\nanswer(...)\n### END HIDDEN TESTS")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": gid,
                                 "points": 2, "schema_version": 3}
    cell.outputs = outputs
    return cell


def _course(tmp_path: Path, cells: dict) -> Config:
    path = checks.expected_path(tmp_path, "a1", "nb")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"format": 1, "source_sha256": "x", "cells": cells}))
    config = Config()
    config.CourseDirectory.root = str(tmp_path)
    return config


def _resources() -> dict:
    return {"nbgrader": {"assignment": "a1", "notebook": "nb", "student": "s1"}}


def test_outside_checks_decide_the_grade(tmp_path):
    from nbgrader.utils import determine_grade

    config = _course(tmp_path, {"t_ok": {"checks": [doc("x", 1)]}, "t_bad": {"checks": [doc("x", 1)]},
                                "t_none": {"checks": [doc("x", 1)]}, "t_partial": {"checks": [doc("x", 1)]}})
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        _test_cell("t_ok", [_answer_output(doc("x", 1))]),
        _test_cell("t_bad", [_answer_output(doc("x", 2))]),
        _test_cell("t_none", []),  # no error shown and no answer: skipped by a hook, or the kernel died
        # a kernel-made value that nbgrader would read as partial credit, beside a wrong answer
        _test_cell("t_partial", [nbformat.v4.new_output("execute_result", data={"text/plain": "1.5"}),
                                 _answer_output(doc("x", 5))]),
    ]
    nb, _ = checks.OutsideChecks(config=config).preprocess(nb, _resources())
    grades = [determine_grade(c)[0] for c in nb.cells]
    assert grades == [2, 0, 0, 0]
    assert nb.cells[1].outputs[0]["ename"] == checks.FAILED
    assert "check 'x': value differs" in nb.cells[1].outputs[0]["evalue"]
    assert not [o for o in nb.cells[3].outputs if o["output_type"] == "execute_result"]
    events = json.loads((tmp_path / "autograded" / ".course-grade" / "a1" / "s1.events.json").read_text())
    kinds = [ev["kind"] for ev in events["nb"]]
    assert "answer-missing" in kinds


def test_tampering_in_an_answer_cell_is_an_event(tmp_path):
    config = _course(tmp_path, {"t": {"checks": [doc("x", 1)]}})
    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell("def f():\n    return 1\nget_ipython().events.register('pre_run_cell', print)")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": "f"}
    nb.cells = [answer, _test_cell("t", [_answer_output(doc("x", 1))])]
    checks.ReportTampering(config=config).preprocess(nb, _resources())
    events = json.loads((tmp_path / "autograded" / ".course-grade" / "a1" / "s1.events.json").read_text())["nb"]
    assert [ev for ev in events if ev["kind"] == "tampering" and ev["cell"] == "f" and "event hook" in ev["message"]]


def test_changed_kernel_hooks_are_an_event(tmp_path):
    config = _course(tmp_path, {"t": {"checks": [doc("x", 1)], "kernel": {"added": {}}}})
    hooked = doc("x", 1)
    hooked["kernel"] = {"added": {"ast_transformers": 1}}
    nb = nbformat.v4.new_notebook()
    nb.cells = [_test_cell("t", [_answer_output(hooked)])]
    checks.OutsideChecks(config=config).preprocess(nb, _resources())
    events = json.loads((tmp_path / "autograded" / ".course-grade" / "a1" / "s1.events.json").read_text())["nb"]
    assert [ev for ev in events if ev["kind"] == "tampering" and ev["cell"] == "t"]


def test_feedback_holds_submitted_outputs_and_grader_lines_only(tmp_path):
    config = Config()
    config.CourseDirectory.root = str(tmp_path)
    answer = nbformat.v4.new_code_cell("def f():\n    return 1")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": "f"}
    submitted = nbformat.v4.new_notebook()
    mine = nbformat.v4.new_output("stream", name="stdout", text="what I printed at home\n")
    submitted.cells = [nbformat.v4.new_code_cell(answer.source, metadata=answer.metadata)]
    submitted.cells[0].outputs = [mine]
    folder = tmp_path / "submitted" / "s1" / "a1"
    folder.mkdir(parents=True)
    nbformat.write(submitted, folder / "nb.ipynb")
    # the autograded copy: what the kernel printed while grading, including a leaked hidden line
    graded = nbformat.v4.new_notebook()
    answer.outputs = [nbformat.v4.new_output("stream", name="stdout", text="assert secret == 42\n")]
    test = _test_cell("t", [nbformat.v4.new_output("error", ename=checks.FAILED, evalue="check 'x': value differs",
                                                   traceback=[]),
                            nbformat.v4.new_output("display_data", data={"text/plain": "YXNzZXJ0IHNlY3JldA=="})])
    test.metadata["nbgrader"].update(score=0.0, points=2.0)
    test.metadata["course_grade"] = {"checks": 1, "failures": ["check 'x': value differs"]}
    graded.cells = [answer, test]
    nb, _ = checks.GraderFeedback(config=config).preprocess(graded, _resources())
    assert nb.cells[0].outputs == [mine]
    assert nb.cells[1].outputs == [nbformat.v4.new_output("stream", name="stdout",
                                                           text="0 / 2 points: failed: check 'x': value differs\n")]


def test_feedback_line_prefers_the_visible_error_when_no_check_ran():
    cell = _test_cell("t", [nbformat.v4.new_output("error", ename="NotImplementedError", evalue="", traceback=[])])
    cell.metadata["nbgrader"].update(score=0.0, points=3.0)
    cell.metadata["course_grade"] = {"checks": 2, "failures": ["check 'a': no answer", "check 'b': no answer"]}
    assert checks.feedback_line(cell).startswith("0 / 3 points: failed: NotImplementedError in the checks")


def test_feedback_line_for_a_kernel_error_names_its_type_only():
    cell = _test_cell("t", [nbformat.v4.new_output("error", ename="AssertionError", evalue="secret text", traceback=[])])
    cell.metadata["nbgrader"].update(score=0.0, points=2.0)
    line = checks.feedback_line(cell)
    assert line.startswith("0 / 2 points: failed: AssertionError") and "secret" not in line and len(line) <= 200


# ---------------------------------------------------------------------------------- the course

def source_notebooks() -> list[Path]:
    return sorted((ROOT / "source").glob("*/*.ipynb"))


@pytest.mark.parametrize("path", source_notebooks(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_test_cell_has_fresh_recorded_checks(path: Path):
    """Every cell that awards points is decided outside the kernel, from answers recorded from the current
    source (run `course record` after changing a source notebook)."""
    assignment, notebook = path.parent.name, path.stem
    data = checks.load_expected(ROOT, assignment, notebook)
    assert data is not None, f"no expected/{assignment}/{notebook}.json: run `course record {assignment}`"
    assert checks.is_fresh(ROOT, assignment, notebook), f"stale answers: run `course record {assignment}`"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if checks.is_test_cell(cell):
            gid = cell.metadata["nbgrader"]["grade_id"]
            recorded = data["cells"].get(gid, {}).get("checks", [])
            assert recorded, f"{gid} awards points but has no hidden check"
            guessable = {"bool", "NoneType"}
            assert any(c.get("value", {}).get("t") not in guessable for c in recorded), \
                f"{gid}: every check is a bool or None; add an answer that a guess cannot match"


def test_recorded_answers_are_instructor_only():
    """expected/ is never part of what students get (release/, notebooks/) and is ignored by nbgrader."""
    for folder in ("release", "notebooks"):
        assert not list((ROOT / folder).rglob("*.json")), folder


@pytest.mark.slow
def test_grading_refuses_missing_recorded_answers(tmp_path):
    """`course grade` checks before any worker starts that every notebook's answers are recorded and fresh,
    and names the command that records them."""
    import sys

    from course_tools import grade

    sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
    import tiny_course as tc

    root = tc.build_course(tmp_path / "course")
    assert grade.preconditions(root, tc.ASSIGNMENT) is None
    checks.expected_path(root, tc.ASSIGNMENT, "two").unlink()
    problem = grade.preconditions(root, tc.ASSIGNMENT)
    assert problem and "two" in problem and f"`course record {tc.ASSIGNMENT}`" in problem
    tc.record_answers(root)
    assert grade.preconditions(root, tc.ASSIGNMENT) is None
