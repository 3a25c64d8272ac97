"""The grading preprocessors in memory, on hand-made cells: no gradebook, no kernel, no nbgrader run.

``EnforceSourceCells`` is fed the cells the gradebook knows (``Expected``) directly, so every way a
submission can lose, duplicate, retype, rename or lie about its cells is checked cell by cell and
event by event in milliseconds. tests/test_hostile.py grades the same cases end to end with nbgrader.
"""

from __future__ import annotations

import copy

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from course_tools import preprocessors as pp
from course_tools.preprocessors import MOVED_NOTE, EnforceSourceCells, Expected, HideHiddenTests, StripActiveContent

STUB = "def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
ANSWER = "def double(x):\n    return 2 * x"
TEST = "assert double(2) == 4\n### BEGIN HIDDEN TESTS\nassert double(21) == 42\n### END HIDDEN TESTS"
VISIBLE = "assert double(2) == 4"
INTRO = "# One\nWrite `double`."
PLAIN = "A plain explanation between the exercises."
WHY_STUB = "YOUR ANSWER HERE"


def meta(gid: str, *, grade=False, solution=False, locked=False, points=None) -> dict:
    """Return complete nbgrader metadata (what the gradebook makes authoritative)."""
    found = {"schema_version": 3, "grade_id": gid, "grade": grade, "solution": solution, "locked": locked}
    if points is not None:
        found["points"] = float(points)
    return found


# The gradebook's view of notebook "one", in source order: (name, type, gradebook source, metadata, tags, id).
CELLS = [
    ("intro", "markdown", INTRO, meta("intro", locked=True), ["keep-me"], "id-intro"),
    ("double", "code", STUB, meta("double", solution=True), [], "id-double"),
    ("test_double", "code", TEST, meta("test_double", grade=True, locked=True, points=2), [], "id-test"),
    ("why", "markdown", WHY_STUB, meta("why", grade=True, solution=True, points=1), [], "id-why"),
]


def expected() -> list[Expected]:
    """Return fresh Expected cells of notebook "one"."""
    return [Expected(name, kind, source, copy.deepcopy(m), list(tags), cid) for name, kind, source, m, tags, cid in CELLS]


def released() -> list:
    """Return the student's copy of notebook "one": a plain cell first, each graded cell with its release id."""
    plain = new_markdown_cell(PLAIN)
    plain["id"] = "id-plain"
    cells = [plain]
    for name, kind, source, m, tags, cid in CELLS:
        maker = new_code_cell if kind == "code" else new_markdown_cell
        cell = maker(pp.strip_hidden(source), metadata={"nbgrader": copy.deepcopy(m)})
        if tags:
            cell.metadata["tags"] = list(tags)
        cell["id"] = cid
        cells.append(cell)
    return cells


def answered() -> list:
    """Return a complete honest submission: the release with both answers written."""
    cells = released()
    find(cells, "double").source = ANSWER
    find(cells, "why").source = "Because doubling is linear."
    return cells


def find(cells: list, gid: str):
    """Return the one cell carrying grade id ``gid``."""
    (cell,) = [c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid]
    return cell


def index(cells: list, gid: str) -> int:
    """Return the position of the cell carrying grade id ``gid``."""
    return next(i for i, c in enumerate(cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid)


def strip(cells: list) -> None:
    """Remove every cell's nbgrader metadata (a notebook pasted into a new file)."""
    for cell in cells:
        cell.metadata.pop("nbgrader", None)


class InMemory(EnforceSourceCells):
    """EnforceSourceCells with the gradebook and source/ replaced by the hand-made cells above."""

    def _expected(self, info: dict, coursedir) -> list[Expected]:
        """Return the hand-made expected cells; the release's plain cell is known text."""
        self.plain_sources = {pp._norm(PLAIN)}
        return expected()


def enforce(cells: list) -> tuple[list, list[dict]]:
    """Run EnforceSourceCells on ``cells``; return the resulting cells and the events it recorded."""
    nb = new_notebook(cells=cells)
    pre = InMemory()
    nb, _ = pre.preprocess(nb, {"nbgrader": {"notebook": "one", "assignment": "tiny"}})
    return nb.cells, pre.events


def kinds(events: list[dict]) -> list[str]:
    """Return the kinds of the events, in order."""
    return [e["kind"] for e in events]


def graded_layout(cells: list) -> list[str]:
    """Return the grade ids in order, '-' for ordinary cells and 'note' for the repair note."""
    return ["note" if c.metadata.get("course_grade") == "events" else
            c.metadata.get("nbgrader", {}).get("grade_id", "-") for c in cells]


def assert_authoritative(cells: list) -> None:
    """Every graded cell carries exactly the gradebook's metadata, type, tags and (locked) source."""
    for name, kind, source, m, tags, _ in CELLS:
        cell = find(cells, name)
        assert cell.cell_type == kind and cell.metadata["nbgrader"] == m, (name, cell)
        assert cell.metadata.get("tags", []) == tags, name
        if m["locked"]:
            assert cell.source == source, name


# ------------------------------------------------------------------------------ EnforceSourceCells

def test_honest_submission_gets_its_hidden_tests_back_and_no_event():
    cells, events = enforce(answered())
    assert events == []
    assert graded_layout(cells) == ["-", "intro", "double", "test_double", "why"]
    assert find(cells, "test_double").source == TEST  # the hidden block is back, silently
    assert find(cells, "double").source == ANSWER and find(cells, "why").source == "Because doubling is linear."
    assert_authoritative(cells)


def test_missing_cells_are_put_back_in_place():
    """A deleted test cell comes back between its neighbours; a deleted read-only cell too, as info only."""
    cells = answered()
    del cells[index(cells, "test_double")]
    del cells[index(cells, "intro")]
    cells, events = enforce(cells)
    assert graded_layout(cells) == ["note", "-", "intro", "double", "test_double", "why"]
    assert {e["kind"]: e["level"] for e in events} == {"cell-restored": "info", "test-restored": "warning"}
    assert "test_double" in cells[0].source and "'intro'" not in cells[0].source  # the note shows warnings only
    assert_authoritative(cells)


def test_duplicated_test_keeps_the_cell_with_the_original_source():
    """A test cell copied and emptied: the copy (wherever it is) becomes an ordinary cell."""
    cells = answered()
    copied = copy.deepcopy(find(cells, "test_double"))
    copied.source, copied["id"] = "pass", "id-copy"
    cells.insert(index(cells, "test_double") + 1, copied)  # after the original: position does not decide
    cells, events = enforce(cells)
    assert kinds(events) == ["duplicate-cell"]
    assert graded_layout(cells) == ["note", "-", "intro", "double", "test_double", "-", "why"]
    assert cells[4].source == TEST and cells[5].source == "pass" and "nbgrader" not in cells[5].metadata
    assert_authoritative(cells)


def test_duplicated_answer_keeps_the_last_one():
    """A copied answer cell: the last occurrence is graded (nbgrader's own choice), the other is ordinary."""
    cells = answered()
    first = copy.deepcopy(find(cells, "double"))
    first.source, first["id"] = "def double(x):\n    return 0", "id-first"
    cells.insert(index(cells, "double"), first)
    cells, events = enforce(cells)
    assert kinds(events) == ["duplicate-cell"] and events[0]["cell"] == "double"
    assert find(cells, "double").source == ANSWER
    assert graded_layout(cells) == ["note", "-", "intro", "-", "double", "test_double", "why"]
    assert cells[3].source == "def double(x):\n    return 0"


def test_retyped_manual_answer_is_moved_into_its_cell():
    """The written answer deleted and typed again into a new cell: moved into 'why', flagged for a human."""
    cells = answered()
    del cells[index(cells, "why")]
    cells.append(new_markdown_cell("Because I typed it again."))
    cells, events = enforce(cells)
    assert kinds(events) == ["answer-moved"] and events[0]["level"] == "attention"
    why = find(cells, "why")
    assert why.source == MOVED_NOTE + "Because I typed it again." and why.metadata["nbgrader"]["points"] == 1.0
    assert sum("Because I typed it again." in c.source for c in cells) == 1
    assert graded_layout(cells) == ["note", "-", "intro", "double", "test_double", "why"]


def test_renamed_test_is_recovered_by_its_release_id():
    """A renamed test cell is an unknown id (stripped), then recognised by its release cell id."""
    cells = answered()
    find(cells, "test_double").metadata["nbgrader"]["grade_id"] = "test_double_renamed"
    cells, events = enforce(cells)
    assert kinds(events) == ["unknown-cell", "metadata-recovered"]
    assert events[0]["cell"] == "test_double_renamed" and events[1]["level"] == "warning"
    assert graded_layout(cells) == ["note", "-", "intro", "double", "test_double", "why"]
    assert_authoritative(cells)


def test_extra_cell_claiming_points_is_graded_as_ordinary():
    cells = answered()
    bonus = new_code_cell("print('free points')", metadata={"nbgrader": meta("bonus", grade=True, locked=True,
                                                                             points=100)})
    cells.append(bonus)
    cells, events = enforce(cells)
    assert kinds(events) == ["unknown-cell"] and events[0]["cell"] == "bonus"
    assert "nbgrader" not in cells[-1].metadata and cells[-1].source == "print('free points')"
    assert_authoritative(cells)


def test_metadata_lies_are_reset_and_reported():
    """A test made non-graded, unlocked, worth 100 and emptied; an answer unmarked: all reset from the gradebook."""
    cells = answered()
    test = find(cells, "test_double")
    test.metadata["nbgrader"].update(grade=False, locked=False, points=100)
    test.source = "pass"
    find(cells, "double").metadata["nbgrader"]["solution"] = False
    cells, events = enforce(cells)
    edited = [e["message"] for e in events if e["kind"] == "metadata-edited"]
    assert len(edited) == 2 and "grade, locked, points" in edited[1] and "'double': solution" in edited[0]
    assert "test-edited" in kinds(events)
    assert find(cells, "test_double").source == TEST
    assert_authoritative(cells)


def test_points_written_differently_are_not_an_edit():
    cells = answered()
    find(cells, "test_double").metadata["nbgrader"]["points"] = 2  # int in the file, float in the gradebook
    assert enforce(cells)[1] == []


def test_execution_tags_are_removed_and_source_tags_restored():
    cells = answered()
    for gid in ("double", "test_double"):
        find(cells, gid).metadata["tags"] = ["skip-execution", "raises-exception"]
    find(cells, "intro").metadata["tags"] = ["remove-cell"]
    cells, events = enforce(cells)
    assert kinds(events) == ["tags-removed", "tags-removed"]
    assert "tags" not in find(cells, "test_double").metadata and "tags" not in find(cells, "double").metadata
    assert find(cells, "intro").metadata["tags"] == ["keep-me"]  # the source's own tags, nothing else


def test_changed_cell_type_is_reset():
    """An answer turned into markdown becomes code again (no outputs); a manual answer turned into code, markdown."""
    cells = answered()
    double = find(cells, "double")
    double.cell_type = "markdown"
    for key in ("outputs", "execution_count"):
        double.pop(key)
    why = find(cells, "why")
    why.cell_type, why.outputs, why.execution_count = "code", [], None
    cells, events = enforce(cells)
    assert kinds(events) == ["metadata-edited", "metadata-edited"]
    assert find(cells, "double").cell_type == "code" and find(cells, "double").outputs == []
    assert find(cells, "why").cell_type == "markdown" and "outputs" not in find(cells, "why")
    assert find(cells, "double").source == ANSWER
    nbformat.validate(new_notebook(cells=cells))


def test_pasted_with_release_ids_is_recovered_exactly():
    """No nbgrader metadata at all, cell ids kept (Colab's copy): every cell recovered, a warning only."""
    cells = answered()
    strip(cells)
    cells, events = enforce(cells)
    assert kinds(events) == ["metadata-recovered", "no-metadata"]
    assert [e["level"] for e in events] == ["info", "warning"]
    assert graded_layout(cells) == ["note", "-", "intro", "double", "test_double", "why"]
    assert find(cells, "double").source == ANSWER
    assert_authoritative(cells)


def test_pasted_with_new_ids_is_matched_by_text_and_position():
    """New ids too: locked cells by their text, the code answer by position, the written answer moved."""
    cells = answered()
    strip(cells)
    for k, cell in enumerate(cells):
        cell["id"] = f"pasted-{k}"
    cells, events = enforce(cells)
    assert set(kinds(events)) == {"metadata-recovered", "answer-moved", "no-metadata"}
    assert events[-1]["kind"] == "no-metadata" and events[-1]["level"] == "attention"
    assert find(cells, "double").source == ANSWER and find(cells, "test_double").source == TEST
    assert find(cells, "why").source == MOVED_NOTE + "Because doubling is linear."
    assert graded_layout(cells) == ["note", "-", "intro", "double", "test_double", "why"]


def test_scraps_get_every_graded_cell_back_after_the_code():
    """Only the answer code, in one fresh cell: it is the answer; tests and the rest come back around it."""
    cells, events = enforce([new_code_cell(ANSWER)])
    assert {"test-restored", "answer-restored", "cell-restored", "no-metadata"} <= set(kinds(events))
    assert events[-1]["level"] == "attention"
    assert graded_layout(cells) == ["note", "intro", "double", "test_double", "why"]
    assert find(cells, "double").source == ANSWER and find(cells, "why").source == WHY_STUB
    assert_authoritative(cells)


def test_release_text_and_colab_cells_are_never_taken_for_an_answer():
    """Without metadata, release text or a Colab cell where the answer was is not adopted as the answer."""
    cells = released()
    strip(cells)
    for k, cell in enumerate(cells):
        cell["id"] = f"pasted-{k}"
    boot = new_code_cell("# bootstrap", metadata={"tags": ["colab-bootstrap"]})
    answer = new_code_cell("def double(x):\n    return x + x")
    at = next(i for i, c in enumerate(cells) if c.source == STUB)
    cells[at:at] = [new_code_cell(PLAIN), boot, answer]  # release text, the Colab cell, the real answer
    cells, events = enforce(cells)
    assert find(cells, "double") is answer  # the one candidate left between 'intro' and 'test_double'
    assert "nbgrader" not in boot.metadata and "answer-missing" not in kinds(events)


def test_two_candidates_for_an_answer_are_left_as_ordinary_cells():
    """Two new cells where the answer was: neither is guessed; the answer is reported missing."""
    cells = answered()
    strip(cells)
    for k, cell in enumerate(cells):
        cell["id"] = f"pasted-{k}"
    at = next(i for i, c in enumerate(cells) if c.source == ANSWER)
    cells[at:at + 1] = [new_code_cell("def helper():\n    return 2"), new_code_cell("def double(x):\n    return helper() * x")]
    cells, events = enforce(cells)
    assert "answer-missing" in kinds(events)
    assert not any(c.metadata.get("nbgrader", {}).get("grade_id") == "double" for c in cells)
    assert [e["level"] for e in events if e["kind"] == "no-metadata"] == ["attention"]


def test_events_are_described_for_the_summary_table():
    cells = answered()
    del cells[index(cells, "test_double")]
    find(cells, "double").metadata["tags"] = ["skip-execution"]
    _, events = enforce(cells)
    assert pp.describe(events) == "tags removed; test restored"
    assert not pp.needs_attention(events)
    assert pp.needs_attention([{"level": "attention", "kind": "answer-moved"}])


# ------------------------------------------------------------------------------ StripActiveContent

def test_strip_active_content_on_hand_made_cells():
    script = "<script>window.pwned=1</script>"
    nb = new_notebook(cells=[
        new_markdown_cell("Plain `a < b` and $x<y$."),
        new_markdown_cell("Notes " + script),
        new_raw_cell("<b>raw</b><img src=x onerror=alert(1)>", metadata={"format": "text/html"}),
        new_code_cell("x", outputs=[
            new_output("display_data", data={"application/javascript": "alert(1)", "text/plain": "js"}),
            new_output("display_data", data={"text/html": "<p>fine <b>bold</b></p>"}),
            new_output("display_data", data={"text/html": "<p onclick='x()'>click</p>"}),
            new_output("display_data", data={"image/svg+xml": "<svg onload='x()'/>"}),
            new_output("display_data", data={"text/latex": r"\href{javascript:alert(1)}{x}"}),
        ]),
    ])
    nb.cells[1]["attachments"] = {"a.png": {"image/png": "AAAA"}, "b.svg": {"image/svg+xml": "<svg/>"}}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb, _ = StripActiveContent().preprocess(nb, {})
    plain, notes, raw, code = nb.cells
    assert plain.source == "Plain `a < b` and $x<y$."
    assert notes.source.startswith(pp.INERT_NOTE) and "<script" not in notes.source
    assert list(notes.attachments) == ["a.png"]
    assert raw.source.startswith(pp.INERT_NOTE) and "format" not in raw.metadata
    js, fine, click, svg, latex = code.outputs
    assert js.data == {"text/plain": "js"}
    assert fine.data["text/html"] == "<p>fine <b>bold</b></p>"
    assert click.data["text/html"].startswith(pp.HTML_NOTE) and "<p onclick" not in click.data["text/html"]
    assert svg.data == {"text/plain": "[output removed: it contained script]"}
    assert latex.data == {"text/plain": "[output removed: it contained script]"}
    assert "widgets" not in nb.metadata
    again = copy.deepcopy(nb)
    StripActiveContent().preprocess(again, {})
    assert again == nb  # feedback runs it again on the autograded copy: nothing changes


# --------------------------------------------------------------------------------- HideHiddenTests

def test_hide_hidden_tests_on_hand_made_cells():
    test = new_code_cell("    " + TEST.replace("\n", "\n    "), outputs=[
        new_output("error", ename="AssertionError", evalue="", traceback=[
            "\x1b[0;31mAssertionError\x1b[0m", "----> 3 \x1b[0massert double(21) == 42"]),
        new_output("stream", name="stdout", text="checking: assert double(21) == 42\n"),
        new_output("stream", name="stdout", text="an ordinary line\n"),
    ])
    other = new_code_cell("print(1)", outputs=[new_output("error", ename="ValueError", evalue="v",
                                                          traceback=["ValueError: v"])])
    nb, _ = HideHiddenTests().preprocess(new_notebook(cells=[test, other]), {})
    assert nb.cells[0].source == "    assert double(2) == 4\n    # (hidden tests: not shown)"
    cut, quoted, ordinary = nb.cells[0].outputs
    assert cut.traceback == ["AssertionError: "]
    assert quoted.text == "[output hidden: it quoted a hidden test]\n" and ordinary.text == "an ordinary line\n"
    assert nb.cells[1].outputs[0].traceback == ["ValueError: v"]  # nothing secret: untouched


@pytest.mark.parametrize("source", ["print(1)", "### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS"])
def test_hide_hidden_tests_without_secrets_changes_no_output(source):
    cell = new_code_cell(source, outputs=[new_output("stream", name="stdout", text="1\n")])
    nb, _ = HideHiddenTests().preprocess(new_notebook(cells=[cell]), {})
    assert nb.cells[0].outputs[0].text == "1\n" and "BEGIN HIDDEN" not in nb.cells[0].source
