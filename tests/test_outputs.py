"""Output is bounded in bytes while it arrives (course_tools/outputs.py, helpers/kernel_output.py).

The case from the issue: 120 printed lines of 5 MB each in an otherwise correct submission made a 620 MB
autograded notebook and a 3.2 GB grader. Here it grades to the reference's score, leaves an autograded
notebook under the per-notebook cap with a note saying how much was cut, and every process of the
grading (course grade, nbgrader, the kernel) stays far under 1 GB. The caps themselves (per output,
per cell, per notebook) are checked on synthetic messages, on a real kernel with and without the
kernel-side limits, and against a kernel that sends one message bigger than the grader accepts.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from course_tools.outputs import MIN_ERROR, OVERHEAD, Budget, BoundedExecute, output_size
from helpers.checks import ANSWER_MIME
from helpers.config import course_config, parse_size

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import tiny_course as tc  # noqa: E402
from test_hostile import A, build, course_env, run, scores  # noqa: E402

KIB = 1024
FLOOD = "for _ in range(120):\n    print('x' * 5_000_000)\n"  # 600 MB, the recipe


def stream(text: str, name: str = "stdout") -> nbformat.NotebookNode:
    """Return a stream output as nbclient makes it from a message."""
    return new_output("stream", name=name, text=text)


def feed(budget: Budget, outputs: list) -> list:
    """Admit ``outputs`` into one cell as they would arrive; return the cell's outputs after it ends."""
    cell: list = []
    budget.start_cell()
    for out in outputs:
        kept = budget.admit(cell, out)
        if kept is not None:
            cell.append(kept)
    budget.finish_cell(cell)
    return cell


def notes(cell: list) -> list[str]:
    """Return the texts of the grader's notes in a cell's outputs."""
    return [o.data["text/plain"] for o in cell if o.output_type in ("display_data", "execute_result")
            and o.data.get("text/plain", "").startswith("[course grade]")]


def test_caps_come_from_the_course_settings(tmp_path, monkeypatch):
    """grade_max_output, grade_max_cell_output and grade_max_notebook_output live in course.toml (defaults
    keep a submission's outputs to a few MB); the preprocessor's own traits win; a bad size fails early."""
    defaults = course_config(tmp_path)
    assert [parse_size(getattr(defaults, k)) for k in
            ("grade_max_output", "grade_max_cell_output", "grade_max_notebook_output")] == [512 * KIB, 1 << 20, 2 << 20]
    (tmp_path / "nbgrader_config.py").write_text("")
    (tmp_path / "course.toml").write_text('grade_max_output = "100K"\ngrade_max_cell_output = "200K"\n'
                                          'grade_max_notebook_output = "1M"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLM_COURSE_CONFIG", raising=False)
    assert BoundedExecute().caps() == (100 * KIB, 200 * KIB, 1 << 20)
    assert BoundedExecute(max_cell_output_bytes=300 * KIB).caps() == (100 * KIB, 300 * KIB, 1 << 20)
    monkeypatch.setenv("LLM_COURSE_GRADE_MAX_OUTPUT", "lots")
    with pytest.raises(ValueError, match="grade_max_output"):
        course_config(tmp_path)


def test_streams_are_cut_with_a_note_saying_how_much():
    """Pieces of one stream form one output, kept up to the per-output cap; the note counts every byte cut."""
    budget = Budget(100 * KIB, 300 * KIB, 1 << 20)
    cell = feed(budget, [stream("x" * 30 * KIB) for _ in range(50)] + [stream("done\n")])
    assert [o.output_type for o in cell] == ["stream", "display_data"]
    assert len(cell[0].text) == 100 * KIB
    assert notes(cell) == [f"[course grade] stdout cut: {50 * 30 * KIB + 5 - 100 * KIB:,} bytes (1.4 MiB) not kept; "
                           "limits 100 KiB per output, 300 KiB per cell, 1.0 MiB per notebook"]


def test_what_grading_reads_survives_a_full_cell():
    """With the cell full, a later stderr still leaves a stderr output (nbgrader zeroes such a test cell),
    the cell's first error is kept (shortened), and further outputs are only counted."""
    budget = Budget(100 * KIB, 100 * KIB, 1 << 20)
    error = new_output("error", ename="AssertionError", evalue="e" * (1 << 20),
                       traceback=["line"] * 10 + ["AssertionError: " + "e" * (1 << 20)])
    cell = feed(budget, [stream("x" * 200 * KIB), stream("warning\n", "stderr"), error,
                         new_output("display_data", data={"text/plain": "y" * 1000}), error])
    kinds = [(o.output_type, o.get("name")) for o in cell]
    assert kinds[:3] == [("stream", "stdout"), ("stream", "stderr"), ("error", None)]
    assert cell[1].text == "" and cell[2].ename == "AssertionError"
    assert output_size(cell[2]) <= MIN_ERROR + OVERHEAD + 200
    assert cell[2].traceback[-1].startswith("AssertionError: eee")  # the line that says what failed
    assert any("stderr cut: 8 bytes" in n for n in notes(cell)) and any("2 more output(s)" in n for n in notes(cell))


def test_displays_results_and_kernel_reports():
    """A display over the per-output cap becomes a note in its place (a result keeps its number); the
    kernel's report of what it held back is added to the cell's note, not shown as an output."""
    budget = Budget(100 * KIB, 1 << 20, 2 << 20)
    big = new_output("display_data", data={"image/png": "A" * 200 * KIB, "text/plain": "fig"})
    result = new_output("execute_result", data={"text/plain": "z" * 200 * KIB}, execution_count=7)
    report = new_output("display_data", data={"text/plain": "[course grade] output not sent by the kernel"},
                        metadata={"course_grade": {"cut": {"stdout": 5_000_000}, "dropped": 2, "dropped_bytes": 300}})
    cell = feed(budget, [stream("head\n"), big, result, report])
    assert [o.output_type for o in cell] == ["stream", "display_data", "execute_result", "display_data",
                                             "display_data"]
    assert "image/png, text/plain cut: 204,805 bytes" in cell[1].data["text/plain"]  # (data and metadata)
    assert cell[2].execution_count == 7 and "text/plain cut" in cell[2].data["text/plain"]
    assert "stdout cut: 5,000,000 bytes (4.8 MiB)" in cell[3].data["text/plain"]
    assert "2 more output(s) cut: 300 bytes" in cell[4].data["text/plain"]


def test_answers_for_the_grader_survive_a_full_notebook():
    """The answers hidden checks hand the grader are kept whole after any flood (else the check would fail
    closed and a correct submission lose points); fake ones cannot grow the notebook past twice its cap."""
    budget = Budget(64 * KIB, 128 * KIB, 256 * KIB)
    for _ in range(10):
        feed(budget, [stream("x" * 200 * KIB)])
    doc = {"format": 1, "check": "c", "options": {}, "value": {"t": "list", "v": list(range(5000))}}
    answer = new_output("display_data", data={ANSWER_MIME: doc, "text/plain": "[answer for the grader: c]"})
    cell = feed(budget, [stream("y" * 100 * KIB), answer])
    assert cell[1] is answer and cell[1].data[ANSWER_MIME] == doc
    flood = [new_output("display_data", data={ANSWER_MIME: {"v": "z" * 50 * KIB}}) for _ in range(20)]
    kept = [o for o in feed(budget, flood) if ANSWER_MIME in o.get("data", {})]
    assert budget.answers <= 256 * KIB and len(kept) < 20


def test_the_notebook_cap_holds_across_cells_and_clears_give_room_back():
    """However many cells print, the outputs kept stay under the per-notebook cap; once it is full a cell
    keeps only an empty output per stream it wrote (grading reads stderr) and one short note."""
    budget = Budget(64 * KIB, 128 * KIB, 512 * KIB)
    cells = [feed(budget, [stream("x" * 100 * KIB), stream("y" * 100 * KIB, "stderr")]) for _ in range(40)]
    text = sum(len(o.get("text", "")) for cell in cells for o in cell)
    total = sum(output_size(o) for cell in cells for o in cell)
    assert text <= 512 * KIB and total <= 512 * KIB + 40 * 800  # (two empty streams and a note: < 800 bytes)
    assert all(len(notes(cell)) == 1 for cell in cells[5:])
    assert all(any(o.get("name") == "stderr" for o in cell) for cell in cells)  # stderr never vanishes
    budget = Budget(64 * KIB, 128 * KIB, 512 * KIB)
    budget.start_cell()
    cell: list = []
    for _ in range(20):  # a progress display: clear, then show again
        budget.clear()
        cell[:] = [budget.admit(cell, new_output("display_data", data={"text/plain": "p" * 60 * KIB}))]
    assert cell[0] is not None and "p" * 100 in cell[0].data["text/plain"]


GRADER = textwrap.dedent('''
    import json, resource, sys
    import nbformat
    from course_tools.outputs import BoundedExecute
    nb = nbformat.read(sys.argv[1], as_version=4)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # after the imports: what grading adds
    ep = BoundedExecute(timeout=120, iopub_timeout=int(sys.argv[3]), kernel_limits=sys.argv[4] == "1",
                        max_output_bytes=64 * 1024, max_cell_output_bytes=128 * 1024,
                        max_notebook_output_bytes=256 * 1024)
    error = None
    try:
        ep.preprocess(nb, {"metadata": {"path": "."}})
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
    nbformat.write(nb, sys.argv[2])
    print(json.dumps({"error": error,
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base}))
''')


def execute(tmp_path: Path, cells: list[str], kernel_limits: bool = True, iopub_timeout: int = 10) -> tuple:
    """Run BoundedExecute (caps 64 KiB / 128 KiB / 256 KiB) in a fresh process; return (notebook, error,
    how much the grader process's peak RSS grew while executing, in MB (its imports alone vary from run to
    run by tens of MB), the written notebook's size)."""
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, dest = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    out = subprocess.run([sys.executable, "-c", GRADER, str(src), str(dest), str(iopub_timeout),
                          "1" if kernel_limits else "0"], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return nbformat.read(dest, as_version=4), report["error"], report["maxrss_mb"], dest.stat().st_size


CELLS = [
    "for _ in range(40):\n    print('x' * 1_000_000)",  # 40 MB of prints
    "import sys\nfor _ in range(20):\n    print('e' * 100_000, file=sys.stderr)",  # 2 MB on stderr
    "from IPython.display import display, HTML\ndisplay(HTML('<b>' + 'h' * 300_000 + '</b>'))\nprint('after')",
    "for i in range(3000):\n    display(i)",  # many small outputs
    "raise ValueError('v' * 3_000_000)",  # a 3 MB error message
    "'r' * 2_000_000",  # a 2 MB result
    "print('last cell ran')\nfrom helpers.checks import answer\nanswer('after-the-flood', list(range(200)))",
]
# The same, as a kernel without the kernel-side limits can send it: every message under the grader's
# message limit (1.5 MiB for a 64 KiB per-output cap), so what arrives is over the caps and only the
# grader's budget holds them.
SMALL_MESSAGES = [
    "for _ in range(40):\n    print('x' * 100_000, flush=True)",
    "import sys\nfor _ in range(20):\n    print('e' * 100_000, file=sys.stderr, flush=True)",
    CELLS[2],
    CELLS[3],
    "raise ValueError('v' * 300_000)",
    "'r' * 1_000_000",
    CELLS[6],
]


@pytest.mark.slow
@pytest.mark.parametrize("kernel_limits", [True, False], ids=["kernel-limits", "grader-only"])
def test_a_real_kernel_stays_under_the_caps(tmp_path, kernel_limits):
    """Prints, stderr, big and many displays, a huge error and a huge result: the notebook keeps at most the
    caps (with notes), every cell runs, and grading still sees each cell's error and stderr output."""
    nb, error, maxrss, size = execute(tmp_path, CELLS if kernel_limits else SMALL_MESSAGES, kernel_limits)
    assert error is None
    outputs = [o for c in nb.cells for o in c.outputs if ANSWER_MIME not in o.get("data", {})]  # (own budget)
    text = sum(len(o.get("text", "")) + len(json.dumps(o.get("data", {}))) for o in outputs)
    assert text <= 256 * KIB and sum(output_size(o) for o in outputs) <= 256 * KIB + MIN_ERROR + 7 * 500
    assert size < 320 * KIB, size
    for cell in nb.cells:
        assert sum(output_size(o) for o in cell.outputs if o in outputs) <= 128 * KIB + MIN_ERROR + 500
    assert any(o.get("name") == "stderr" for o in nb.cells[1].outputs)
    assert any(o.output_type == "error" and o.ename == "ValueError" for o in nb.cells[4].outputs)
    said = "\n".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "stdout cut" in said and "stderr cut" in said
    assert "stdout cut: 14 bytes" in said  # the last cell ran; the notebook was full by then
    answers = [o.data[ANSWER_MIME] for o in nb.cells[6].outputs if ANSWER_MIME in o.get("data", {})]
    assert [(a["check"], a["value"]["v"][-1]["v"]) for a in answers] == [("after-the-flood", 199)]  # kept whole
    if kernel_limits:  # the kernel sent only what is kept and said how much it held back
        assert f"stdout cut: {40 * 1_000_001 - 64 * KIB:,} bytes" in said
    assert maxrss < 200, maxrss  # growth while grading (the uncapped recipe holds its 40 MB of prints several times over)


@pytest.mark.slow
def test_a_message_over_the_limit_is_refused_unread(tmp_path):
    """A kernel that bypasses the kernel-side limits and sends one 100 MB message: ZeroMQ refuses it before
    it is read (the grader's memory stays low), and the notebook fails, saying why."""
    sneaky = ("from IPython import get_ipython\nk = get_ipython().kernel\n"
              "type(k.session).send(k.session, k.iopub_socket, 'stream', {'name': 'stdout', 'text': 'x' * 100_000_000},"
              " parent=k.get_parent('shell'))\nNone")
    nb, error, maxrss, _ = execute(tmp_path, ["print('before')", sneaky, "print('after')"], iopub_timeout=5)
    assert error is not None and "larger than" in error and "refused it unread" in error, error
    assert maxrss < 150, maxrss  # holding the message would add > 300 MB (bytes, text and JSON)


WRAPPER = ("import json, resource, subprocess, sys\n"
           "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
           "print(json.dumps({'rc': p.returncode, 'stdout': p.stdout, 'stderr': p.stderr[-3000:],"
           " 'maxrss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")


@pytest.mark.slow
def test_600_mb_of_prints_grade_like_the_reference(tmp_path):
    """The issue's recipe in an otherwise correct submission: the reference's score, an autograded notebook
    under the per-notebook cap that says how much was cut, every grading process (course grade, nbgrader,
    the kernel) under 1 GB at its peak, and feedback made quickly."""
    root = build(tmp_path / "course")
    tc.submit(root, "alice", tc.FULL)
    flood = {"one": {**tc.FULL["one"], "double": FLOOD + tc.FULL["one"]["double"]}, "two": tc.FULL["two"]}
    tc.submit(root, "flood", flood)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-m", "course_tools.cli", "grade", A,
                          "--workers", "1", "--sandbox", "off", "--no-prepare"], cwd=root, env=course_env(root),
                         capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0, report["stdout"] + report["stderr"]
    got = scores(root)
    assert got["flood"] == got["alice"] == 9
    cap = parse_size(course_config(root).grade_max_notebook_output)
    for path in sorted((root / "autograded" / "flood" / A).glob("*.ipynb")):
        assert path.stat().st_size < cap, path
    nb = nbformat.read(root / "autograded" / "flood" / A / "one.ipynb", as_version=4)
    said = [o.data["text/plain"] for c in nb.cells for o in c.get("outputs", []) if "data" in o]
    assert any(f"stdout cut: {120 * 5_000_001 - 512 * KIB:,} bytes (571.7 MiB) not kept" in s for s in said), said
    assert report["maxrss_mb"] < 1024, report["maxrss_mb"]
    print(f"\ngraded 2 submissions in {seconds:.1f} s; peak RSS of any grading process {report['maxrss_mb']:.0f} MB;"
          f" autograded one.ipynb {(root / 'autograded' / 'flood' / A / 'one.ipynb').stat().st_size:,} bytes")
    start = time.perf_counter()
    fb = run(root, "nbgrader", "generate_feedback", A, "--student", "flood", "--force")
    seconds = time.perf_counter() - start
    assert fb.returncode == 0, fb.stderr[-3000:]
    page = root / "feedback" / "flood" / A / "one.html"
    assert page.stat().st_size < 2 * cap and seconds < 60, (page.stat().st_size, seconds)
    print(f"feedback for it in {seconds:.1f} s, page {page.stat().st_size:,} bytes")
