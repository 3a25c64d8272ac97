"""Hostile and clumsy submissions: grading ignores student-set switches, loses nothing, leaks no hidden
test and runs no submitted script (course_tools/preprocessors.py, wired in nbgrader_config.py).

One tiny scratch course (tests/fixtures/tiny_course.py, no models) with the repository's own
nbgrader_config.py; the submissions are handed in as one zip through `course collect`, graded once by
`course grade --workers 2` and given `course feedback`; every case asserts its exact score and
the status that `course grade` and `course export` report.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from course_tools import grade, preprocessors

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import tiny_course as tc  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
A = tc.ASSIGNMENT
SENTINEL = "http://sentinel.invalid"
HOSTILE_JS = (f"document.title='pwned'; window.pwned=1; fetch('{SENTINEL}/fetch');"
              f"new Image().src='{SENTINEL}/img';")
HOSTILE_MD = (f"Notes.\n\n<script>{HOSTILE_JS}</script>\n\n<img src=\"x\" onerror=\"{HOSTILE_JS}\">\n\n"
              f"[click](javascript:{HOSTILE_JS})\n\n<iframe src=\"{SENTINEL}/frame\"></iframe>\n\n"
              f"<a href=\"javascript:{HOSTILE_JS}\">link</a>")
HOSTILE_CODE = ("from IPython.display import HTML, Javascript, display\n"
                f"display(HTML({HOSTILE_MD!r}))\n"
                f"display(Javascript({HOSTILE_JS!r}))\n"
                "display({'image/svg+xml': '<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"window.pwned=3\"/>',"
                " 'text/plain': 'svg'}, raw=True)")
FULL_CODE = {nb: {k: v for k, v in ans.items() if k != "why"} for nb, ans in tc.FULL.items()}
# Attributes through output metadata (templates print width/height unquoted; filenames and isolated
# change what <img>/<iframe> load), a widget view, and a markdown cell whose attachments are an SVG with a
# handler, a quote-breaking "image" and one that is missing (nbconvert fails a page on that).
PNG = preprocessors.PLACEHOLDER_PNG
HOSTILE_META_CODE = (
    "from IPython.display import display\n"
    f"png = {PNG!r}\n"
    "display({'image/png': png, 'text/plain': 'png'}, metadata={'image/png': {'width': "
    "'1 onload=alert(document.domain)//'}}, raw=True)\n"
    "display({'image/jpeg': png}, metadata={'height': '1 onerror=window.pwned=4//', 'width': 'x onload=y'}, raw=True)\n"
    f"display({{'image/png': png}}, metadata={{'filenames': {{'image/png': '{SENTINEL}/file.png'}}}}, raw=True)\n"
    "display({'text/html': '<b>isolated</b>'}, metadata={'text/html': {'isolated': True}}, raw=True)\n"
    "display({'application/vnd.jupyter.widget-view+json': {'model_id': 'm', 'version_major': 2, "
    "'version_minor': 0}, 'text/plain': 'a widget'}, raw=True)")
HOSTILE_ATTACHMENTS = {"x.png": {"image/png": "AAA' onerror='window.pwned=6"},
                       "y.svg": {"image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg' onload='window.pwned=5'/>"}}
HOSTILE_ATTACHED_MD = "Pictures: ![x](attachment:x.png) ![y](attachment:y.svg) ![z](attachment:missing.png)"


def course_env(root: Path) -> dict[str, str]:
    """Return the environment for `course`/nbgrader on the scratch course."""
    return {**tc.env(), "COURSE_ROOT": str(root), "HF_HUB_OFFLINE": "1"}


def run(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a Python module command (course or nbgrader) in the scratch course root."""
    return subprocess.run([sys.executable, "-m", *args], cwd=root, env=course_env(root), text=True,
                          capture_output=True, timeout=timeout)


def build(root: Path) -> Path:
    """Create the tiny course at ``root`` with the repository's nbgrader_config.py."""
    (root / "source" / A).mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    for name, nb in tc.notebooks().items():
        nbformat.write(nb, root / "source" / A / f"{name}.ipynb")
    out = run(root, "nbgrader", "generate_assignment", A, "--create", "--force")
    assert out.returncode == 0, out.stderr
    tc.record_answers(root)
    return root


def notebooks(root: Path, student: str, answers: dict) -> dict[str, nbformat.NotebookNode]:
    """Write an honest submission, then return its notebooks for editing (save with ``save``)."""
    folder = tc.submit(root, student, answers)
    return {p.stem: nbformat.read(p, as_version=4) for p in sorted(folder.glob("*.ipynb"))}


def save(root: Path, student: str, nbs: dict) -> None:
    """Write edited notebooks back into a submission."""
    for stem, nb in nbs.items():
        nbformat.write(nb, root / "submitted" / student / A / f"{stem}.ipynb")


def cell(nb, gid: str):
    """Return the cell with nbgrader grade_id ``gid``."""
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def index(nb, gid: str) -> int:
    """Return the position of the cell with grade_id ``gid``."""
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def strip_metadata(nbs: dict, new_ids: bool) -> None:
    """Remove all nbgrader metadata (a notebook pasted into a new file); optionally give cells new ids."""
    for nb in nbs.values():
        for k, c in enumerate(nb.cells):
            c.metadata.pop("nbgrader", None)
            c.metadata.pop("deletable", None)
            c.metadata.pop("editable", None)
            if new_ids:
                c["id"] = f"pasted-{k}"


def make_submissions(root: Path) -> dict[str, tuple[float, str]]:
    """Write every hostile submission; return {student: (expected score, expected status)}."""
    expect = {}
    tc.submit(root, "alice", tc.FULL)
    expect["alice"] = (9, "ok")  # 10 points, 1 of them manual (not graded yet)

    # Free points: execution tags on the tests of an unsolved exercise.
    nbs = notebooks(root, "skipper", {})
    for nb in nbs.values():
        for c in nb.cells:
            if c.metadata.get("nbgrader", {}).get("grade") or c.metadata.get("nbgrader", {}).get("solution"):
                c.metadata["tags"] = ["skip-execution", "raises-exception", "remove-input", "remove-cell"]
    save(root, "skipper", nbs)
    expect["skipper"] = (0, "ok")

    # Edited metadata: a test cell made non-graded, worth 100, unlocked and emptied; an answer cell unmarked.
    nbs = notebooks(root, "meta", {"one": {"reverse": tc.FULL["one"]["reverse"]}, "two": tc.FULL["two"]})
    t = cell(nbs["one"], "test_double")
    t.metadata["nbgrader"].update(grade=False, locked=False, points=100)
    t.source = "pass"
    cell(nbs["one"], "reverse").metadata["nbgrader"]["solution"] = False
    save(root, "meta", nbs)
    expect["meta"] = (7, "ok")  # double unsolved: its restored test scores 0

    # An extra cell with an unknown grade id claiming 100 points, and a renamed test cell.
    nbs = notebooks(root, "extra", tc.FULL)
    bonus = new_code_cell("print('free points')")
    bonus.metadata["nbgrader"] = {"schema_version": 3, "grade_id": "bonus", "grade": True, "solution": False,
                                  "locked": True, "points": 100}
    nbs["one"].cells.append(bonus)
    cell(nbs["two"], "test_square").metadata["nbgrader"]["grade_id"] = "test_square_renamed"
    save(root, "extra", nbs)
    expect["extra"] = (9, "ok")

    # Duplicated grade ids: a test cell copied (and the copy emptied), an answer cell copied (last one counts).
    nbs = notebooks(root, "dup", tc.FULL)
    one = nbs["one"]
    copy_test = nbformat.from_dict(json.loads(json.dumps(cell(one, "test_reverse"))))
    copy_test["id"] = "copy-test"
    copy_test.source = "pass"
    one.cells.insert(index(one, "test_reverse"), copy_test)
    wrong = nbformat.from_dict(json.loads(json.dumps(cell(one, "double"))))
    wrong["id"] = "copy-answer"
    wrong.source = "def double(x):\n    return 0"
    one.cells.insert(index(one, "double"), wrong)
    save(root, "dup", nbs)
    expect["dup"] = (9, "ok")

    # Retyped manual answer: the answer cell deleted, the answer typed into a new cell (Colab lets you).
    nbs = notebooks(root, "retyped", FULL_CODE)
    del nbs["one"].cells[index(nbs["one"], "why")]
    nbs["one"].cells.append(new_markdown_cell("Because I typed it again."))
    save(root, "retyped", nbs)
    expect["retyped"] = (9, "needs attention")

    # Pasted into a new file: no nbgrader metadata; release cell ids kept (Colab) -> recovered exactly.
    nbs = notebooks(root, "pasted", tc.FULL)
    strip_metadata(nbs, new_ids=False)
    save(root, "pasted", nbs)
    expect["pasted"] = (9, "ok")

    # Pasted with new ids too: matched by text and position; the manual answer needs a look.
    nbs = notebooks(root, "pasted_new", tc.FULL)
    strip_metadata(nbs, new_ids=True)
    save(root, "pasted_new", nbs)
    expect["pasted_new"] = (9, "needs attention")

    # Only the code, in one fresh cell per notebook: tests are put back after it and graded.
    nbs = notebooks(root, "scraps", {})
    nbs["one"].cells = [new_code_cell(tc.FULL["one"]["double"] + "\n\n" + tc.FULL["one"]["reverse"])]
    nbs["two"].cells = [new_code_cell(tc.FULL["two"]["square"])]
    save(root, "scraps", nbs)
    expect["scraps"] = (9, "needs attention")

    # A passing visible test but a failing hidden one (the hidden line is in the traceback).
    tc.submit(root, "hider", {"one": {"double": "def double(x):\n    return 4 if x == 2 else 0"},
                              "two": tc.FULL["two"]})
    expect["hider"] = (4, "ok")

    # Script in markdown, in the manual answer and in outputs.
    nbs = notebooks(root, "mallory", {"one": {**tc.FULL["one"], "why": "Because.\n\n" + HOSTILE_MD},
                                      "two": tc.FULL["two"]})
    nbs["one"].cells.insert(3, new_markdown_cell(HOSTILE_MD))
    nbs["one"].cells.insert(4, new_code_cell(HOSTILE_CODE))
    meta_cell = new_code_cell(HOSTILE_META_CODE)
    meta_cell.metadata.update(magics_language={"no": "lexer"}, tags=["t\" onmouseover=\"window.pwned=7"])
    attached = new_markdown_cell(HOSTILE_ATTACHED_MD)
    attached.attachments = HOSTILE_ATTACHMENTS
    attached.metadata["transient"] = {"remove_source": True}
    nbs["one"].cells[5:5] = [meta_cell, attached]
    nbs["one"].metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    save(root, "mallory", nbs)
    expect["mallory"] = (9, "ok")

    # A notebook not submitted at all.
    folder = tc.submit(root, "half", tc.FULL)
    (folder / "two.ipynb").unlink()
    expect["half"] = (5, "needs attention")

    # A notebook that is not even JSON: that notebook fails, and says so (never a silent 0); the other is graded.
    folder = tc.submit(root, "broken", tc.FULL)
    (folder / "one.ipynb").write_text("{not json")
    expect["broken"] = (4, "needs attention")
    return expect


def hand_in(root: Path) -> Path:
    """Pack every submission into one LMS-style download (a folder per student); empty submitted/."""
    download = root / "download.zip"
    with zipfile.ZipFile(download, "w") as zf:
        for path in sorted((root / "submitted").glob(f"*/{A}/*.ipynb")):
            zf.write(path, f"submissions/{path.parent.parent.name}/{path.name}")
    shutil.rmtree(root / "submitted")
    return download


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The scratch course after `course collect` and `course grade --workers 2`, its output and the expected outcomes."""
    root = build(tmp_path_factory.mktemp("hostile") / "course")
    expect = make_submissions(root)
    collected = run(root, "course_tools.cli", "collect", A, str(hand_in(root)))
    # Collect refuses exactly the file that is not a notebook, says so, and exits 2.
    assert collected.returncode == 2, collected.stdout + collected.stderr
    assert "layout: folders" in collected.stdout and f"of {len(expect)} student(s)" in collected.stdout
    assert "REJECTED 1 file(s)" in collected.stdout and "broken/one.ipynb: not a Jupyter notebook" in collected.stdout
    assert "UNMATCHED" not in collected.stdout and "duplicates" not in collected.stdout
    # The same damage after collection (a file copied in by hand): grading fails it, and says so.
    (root / "submitted" / "broken" / A / "one.ipynb").write_text("{not json")
    # The sandbox's probe is not under test here (tests/test_sandbox.py); no model to prepare either.
    out = run(root, "course_tools.cli", "grade", A, "--workers", "2", "--sandbox", "off", "--no-prepare")
    logs = sorted((root / "autograded" / grade.STATE_DIR / A).glob("*.log"))
    assert len(logs) == len(expect)
    out.stderr += "\n".join(p.read_text(errors="replace") for p in logs)
    return root, out, expect


def scores(root: Path) -> dict[str, float]:
    """Return each student's total score from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(A)}


def table(out: str) -> dict[str, list[str]]:
    """Parse `course grade`'s summary table into {student: [score, max, status, ...]}."""
    rows = {}
    for line in out.splitlines():
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) >= 5 and parts[0] not in ("student",) and not set(parts[0]) <= {"-"}:
            rows[parts[0]] = parts[1:]
    return rows


@pytest.mark.slow
def test_every_case_scores_exactly(graded):
    """Each submission gets exactly its deserved score and the status the summary table shows."""
    root, out, expect = graded
    assert out.returncode == 0, out.stdout + out.stderr  # everything was graded ("broken": all but one notebook)
    got = scores(root)
    assert {s: got[s] for s in expect} == {s: e[0] for s, e in expect.items()}
    rows = table(out.stdout)
    assert {s: rows[s][2] for s in expect} == {s: e[1] for s, e in expect.items()}, out.stdout
    assert all(rows[s][1] == "10" for s in expect)


def events(root: Path, student: str) -> list[str]:
    """Return the kinds of events recorded for a student."""
    return [e["kind"] for e in preprocessors.read_events(root, A, student)]


@pytest.mark.slow
def test_events_say_what_happened(graded):
    """Honest work has no event; every repair is recorded, and shown in the summary table."""
    root, out, _ = graded
    assert events(root, "alice") == [] and events(root, "hider") == []
    assert "checksum" not in out.stderr  # hidden tests put back silently: no noise for honest work
    assert set(events(root, "skipper")) == {"tags-removed"}
    assert {"metadata-edited", "test-edited"} <= set(events(root, "meta"))
    assert events(root, "extra").count("unknown-cell") == 2  # the bonus cell and the renamed test...
    assert "metadata-recovered" in events(root, "extra")  # ...which its release cell id still names
    assert events(root, "dup").count("duplicate-cell") == 2
    assert "answer-moved" in events(root, "retyped")
    assert "no-metadata" in events(root, "pasted") and "answer-moved" not in events(root, "pasted")
    assert {"no-metadata", "answer-moved"} <= set(events(root, "pasted_new"))
    assert "test-restored" in events(root, "scraps")
    assert "script-removed" in events(root, "mallory")
    rows = table(out.stdout)
    assert "tags removed" in rows["skipper"][-1] and "test restored" in rows["scraps"][-1]
    results = json.loads((root / "autograded" / grade.STATE_DIR / A / "results.json").read_text())
    assert [e["kind"] for e in results["half"]["events"]] == ["notebook-missing"]


@pytest.mark.slow
def test_retyped_answer_reaches_the_grader(graded):
    """The retyped answer sits in the manually graded cell, with a visible note, awaiting a grade."""
    root, _, _ = graded
    nb = nbformat.read(root / "autograded" / "retyped" / A / "one.ipynb", as_version=4)
    why = cell(nb, "why")
    assert "Because I typed it again." in why.source and "moved here" in why.source
    assert sum("Because I typed it again." in c.source for c in nb.cells) == 1
    assert "repaired before grading" in nb.cells[0].source and "'why'" in nb.cells[0].source
    rows = [r for r in grade.gradebook_rows(root, A) if r[0] == "retyped" and r[2] == "why"]
    assert rows and rows[0][6] == 1  # needs_manual_grade


@pytest.mark.slow
def test_tags_and_metadata_come_from_the_source(graded):
    """In the autograded copy, protected cells carry the source's metadata and no student tags."""
    root, _, _ = graded
    for student in ("skipper", "meta"):
        nb = nbformat.read(root / "autograded" / student / A / "one.ipynb", as_version=4)
        t = cell(nb, "test_double")
        assert t.metadata["nbgrader"]["grade"] and t.metadata["nbgrader"]["points"] == 2
        assert "tags" not in t.metadata and "HIDDEN-ONE" in t.source


@pytest.mark.slow
def test_plain_nbgrader_autograde_is_protected(graded):
    """Plain `nbgrader autograde` in the course root applies the same protection (config-level)."""
    root, _, _ = graded
    shutil.copytree(root / "submitted" / "skipper", root / "submitted" / "skipper2")
    out = run(root, "nbgrader", "autograde", A, "--student", "skipper2")
    assert out.returncode == 0, out.stderr
    assert scores(root)["skipper2"] == 0
    assert set(events(root, "skipper2")) == {"tags-removed"}


@pytest.mark.slow
def test_export_reports_status_events_and_weighted_total(graded, tmp_path):
    """`course export` has score, max, status and events per student; a missing one is 'missing'."""
    root, _, expect = graded
    run(root, "nbgrader", "db", "student", "add", "ghost")
    to = tmp_path / "grades.csv"
    out = run(root, "course_tools.cli", "export", "--to", str(to))
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(to.open()))
    got = {r["student"]: r for r in rows if r["assignment"] == A}
    for student, (score, status) in expect.items():
        assert (float(got[student]["score"]), got[student]["status"]) == (score, status), student
        assert got[student]["max_score"] == "10"
    assert got["ghost"]["status"] == "missing" and got["ghost"]["score"] == "0"
    assert "script removed" in got["mallory"]["events"]
    totals = {r["student"]: float(r["score"]) for r in rows if r["assignment"] == "weighted total"}
    assert totals["alice"] == 90 and totals["ghost"] == 0


# ---------------------------------------------------------------------------------- hidden tests

def hidden_blocks(paths: list[Path]) -> list[str]:
    """Return every significant line of every hidden-test block in the given source notebooks.

    A line that also appears outside the hidden blocks (an import, say) is no secret and is left out.
    """
    lines, visible = [], set()
    for path in paths:
        for c in nbformat.read(path, as_version=4).cells:
            lines += [ln.strip() for ln in preprocessors.hidden_lines(c.source) if len(ln.strip()) >= 8]
            visible.update(ln.strip() for ln in preprocessors.strip_hidden(c.source).split("\n"))
    # (a fragment such as "atol=1e-4)" that also occurs inside a visible line is no secret either)
    return [ln for ln in lines if ln not in visible and not any(ln in v for v in visible)]


class _Text(HTMLParser):
    """Collect the text of an HTML page (syntax highlighting splits code into many spans)."""

    def __init__(self) -> None:
        """Start with no text."""
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        """Keep every text node."""
        self.parts.append(data)


def page_text(raw: str) -> str:
    """Return the visible text of an HTML page."""
    parser = _Text()
    parser.feed(raw)
    return html.unescape("".join(parser.parts))


def assert_no_hidden_line(folder: Path, secrets: list[str]) -> int:
    """Assert no secret line appears in any file under ``folder`` (raw or as page text); return files checked."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        raw = path.read_text(errors="replace")
        text = page_text(raw) if path.suffix == ".html" else raw
        for secret in secrets:
            assert secret not in raw and secret not in text, (path, secret)
    return len(files)


@pytest.fixture(scope="module")
def feedback(graded):
    """The scratch course after `course feedback`."""
    root, _, _ = graded
    out = run(root, "course_tools.cli", "feedback", A, "--force")
    assert out.returncode == 0, out.stdout + out.stderr
    return root


@pytest.mark.slow
def test_feedback_has_no_hidden_test(feedback):
    """No line of a hidden block appears under feedback/; each test shows points and the error line."""
    root = feedback
    secrets = hidden_blocks(sorted((root / "source").glob("*/*.ipynb")))
    assert len(secrets) == 7  # the answers the tiny course's hidden blocks hand the grader (and their imports)
    assert assert_no_hidden_line(root / "feedback", secrets) >= 20
    text = page_text((root / "feedback" / "hider" / A / "one.html").read_text())
    assert "hidden tests: not shown" in text and "0.0 / 2.0" in text
    # the grader's line: which hidden check failed and how, never the expected value
    assert "0 / 2 points: failed: check 'a hidden number': value differs" in text
    assert "0 / 3 points: failed: NotImplementedError in the checks" in text
    assert "assert double(2) == 4" in text  # the visible test stays


def test_hidden_tests_of_every_course_notebook_stay_out_of_feedback(tmp_path):
    """Each source notebook of the course, rendered as feedback, shows none of its hidden lines."""
    from nbconvert.exporters import HTMLExporter

    paths = sorted((REPO / "source").glob("*/*.ipynb"))
    secrets = hidden_blocks(paths)
    assert secrets, "the course has hidden tests"
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for c in nb.cells:
            if preprocessors.hidden_lines(c.source) and c.cell_type == "code":
                c.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="",
                                                    traceback=["Traceback", *c.source.split("\n")])]
        nb, _ = preprocessors.HideHiddenTests().preprocess(nb, {})
        body, _ = HTMLExporter().from_notebook_node(nb)
        (tmp_path / f"{path.parent.name}-{path.stem}.html").write_text(body)
    assert assert_no_hidden_line(tmp_path, secrets) == len(paths)


# ----------------------------------------------------------------------------------- no script

def test_clean_markup_keeps_plain_markdown_and_defuses_html():
    """Plain markdown (code spans, maths with <) is untouched; scripts, handlers and js: URLs are not."""
    plain = "See [docs](https://example.org).\n\n<details><summary>Hint</summary>x</details>"
    assert preprocessors.clean_markup("Use `a < b` and $x<y$.")[0] == "Use `a < b` and $x<y$."
    safe, active = preprocessors.clean_markup(plain)
    assert not active and "<details>" in safe and "https://example.org" in safe
    from nbconvert.filters.markdown import markdown2html

    for hostile in (HOSTILE_MD, "[x](java\tscript:window.pwned=1)", "[x][r]\n\n[r]: &#106;avascript:window.pwned=1",
                    "<javascript:window.pwned=1>", "<svg/onload=window.pwned=1>"):
        safe, active = preprocessors.clean_markup(hostile)
        assert active and active_elements(markdown2html(safe)) == [] and "<script" not in safe, hostile
        assert 'href="' not in markdown2html(safe), hostile
        assert preprocessors.clean_markup(safe) == (safe, False)  # feedback cleans the autograded copy again
    sneaky = preprocessors.INERT_NOTE + "<pre><script>window.pwned=1</script></pre>\n"
    assert preprocessors.clean_markup(sneaky)[1]  # a fake "already inert" block is not trusted
    assert active_elements(markdown2html(HOSTILE_MD))  # the checker does see the raw attack


class _Active(HTMLParser):
    """Collect the elements of a page that would run the hostile script (or load the sentinel)."""

    def __init__(self) -> None:
        """Start with nothing found."""
        super().__init__()
        self.found: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Flag iframes, javascript: URLs and event handlers; remember when a script starts."""
        for name, value in attrs:
            value = value or ""
            if name.startswith("on") and ("pwned" in value or "sentinel" in value):
                self.found.append(f"<{tag} {name}>")
            if value.strip().lower().startswith("javascript:") or "sentinel" in value:
                self.found.append(f"<{tag} {name}={value[:30]}>")
        if tag in ("iframe", "object", "embed"):
            self.found.append(f"<{tag}>")
        self.in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        """Leave a script."""
        self.in_script = False

    def handle_data(self, data: str) -> None:
        """Flag a script whose text is the hostile one."""
        if self.in_script and "pwned" in data:
            self.found.append("<script>pwned")


def active_elements(raw: str) -> list[str]:
    """Return the hostile active elements in an HTML page or fragment ([] when inert)."""
    parser = _Active()
    parser.feed(raw)
    return parser.found


def _scripts_ran(page) -> dict:
    """Return what a hostile script would have changed on the page."""
    return page.evaluate("() => ({title: document.title, pwned: window.pwned === undefined ? null : window.pwned})")


def browse(pw, url: str, headers: dict | None = None) -> tuple[dict, list[str], str]:
    """Open ``url`` in headless Chromium; return (script effects, sentinel requests, page text)."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("no chromium")
    hits: list[str] = []
    browser = pw.chromium.launch(executable_path=chromium, headless=True, args=[
        "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-dev-shm-usage"])
    try:
        context = browser.new_context(extra_http_headers=headers or {})
        page = context.new_page()
        page.on("request", lambda r: hits.append(r.url) if "sentinel" in r.url else None)
        page.on("dialog", lambda d: (hits.append("dialog:" + d.message), d.dismiss()))
        page.goto(url, wait_until="load", timeout=60_000)
        page.wait_for_timeout(1500)
        return _scripts_ran(page), hits, page.inner_text("body")
    finally:
        browser.close()


def test_browser_check_sees_a_script_that_runs(tmp_path, sync_playwright_session):
    """Control: the same checks do catch the hostile script on an unsanitized page."""
    page = tmp_path / "raw.html"
    page.write_text(f"<html><head><title>one</title></head><body>{HOSTILE_MD}</body></html>")
    effects, hits, _ = browse(sync_playwright_session, page.as_uri())
    assert effects == {"title": "pwned", "pwned": 1} and hits
    assert active_elements(page.read_text())
    # An image's output metadata, rendered by nbconvert as it comes: the handler runs (a dialog) and the
    # file it names is fetched.
    from nbconvert.exporters import HTMLExporter

    outs = [nbformat.v4.new_output("display_data", data={"image/png": PNG}, metadata=meta) for meta in (
        {"image/png": {"width": "1 onload=alert(document.domain)//"}},
        {"filenames": {"image/png": f"{SENTINEL}/f.png"}})]
    nb = nbformat.v4.new_notebook(cells=[new_code_cell("x", outputs=outs)])
    page.write_text(HTMLExporter(template_name="classic").from_notebook_node(nb)[0])
    _, hits, _ = browse(sync_playwright_session, page.as_uri())
    assert any(h.startswith("dialog:") for h in hits) and any(h.startswith(SENTINEL) for h in hits), hits


@pytest.mark.slow
def test_autograded_copy_is_inert(graded):
    """The autograded notebook (what formgrader renders) holds no script, handler or JS output."""
    root, _, _ = graded
    nb = nbformat.read(root / "autograded" / "mallory" / A / "one.ipynb", as_version=4)
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    pages = [MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=c.get("attachments", {}))).render(
        c.source) for c in nb.cells if c.cell_type == "markdown"]  # (how nbconvert renders a cell's markdown)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    pages += [o.get("data", {}).get("text/html", "") for o in outputs]
    assert [p for p in pages if active_elements(p)] == []
    assert not any(m in o.get("data", {}) for o in outputs for m in ("application/javascript", "image/svg+xml"))
    assert sum("shown as plain text" in p for p in pages) == 3  # markdown cell, answer cell, HTML output
    assert "widgets" not in nb.metadata and "Because." in cell(nb, "why").source
    for out in outputs:  # of output metadata, only validated sizes and text are left
        meta = out.get("metadata", {})
        for level in [meta, *[v for v in meta.values() if isinstance(v, dict)]]:
            assert not {"filenames", "isolated"} & set(level), meta
            assert all(isinstance(level[k], (int, float)) for k in ("width", "height") if k in level), meta
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # the images themselves stay
    pictures = next(c for c in nb.cells if c.source == HOSTILE_ATTACHED_MD)
    assert set(pictures.attachments) == {"x.png", "y.svg", "missing.png"}  # each name the markdown uses...
    assert all(a == {"image/png": PNG} for a in pictures.attachments.values())  # ...is a placeholder now
    assert "transient" not in pictures.metadata and not any("magics_language" in c.metadata for c in nb.cells)


@pytest.mark.slow
def test_feedback_page_runs_no_script(feedback, sync_playwright_session):
    """The hostile student's feedback page loads in Chromium and no script of theirs ran."""
    page = feedback / "feedback" / "mallory" / A / "one.html"
    assert active_elements(page.read_text()) == []
    effects, hits, text = browse(sync_playwright_session, page.as_uri())
    assert effects == {"title": "one", "pwned": None} and hits == []
    assert "Notes." in text and "Because." in text and "<script>" in text and "&lt;script" not in text


def _wait_http(url: str, seconds: float) -> None:
    """Wait until ``url`` answers (any HTTP status)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


@pytest.mark.slow
def test_formgrader_page_runs_no_script(feedback, sync_playwright_session):
    """Formgrader's page for the hostile submission loads in Chromium, sanitized, and no script of it ran."""
    from nbgrader.api import Gradebook

    root = feedback
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        sub_id = gb.find_submission_notebook("one", A, "mallory").id
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "hostile-test-token"
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
        cwd=root, env=course_env(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/api", 90)
        url = f"{base}/formgrader/submissions/{sub_id}/?token={token}"
        with urllib.request.urlopen(url, timeout=60) as resp:
            body = resp.read().decode()
        assert "Because." in body and "Notes." in body
        assert active_elements(body) == []
        effects, hits, text = browse(sync_playwright_session, url)
        assert effects["pwned"] is None and effects["title"] != "pwned" and hits == []
        assert "Because." in text
        # An autograded copy graded before this configuration (or edited by hand): formgrader cleans it
        # when it renders it (c.HTMLExporter.preprocessors in nbgrader_config.py).
        path = root / "autograded" / "mallory" / A / "one.ipynb"
        saved = path.read_bytes()
        try:
            stale = nbformat.read(path, as_version=4)
            stale.cells.append(new_markdown_cell("Stale. " + HOSTILE_MD))
            attached = new_markdown_cell(HOSTILE_ATTACHED_MD)
            attached.attachments = HOSTILE_ATTACHMENTS
            stale.cells.append(attached)
            stale.cells.append(new_code_cell("x", outputs=[nbformat.v4.new_output(
                "display_data", data={"image/png": PNG}, metadata={"image/png": {"width": "1 onload=window.pwned=9//"},
                                                                   "filenames": {"image/png": f"{SENTINEL}/f.png"}})]))
            nbformat.write(stale, path)
            effects, hits, text = browse(sync_playwright_session, url)
            assert effects["pwned"] is None and effects["title"] != "pwned" and hits == [], (effects, hits)
            assert "Stale." in text and "Pictures:" in text
        finally:
            path.write_bytes(saved)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.mark.slow
def test_parallel_equals_sequential_with_the_course_config(tmp_path):
    """With these preprocessors configured, `course grade --workers 2` still writes exactly what sequential
    `nbgrader autograde` writes for honest submissions (every gradebook row, every autograded notebook)."""
    base = build(tmp_path / "base")
    for student, answers in {"alice": tc.FULL, "bob": tc.PARTIAL, "carol": {}}.items():
        tc.submit(base, student, answers)
    seq, par = tmp_path / "seq", tmp_path / "par"
    shutil.copytree(base, seq)
    shutil.copytree(base, par)
    out = run(seq, "nbgrader", "autograde", A)
    assert out.returncode == 0, out.stderr
    results = grade.grade_all(par, A, grade.GradeOptions(sandbox="off", timeout=600), workers=2)
    assert [r.status for r in results] == ["ok"] * 3 and all(r.events == [] for r in results)
    assert grade.gradebook_rows(par, A) == grade.gradebook_rows(seq, A)
    paths = sorted((seq / "autograded").glob(f"*/{A}/*.ipynb"))
    assert len(paths) == 6
    for path in paths:
        assert grade.normalized_notebook(par / path.relative_to(seq)) == grade.normalized_notebook(path)
    assert {r[0]: r[3] for r in grade.gradebook_rows(par, A) if r[2] == "test_square"} == \
        {"alice": 4, "bob": 0, "carol": 0}
