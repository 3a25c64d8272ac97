"""Hidden checks decided outside the student's kernel: recorded answers, comparison, verdicts, feedback.

Why: under nbgrader a test cell scores full points when it shows no error, and every line of a test runs
in the kernel that also runs the student's code, which can rewrite or silence later cells (IPython's
input and AST transformers, event hooks, ``sys.settrace``, patched comparison functions). So a test
whose verdict is computed in that kernel can be faked. Here the kernel only *reports* answers
(``helpers.checks.answer``: the student's function applied to hidden inputs) and nbgrader's own process
decides:

1. ``record`` (run by ``course release`` when a source notebook changed, or ``course record``) executes
   the source notebook, with its reference solutions, and stores each test cell's answers in
   ``expected/<assignment>/<notebook>.json`` under the course root: the instructor repository only,
   never published, never readable by a sandboxed kernel (its binds do not include the course root).
2. ``OutsideChecks`` (autograde, between execution and ``SaveAutoGrades``) compares the answers each test
   cell reported with the recorded ones, exact types first, with the tolerances recorded from the
   reference. Any missing, extra, duplicated or malformed answer fails its cell (fail closed). A failing
   cell gets one error output written by the grader in front of the others, so nbgrader's own
   ``determine_grade`` gives it 0; a passing cell keeps the kernel's outputs (a visible assert that
   failed still gives 0) minus ``execute_result`` values, which nbgrader would read as partial credit.
   Code that can rewrite cells or watch them is reported as an event (static: in the student's cells;
   at run time: the kernel's hooks differ from the reference's), which marks the submission for a human.
3. ``GraderFeedback`` (feedback) builds what the student sees: their own cells with the outputs they
   submitted, and per test cell its points, passed or failed and one line the grader wrote. Nothing the
   kernel produced while grading reaches the student.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode

from helpers.checks import ANSWER_MIME

from .preprocessors import _Enabled, _nbg, _norm, _write_events, events_path

EXPECTED_DIR = "expected"
FORMAT = 1
FAILED = "HiddenCheckFailed"  # the ename of the error output the grader writes for a failing cell
DEFAULT_RTOL, DEFAULT_ATOL = 1e-5, 1e-8
MAX_LINE = 200
MAX_FEEDBACK_OUTPUT = 256 * 1024  # bytes of one submitted output copied into feedback
MAX_FEEDBACK_TOTAL = 4 * 2**20  # bytes of submitted outputs copied into one feedback notebook


class RecordError(RuntimeError):
    """The reference solution could not be recorded (it fails a test cell or reports nothing)."""


# --------------------------------------------------------------------------------------------- files

def expected_path(root: Path | str, assignment: str, notebook: str) -> Path:
    """Return the file with the recorded answers of one source notebook."""
    return Path(root) / EXPECTED_DIR / assignment / f"{notebook}.json"


STAMPED_TAGS = ("colab-badge", "colab-bootstrap")  # rewritten by `course stamp`/`publish`: no answer depends on them


def source_digest(nb: NotebookNode) -> str:
    """Return the sha256 of a notebook's cell types and sources (what the recorded answers depend on)."""
    cells = [[c.cell_type, c.source] for c in nb.cells
             if not set(c.metadata.get("tags", [])) & set(STAMPED_TAGS)]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def is_test_cell(cell: NotebookNode) -> bool:
    """Return whether ``cell`` is an autograded test (a grade code cell that is not an answer)."""
    meta = _nbg(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def read_answers(cell: NotebookNode) -> tuple[list[dict], int]:
    """Return the answer documents in a cell's outputs and how many answer outputs were malformed."""
    found, malformed = [], 0
    for output in cell.get("outputs", []):
        data = output.get("data") or {}
        if ANSWER_MIME not in data:
            continue
        doc = data[ANSWER_MIME]
        if isinstance(doc, str):
            try:
                doc = json.loads(doc)
            except ValueError:
                doc = None
        ok = (isinstance(doc, dict) and isinstance(doc.get("check"), str) and isinstance(doc.get("options", {}), dict)
              and (("value" in doc and isinstance(doc["value"], dict)) or isinstance(doc.get("raised"), str)))
        if ok:
            found.append(dict(doc))
        else:
            malformed += 1
    return found, malformed


def load_expected(root: Path | str, assignment: str, notebook: str) -> dict | None:
    """Return the recorded answers of a notebook, or None when there are none (or they are unreadable)."""
    try:
        data = json.loads(expected_path(root, assignment, notebook).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def is_fresh(root: Path | str, assignment: str, notebook: str) -> bool:
    """Return whether the recorded answers were made from the current source notebook."""
    data = load_expected(root, assignment, notebook)
    src = Path(root) / "source" / assignment / f"{notebook}.ipynb"
    return data is not None and src.is_file() and data.get("source_sha256") == source_digest(
        nbformat.read(src, as_version=4))


def copy_recorded(root: Path | str, dest: Path | str, assignment: str) -> None:
    """Copy an assignment's recorded answers into another course (a scratch copy), when there are any."""
    src = Path(root) / EXPECTED_DIR / assignment
    if src.is_dir():
        import shutil

        shutil.copytree(src, Path(dest) / EXPECTED_DIR / assignment, dirs_exist_ok=True)


def stale_notebooks(root: Path | str, assignment: str) -> list[str]:
    """Return the source notebooks of ``assignment`` whose recorded answers are missing or out of date."""
    folder = Path(root) / "source" / assignment
    return [p.stem for p in sorted(folder.glob("*.ipynb")) if not is_fresh(root, assignment, p.stem)]


# ------------------------------------------------------------------------------------------ compare

def _float(x: Any) -> float:
    """Return the float that a JSON-encoded number stands for ("nan", "inf" and "-inf" included)."""
    return float(x)


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    """Return whether two encoded floats agree (NaN equals NaN; infinities must match exactly)."""
    x, y = _float(a), _float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= atol + rtol * abs(y)


NUMERIC = {"int", "float", "bool", "numpy.int64", "numpy.int32", "numpy.float64", "numpy.float32"}
ARRAYS = {"torch.Tensor", "numpy.ndarray"}


def _decode_array(doc: dict):
    """Return the numpy array of an encoded tensor or ndarray (ValueError when malformed)."""
    import base64

    import numpy

    dtype = numpy.dtype(doc["np"])
    if dtype.kind not in "biufc" or dtype.hasobject:
        raise ValueError("not a numeric dtype")
    shape = [int(n) for n in doc["shape"]]
    data = numpy.frombuffer(base64.b64decode(doc["b64"], validate=True), dtype=dtype)
    return data.reshape(shape)


def _compare_arrays(want: dict, got: dict, rtol: float, atol: float) -> str | None:
    """Return None when two encoded arrays agree (exactly for integers and bools, within tolerance for floats)."""
    import numpy

    if "repr" in want:
        return None if want["repr"] == got.get("repr") else "values differ"
    a, b = _decode_array(want), _decode_array(got)
    if a.shape != b.shape:
        return "malformed answer"
    if a.dtype.kind in "biu" and b.dtype.kind in "biu":
        same = a == b
    else:
        same = numpy.isclose(b, a, rtol=rtol, atol=atol, equal_nan=True)
    if bool(numpy.all(same)):
        return None
    return f"values differ (first at flat index {int(numpy.argmin(same.reshape(-1)))})"


def _key(encoded: dict) -> str:
    """Return a canonical text for an encoded value (dict keys and set items are matched by it)."""
    return json.dumps(encoded, sort_keys=True)


def compare_values(want: dict, got: Any, options: dict, where: str = "") -> str | None:
    """Return None when the encoded answer ``got`` matches ``want``, else a short reason that shows no
    expected value (only types, lengths, shapes and where the first difference is)."""
    if not isinstance(got, dict) or not isinstance(got.get("t"), str):
        return f"malformed answer{where}"
    rtol = float(options.get("rtol", DEFAULT_RTOL))
    atol = float(options.get("atol", DEFAULT_ATOL))
    wt, gt = want["t"], got["t"]
    if options.get("numeric") and wt in NUMERIC and gt in NUMERIC:
        try:
            return None if _close(want["v"], got["v"], rtol, atol) else f"value differs{where}"
        except (KeyError, TypeError, ValueError):
            return f"malformed answer{where}"
    if wt != gt:
        return f"expected a {wt}, got a {gt}{where}"
    try:
        if wt in ARRAYS:
            if options.get("dtype", True) and want["dtype"] != got["dtype"]:
                return f"expected dtype {want['dtype']}, got {got['dtype']}{where}"
            if list(want["shape"]) != list(got["shape"]):
                return f"expected shape {tuple(want['shape'])}, got {tuple(got['shape'])}{where}"
            reason = _compare_arrays(want, got, rtol, atol)
            if reason:
                return reason + where
            return None
        if wt == "float" or wt.startswith("numpy.float"):
            return None if _close(want["v"], got["v"], rtol, atol) else f"value differs{where}"
        if wt in ("list", "tuple", "set", "frozenset"):
            if len(want["v"]) != len(got["v"]):
                return f"expected {len(want['v'])} items, got {len(got['v'])}{where}"
            if wt in ("set", "frozenset"):  # unordered: match items by their canonical text
                return None if sorted(map(_key, want["v"])) == sorted(map(_key, got["v"])) else f"items differ{where}"
            for i, (a, b) in enumerate(zip(want["v"], got["v"])):
                reason = compare_values(a, b, options, f"{where or ' at '}[{i}]")
                if reason:
                    return reason
            return None
        if wt == "dict":
            wk = {_key(k): v for k, v in want["v"]}
            gk = {_key(k): v for k, v in got["v"]}
            if len(gk) != len(got["v"]):
                return f"malformed answer{where}"
            if set(wk) != set(gk):
                return f"expected {len(wk)} keys, got {len(gk)} (or other keys){where}"
            for i, k in enumerate(wk):
                reason = compare_values(wk[k], gk[k], options, f"{where or ' at '}[key {i}]")
                if reason:
                    return reason
            return None
        if "repr" in want:
            return None if want["repr"] == got.get("repr") else f"value differs{where}"
        return None if want.get("v") == got.get("v") else f"value differs{where}"
    except (KeyError, TypeError, ValueError, AttributeError):
        return f"malformed answer{where}"


def compare(want: dict, got: dict) -> str | None:
    """Return None when one reported answer document matches the recorded one, else a one-line reason.

    Only the recorded document's options (tolerances, dtype, numeric) count: the student's are ignored.
    """
    options = want.get("options") or {}
    if "raised" in want:
        if got.get("raised") == want["raised"]:
            return None
        return (f"should raise {want['raised']}, raised {got['raised']}" if "raised" in got
                else f"should raise {want['raised']}, returned a value")
    if "raised" in got:
        name = got["raised"] if re.fullmatch(r"[A-Za-z_]\w{0,60}", str(got["raised"])) else "an exception"
        return f"raised {name}"
    return compare_values(want["value"], got.get("value"), options)


def verdict(expected_cell: dict | None, answers: list[dict], malformed: int) -> tuple[list[str], list[dict]]:
    """Return (failures, events) of one test cell: each failure a one-line reason naming its check."""
    if not expected_cell or not expected_cell.get("checks"):
        return ["no hidden checks were recorded for this cell (instructor: run `course record`)"], []
    failures, events = [], []
    if malformed:
        failures.append(f"{malformed} malformed answer(s)")
        events.append({"kind": "answer-malformed", "message": f"{malformed} answer output(s) could not be read"})
    seen: dict[str, int] = {}
    for doc in answers:
        seen[doc["check"]] = seen.get(doc["check"], 0) + 1
    wanted = {c["check"]: c for c in expected_cell["checks"]}
    for name, count in seen.items():
        if name not in wanted:
            failures.append(f"an answer for an unknown check was reported")
            events.append({"kind": "answer-unknown", "message": f"an answer named {name[:60]!r} that no check has"})
        elif count > 1:
            failures.append(f"check {name!r}: answered {count} times")
            events.append({"kind": "answer-duplicated", "message": f"check {name[:60]!r} answered {count} times"})
    got = {doc["check"]: doc for doc in answers}
    for name, want in wanted.items():
        if name not in got:
            failures.append(f"check {name!r}: no answer")
            continue
        if seen.get(name, 0) > 1:
            continue
        reason = compare(want, got[name])
        if reason:
            failures.append(f"check {name!r}: {reason}")
    return failures, events


def _one_line(text: str) -> str:
    """Return ``text`` on one line of at most MAX_LINE characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


# ------------------------------------------------------------------------------------------- record

def record(root: Path | str, assignment: str, notebook: str, timeout: int = 600, log=print) -> Path:
    """Execute a source notebook (reference solutions) and store each test cell's answers; return the file.

    Raises RecordError when a test cell of the reference fails or a test cell reports no answer: the
    reference must pass what it will grade.
    """
    from nbclient import NotebookClient

    root = Path(root)
    src = root / "source" / assignment / f"{notebook}.ipynb"
    nb = nbformat.read(src, as_version=4)
    digest = source_digest(nb)
    run = copy.deepcopy(nb)
    log(f"recording the hidden checks' answers of {assignment}/{notebook}.ipynb (runs the reference solution)")
    import os

    env_before = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "autograde"  # as under grading: helpers.quiet() silences libraries
    try:
        NotebookClient(run, timeout=timeout, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(src.parent)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = env_before
    cells: dict[str, dict] = {}
    problems = []
    for cell in run.cells:
        if not is_test_cell(cell):
            continue
        gid = _nbg(cell)["grade_id"]
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        answers, malformed = read_answers(cell)
        names = [a["check"] for a in answers]
        if errors:
            problems.append(f"{gid}: the reference solution fails it ({errors[0].get('ename')}: "
                            f"{_one_line(errors[0].get('evalue', ''))})")
        elif malformed or len(set(names)) != len(names):
            problems.append(f"{gid}: malformed or duplicated answers")
        elif not answers:
            problems.append(f"{gid}: reports no answer (every test cell that awards points needs hidden checks)")
        kernel = answers[-1].get("kernel") if answers else None
        cells[gid] = {"checks": [{k: a[k] for k in ("check", "options", "value", "raised") if k in a}
                                 for a in answers], "kernel": kernel}
    if problems:
        raise RecordError(f"{assignment}/{notebook}.ipynb: " + "; ".join(problems))
    path = expected_path(root, assignment, notebook)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": FORMAT, "assignment": assignment, "notebook": notebook,
                                "source_sha256": digest, "cells": cells}, indent=1, sort_keys=True) + "\n")
    return path


def record_stale(root: Path | str, assignment: str, force: bool = False, log=print) -> list[Path]:
    """Record every notebook of ``assignment`` whose answers are missing or stale (all with ``force``)."""
    folder = Path(root) / "source" / assignment
    names = [p.stem for p in sorted(folder.glob("*.ipynb"))] if force else stale_notebooks(root, assignment)
    return [record(root, assignment, name, log=log) for name in names]


# ----------------------------------------------------------------------------------- static checks

# Constructs that let code in one cell rewrite, skip or watch other cells, or end the kernel. They are
# reported, never forbidden: grading does not depend on them (see the module docstring), a human decides.
_ATTRIBUTES = {
    "input_transformers_cleanup": "an IPython input transformer", "input_transformers_post": "an IPython input transformer",
    "ast_transformers": "an IPython AST transformer", "register": None, "settrace": "sys.settrace",
    "setprofile": "sys.setprofile", "_exit": "os._exit", "set_custom_exc": "an IPython exception handler",
    "run_cell": "IPython's run_cell", "showtraceback": "IPython's traceback printer", "kill": None,
    "__code__": "a function's code object swapped",
}
_PATCHED = {"allclose", "isclose", "equal", "array_equal", "assert_close", "testing"}


def tampering(source: str) -> list[str]:
    """Return what in ``source`` can rewrite, skip or watch other cells (empty for ordinary code)."""
    found: list[str] = []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        # IPython syntax (magics) or broken code: fall back to plain text for the most telling names
        return [desc for name, desc in _ATTRIBUTES.items() if desc and re.search(rf"\b{re.escape(name)}\b", source)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "register" and isinstance(node.value, ast.Attribute) and node.value.attr == "events":
                found.append("an IPython event hook (events.register)")
            elif node.attr in _ATTRIBUTES and _ATTRIBUTES[node.attr]:
                found.append(_ATTRIBUTES[node.attr])
        if isinstance(node, ast.Assign) or isinstance(node, ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and (target.attr in _PATCHED or target.attr.startswith("__")):
                    found.append(f"{ast.unparse(target)} replaced")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" and node.args:
            found.append(f"setattr on {ast.unparse(node.args[0])}")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(n.split(".")[0] in ("ctypes", "gc", "inspect") for n in names):
                found.append(f"import of {', '.join(n for n in names if n.split('.')[0] in ('ctypes', 'gc', 'inspect'))}")
        if isinstance(node, ast.ImportFrom) and node.module == "helpers.checks" or (
                isinstance(node, ast.Attribute) and node.attr in ("_BASELINE", "capture_baseline", "ANSWER_MIME")):
            found.append("the course's answer channel (helpers.checks)")
        if isinstance(node, ast.Name) and node.id in ("get_ipython", "__builtins__"):
            found.append(f"{node.id}")
    return sorted(set(found))


# --------------------------------------------------------------------------------------- autograde

def _add_events(root: Path, assignment: str, student: str, notebook: str, events: list[dict]) -> None:
    """Append events to one notebook's list in the student's events file (EnforceSourceCells wrote it)."""
    try:
        data = json.loads(events_path(root, assignment, student).read_text())
    except (OSError, ValueError):
        data = {}
    _write_events(root, assignment, student, notebook, data.get(notebook, []) + events)


def _grader_error(message: str) -> NotebookNode:
    """Return the error output the grader writes in front of a failing test cell's outputs."""
    return nbformat.v4.new_output("error", ename=FAILED, evalue=message, traceback=[f"{FAILED}: {message}"])


class ReportTampering(_Enabled):
    """Record, before execution, every construct in the student's cells that can rewrite, skip or watch other
    cells (``tampering``): an event per construct and cell, so the submission is marked for a human even
    when the kernel then dies. Grades do not depend on it (``OutsideChecks`` does that)."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Scan every unlocked code cell (locked ones were restored from source/ by EnforceSourceCells)."""
        from nbgrader.coursedir import CourseDirectory

        info = resources["nbgrader"]
        events = []
        for cell in nb.cells:
            if cell.cell_type == "code" and not _nbg(cell).get("locked"):
                name = _nbg(cell).get("grade_id") or cell.get("id")
                for what in tampering(cell.source):
                    events.append({"kind": "tampering", "level": "attention", "cell": name,
                                   "notebook": info["notebook"], "message": f"cell {name}: {what}"})
        if events and info.get("student"):
            _add_events(Path(CourseDirectory(config=self.config).root), info["assignment"], info["student"],
                        info["notebook"], events)
        for ev in events:
            self.log.warning("%s: %s", ev["kind"], ev["message"])
        return nb, resources


class OutsideChecks(_Enabled):
    """Decide every test cell from its reported answers and the recorded ones (see the module docstring)."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Rewrite each test cell's outputs so that nbgrader's grade is the outside verdict."""
        from nbgrader.coursedir import CourseDirectory

        info = resources["nbgrader"]
        root = Path(CourseDirectory(config=self.config).root)
        assignment, notebook, student = info["assignment"], info["notebook"], info.get("student")
        expected = load_expected(root, assignment, notebook)
        events: list[dict] = []
        if expected is None:
            self.log.error("%s/%s: no recorded answers (expected/ missing): every test cell fails; run "
                           "`course record %s`", assignment, notebook, assignment)
            events.append({"kind": "checks-missing", "level": "attention", "cell": None,
                           "message": f"no recorded answers for {notebook}: test cells scored 0 (run `course record {assignment}`)"})
        cells = (expected or {}).get("cells", {})
        for cell in nb.cells:
            if not is_test_cell(cell):
                continue
            gid = _nbg(cell)["grade_id"]
            answers, malformed = read_answers(cell)
            failures, cell_events = verdict(cells.get(gid), answers, malformed)
            kernel_error = next((o for o in cell.outputs if o.get("output_type") == "error"), None)
            for ev in cell_events:
                events.append({"level": "attention", "cell": gid, **ev, "message": f"{gid}: {ev['message']}"})
            missing = [f for f in failures if f.endswith(": no answer")]
            if missing and kernel_error is None and cells.get(gid):
                events.append({"kind": "answer-missing", "level": "attention", "cell": gid,
                               "message": f"{gid}: {len(missing)} hidden check(s) reported no answer although the "
                                          "cell showed no error (the kernel died, or code skipped the check)"})
            recorded_state = (cells.get(gid) or {}).get("kernel")
            states = {json.dumps(a.get("kernel"), sort_keys=True) for a in answers if "kernel" in a}
            if recorded_state is not None and states and states != {json.dumps(recorded_state, sort_keys=True)}:
                events.append({"kind": "tampering", "level": "attention", "cell": gid,
                               "message": f"{gid}: the kernel's cell hooks or tracers differ from the reference's "
                                          "while the hidden checks ran"})
            outputs = [o for o in cell.outputs if o.get("output_type") != "execute_result"]
            cell.metadata["course_grade"] = {"checks": len((cells.get(gid) or {}).get("checks", [])),
                                             "failures": [_one_line(f) for f in failures]}
            if failures:
                outputs.insert(0, _grader_error(_one_line(failures[0] + (
                    f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""))))
            cell.outputs = outputs
        if student:
            for ev in events:
                ev.setdefault("notebook", notebook)
            _add_events(root, assignment, student, notebook, events)
        for ev in events:
            self.log.warning("%s: %s", ev["kind"], ev["message"])
        return nb, resources


# ---------------------------------------------------------------------------------------- feedback

def _safe_name(name: Any) -> str:
    """Return an exception type name fit to show, or a neutral word."""
    return name if isinstance(name, str) and re.fullmatch(r"[A-Za-z_][\w.]{0,60}", name) else "an error"


def feedback_line(cell: NotebookNode) -> str:
    """Return the grader's one-line verdict of an autograded test cell (points, passed or failed, why)."""
    meta = _nbg(cell)
    score, points = meta.get("score"), meta.get("points")
    shown = "?" if score is None else f"{float(score):g}"
    head = f"{shown} / {float(points or 0):g} points"
    failures = (cell.metadata.get("course_grade") or {}).get("failures") or []
    kernel_error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"
                         and o.get("ename") != FAILED), None)
    only_unanswered = all(f.endswith(": no answer") for f in failures)
    if failures and not (kernel_error is not None and only_unanswered):
        return _one_line(f"{head}: failed: {failures[0]}")
    if kernel_error is not None:  # the cell stopped before its hidden checks: the visible check's error says why
        return _one_line(f"{head}: failed: {_safe_name(kernel_error.get('ename'))} in the checks "
                         "(run the cell in your notebook to see the visible check's message)")
    if score is not None and points and float(score) < float(points):
        return f"{head}: failed"
    return f"{head}: passed"


def _match_key(cell: NotebookNode) -> str:
    """Return how a cell of the autograded copy is matched with the submitted one."""
    gid = _nbg(cell).get("grade_id")
    return f"grade:{gid}" if gid else f"id:{cell.get('id')}"


class GraderFeedback(_Enabled):
    """Feedback built by the grader: submitted outputs for the student's cells, a verdict for test cells."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Replace every output of the autograded copy (see the module docstring)."""
        from nbgrader.coursedir import CourseDirectory

        info = resources["nbgrader"]
        coursedir = CourseDirectory(config=self.config)
        submitted_path = Path(coursedir.format_path(coursedir.submitted_directory, info["student"],
                                                    info["assignment"])) / f"{info['notebook']}.ipynb"
        submitted: dict[str, list] = {}
        by_source: dict[str, list] = {}
        try:
            sub = nbformat.read(submitted_path, as_version=4)
        except Exception:  # noqa: BLE001 - no submitted outputs to show: the student still gets the verdicts
            sub = None
        for cell in sub.cells if sub is not None else []:
            if cell.cell_type == "code":
                submitted.setdefault(_match_key(cell), cell.get("outputs", []))
                by_source.setdefault(_norm(cell.source), cell.get("outputs", []))
        budget = [MAX_FEEDBACK_TOTAL]
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if is_test_cell(cell):
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=feedback_line(cell) + "\n")]
            else:
                mine = submitted.get(_match_key(cell))
                if mine is None:
                    mine = by_source.get(_norm(cell.source), [])
                cell.outputs = [self._bounded(o, budget) for o in mine]
            cell.execution_count = None
        return nb, resources

    @staticmethod
    def _bounded(output: NotebookNode, budget: list[int]) -> NotebookNode:
        """Return a copy of one submitted output, or a note when it is too large to show."""
        size = len(json.dumps(output))
        if size > MAX_FEEDBACK_OUTPUT or size > budget[0]:
            return nbformat.v4.new_output("stream", name="stdout",
                                          text=f"[output not shown in feedback: {size:,} bytes]\n")
        budget[0] -= size
        return copy.deepcopy(output)
