"""Tampering earns nothing and is reported; feedback holds no hidden test, whatever the kernel printed.

Each recipe below is what a student who reads IPython's documentation can put in an answer cell: code
that rewrites, skips or watches the cells that run after it, patches the comparison functions tests
use, or ends the kernel right after an answer. Every recipe is handed in from a blank and from a
partially solved notebook of both graded assignments, graded for real (`course grade`, sandboxed where
the machine allows, nbgrader underneath), and must score no more than its honest twin and be marked
"needs attention" with an event that names the construct or the cell (course_tools/checks.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

import submissions as sub
from course_tools import checks, demo, grade, preprocessors

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Target:
    """Where a recipe goes in one assignment: the notebooks handed in, the answer cell it is put in, the
    exercise solved in the partial submission, and what honest work earns."""

    assignment: str
    notebooks: list[str]
    cell: str  # the answer cell (a function definition) the recipe is put in
    function: str
    solved: str  # the exercise solved in the "partial" submission
    honest: dict[str, float]  # the honest twin's score: {"blank": .., "partial": ..}


TARGETS = {
    "transformer_internals": Target("transformer_internals", ["01_attention"], "attention", "attention",
                                    "mean_pool", {"blank": 0.0, "partial": 4.0}),
    "language_models": Target("language_models", ["01_theory"], "kl_divergence", "kl_divergence",
                              "kl_divergence", {"blank": 0.0, "partial": 5.0}),
}

# Each recipe: (code put before the answer cell's own code, code put after it; {f} is the function).
SWALLOW_AST = '''import ast
class _Swallow(ast.NodeTransformer):
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None, body=[ast.Pass()])
        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]
        return ast.fix_missing_locations(node)
get_ipython().ast_transformers.append(_Swallow())
'''
LEAK_HOOKS = '''import base64
from IPython.display import display
def _leak(info):
    src = info.raw_cell
    print(src)
    print(src[::-1])
    print(base64.b64encode(src.encode()).decode())
    display({"text/plain": src, "text/html": "<pre>" + src + "</pre>", "text/markdown": src}, raw=True)
get_ipython().events.register("pre_run_cell", _leak)
get_ipython().events.register("post_run_cell", lambda result: print(result.info.raw_cell[::-1]))
'''
PATCHED = '''import math, numpy, torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
numpy.isclose = lambda *a, **k: True
numpy.allclose = lambda *a, **k: True
math.isclose = lambda *a, **k: True
class _Yes(tuple):
    def __eq__(self, other):
        return True
    __hash__ = tuple.__hash__
'''
PATCHED_AFTER = '''
_real_{f} = {f}
def {f}(*args, **kwargs):
    try:
        return _real_{f}(*args, **kwargs)
    except NotImplementedError:
        return _Yes((0.0, 0.0))
'''
INSIDE_AFTER = '''
_real_{f} = {f}
def {f}(*args, **kwargs):
    shell = get_ipython()
    if not getattr(shell, "_armed", False):
        shell._armed = True
        shell.input_transformers_cleanup.append(lambda lines: ["pass\\n"])
    return _real_{f}(*args, **kwargs)
'''
RECIPES = {
    "input-transformer": ("get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n", ""),
    "ast-transformer": (SWALLOW_AST, ""),
    "hooks": (LEAK_HOOKS, ""),
    "swallowed": ("get_ipython().set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)\n", ""),
    "patched": (PATCHED, PATCHED_AFTER),
    "settrace": ("import sys\nsys.settrace(lambda frame, event, arg: None)\n", ""),
    "inside": ("", INSIDE_AFTER),
    "exit": ("", "\nimport os\nos._exit(0)\n"),
    "crash": ("", "\nimport ctypes\nctypes.string_at(0)\n"),
}


def submission(target: Target, state: str, recipe: str | None) -> dict[str, nbformat.NotebookNode]:
    """Return the release notebooks of ``target`` solved per ``state`` with ``recipe`` in the answer cell."""
    nbs = sub.load_release(ROOT / "release" / target.assignment)
    nbs = {stem: nb for stem, nb in nbs.items() if stem in target.notebooks}
    if state == "partial":
        answers = sub.reference_answers(ROOT / "source" / target.assignment)
        sub.solve(nbs, {stem: answers[stem] for stem in nbs}, which=[target.solved])
    if recipe:
        before, after = RECIPES[recipe]
        for nb in nbs.values():
            try:
                cell = sub.find_cell(nb, target.cell)
            except KeyError:
                continue
            cell.source = before + cell.source + after.format(f=target.function)
    return nbs


@pytest.fixture(scope="module", params=list(TARGETS))
def graded(tmp_path_factory, request) -> dict:
    """Grade every recipe x state of one assignment in a scratch course; return results and the root."""
    target = TARGETS[request.param]
    name = target.assignment
    root = demo.scratch_course(ROOT, tmp_path_factory.mktemp("tamper") / "course", [name])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COURSE_ROOT": str(root)}

    def course(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "course_tools.cli", *args], cwd=root, env=env, text=True,
                              capture_output=True, timeout=1800)

    out = course("release", name)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    students: dict[str, tuple[str, str, str | None]] = {}
    for state in ("blank", "partial"):
        for recipe in (None, *RECIPES):
            student = f"{state}-{recipe or 'honest'}"
            sub.submit(root, student, submission(target, state, recipe), assignment=name)
            students[student] = (name, state, recipe)
    out = course("grade", name, "--workers", "2", "--timeout", "600")
    print(out.stdout[-6000:], out.stderr[-3000:])
    results = json.loads((root / "autograded" / grade.STATE_DIR / name / "results.json").read_text())
    return {"root": root, "name": name, "students": students, "results": results}


def score(graded: dict, student: str) -> float:
    """Return the autograded total of ``student`` (0 when the submission was not graded)."""
    return float(graded["results"][student].get("score") or 0.0)


def test_honest_twins_score_what_they_earn(graded):
    for student, (name, state, recipe) in graded["students"].items():
        if recipe is None:
            assert score(graded, student) == TARGETS[name].honest[state], student
            assert graded["results"][student]["status"] == "ok", graded["results"][student]
            events = preprocessors.read_events(graded["root"], name, student)
            # only the notebooks this test does not hand in are reported (it hands in one notebook)
            assert {ev["kind"] for ev in events if ev.get("level") != "info"} <= {"notebook-missing"}, events


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_tampering_earns_nothing_and_is_reported(graded, recipe):
    for student, (name, state, used) in graded["students"].items():
        if used != recipe:
            continue
        result = graded["results"][student]
        assert score(graded, student) <= TARGETS[name].honest[state], (student, result)
        events = preprocessors.read_events(graded["root"], name, student)
        result_obj = grade.Result(**{k: v for k, v in result.items() if k in grade.Result.__dataclass_fields__})
        result_obj.events = events
        assert grade.shown_status(result_obj) != "ok", (student, result["status"], events)
        named = [ev for ev in events if ev.get("level") == "attention" and
                 (ev.get("cell") in (TARGETS[name].cell, None) or TARGETS[name].cell in ev.get("message", ""))]
        assert named, (student, events)


def hidden_texts(name: str) -> list[str]:
    """Return every non-trivial line of every hidden block of an assignment's sources."""
    lines = []
    if True:
        for path in sorted((ROOT / "source" / name).glob("*.ipynb")):
            for cell in nbformat.read(path, as_version=4).cells:
                for line in preprocessors.hidden_lines(cell.source):
                    text = line.strip()
                    if len(text) >= 12 and not text.startswith("#"):
                        lines.append(text)
    return lines


@pytest.fixture(scope="module")
def feedback(graded) -> Path:
    """Run `course feedback` for both assignments; return the course root."""
    root = graded["root"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COURSE_ROOT": str(root)}
    out = subprocess.run([sys.executable, "-m", "course_tools.cli", "feedback", graded["name"], "--force"], cwd=root,
                         env=env, text=True, capture_output=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return graded


def test_feedback_holds_no_hidden_line_in_any_form(feedback):
    root = feedback["root"]
    pages = {p: p.read_text(errors="replace") for p in (root / "feedback").rglob("*.html")}
    leakers = [p for p in pages if "-hooks" in str(p)]
    assert leakers, "the leaking students got no feedback page"
    secrets = hidden_texts(feedback["name"])
    assert secrets
    for path, page in pages.items():
        text = re.sub(r"\s+", " ", page)
        for line in secrets:
            normal = re.sub(r"\s+", " ", line)
            for form in (normal, normal[::-1], base64.b64encode(line.encode()).decode()[:40]):
                assert form not in text, f"{path.relative_to(root)} holds a hidden line: {line!r}"
    # Control: the hooks did print the hidden cells while grading; the instructor's autograded copy keeps
    # everything the kernel printed, so the reversed hidden lines are there, and only feedback drops them.
    target = TARGETS[feedback["name"]]
    graded_copy = nbformat.read(root / "autograded" / "blank-hooks" / target.assignment /
                                f"{target.notebooks[0]}.ipynb", as_version=4)
    printed = re.sub(r"\s+", " ", "".join(o.get("text", "") for c in graded_copy.cells
                                          for o in c.get("outputs", []) if o.get("output_type") == "stream"))
    assert any(re.sub(r"\s+", " ", line)[::-1] in printed for line in secrets), "the leaking hooks printed nothing"


def test_feedback_test_cells_show_one_grader_line(feedback):
    target = TARGETS[feedback["name"]]
    page = (feedback["root"] / "feedback" / "partial-honest" / target.assignment / f"{target.notebooks[0]}.html").read_text()
    blank = (feedback["root"] / "feedback" / "blank-honest" / target.assignment / f"{target.notebooks[0]}.html").read_text()
    assert re.search(r"\d+ / \d+ points: passed", page)
    assert re.search(r"0 / \d+ points: failed: [^<\n]{1,200}", blank)
