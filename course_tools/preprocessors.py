"""nbgrader preprocessors that make grading trust nothing a student can set.

Configured in nbgrader_config.py, so they run under `course grade` and under plain `nbgrader autograde` /
`nbgrader generate_feedback` in the course root alike:

- ``EnforceSourceCells`` (autograde, sanitize step, first after ClearOutput): every grade, solution,
  locked and task cell gets its nbgrader metadata from the gradebook and its tags from source/;
  missing cells are put back, cells that lost their metadata (a notebook pasted into a new file, a
  retyped answer) are recovered by release cell id, by source text or by position, duplicated and
  unknown grade ids lose their metadata instead of failing the submission. What happened is written
  per student to ``autograded/.course-grade/<assignment>/<student>.events.json``.
- ``StripActiveContent`` (autograde after grading, and feedback): no script from a submission
  reaches formgrader or feedback (script/iframe/event-handler HTML, javascript: links, JS outputs).
- ``HideHiddenTests`` (feedback): hidden test blocks become a placeholder and tracebacks that
  quote them are cut to the error line.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.preprocessors import Preprocessor
from nbformat.notebooknode import NotebookNode
from traitlets import Bool, List, Unicode

STATE_DIR = ".course-grade"  # the same folder course_tools.grade keeps its results in
EXECUTION_TAGS = ("skip-execution", "raises-exception")
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
LEVELS = ("info", "warning", "attention")
MOVED_NOTE = ("**[course grade] This answer was found in a cell without nbgrader metadata and moved here "
              "for grading.**\n\n")


# ------------------------------------------------------------------------------------------ events

def events_path(root: Path | str, assignment: str, student: str) -> Path:
    """Return the file that holds one student's grading events for one assignment."""
    return Path(root) / "autograded" / STATE_DIR / assignment / f"{student}.events.json"


def read_events(root: Path | str, assignment: str, student: str) -> list[dict]:
    """Return every recorded event of a submission (all notebooks), oldest notebook first."""
    path = events_path(root, assignment, student)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [ev for nb in sorted(data) for ev in data[nb]]


def _write_events(root: Path, assignment: str, student: str, notebook: str, events: list[dict]) -> None:
    """Replace the events of one notebook in the student's events file."""
    path = events_path(root, assignment, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[notebook] = events
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def missing_notebooks(root: Path | str, assignment: str, student: str) -> list[dict]:
    """Return a 'notebook-missing' event for each source notebook absent from a student's submission."""
    root = Path(root)
    folder = root / "submitted" / student / assignment
    if not folder.is_dir():
        return []
    return [{"notebook": p.stem, "cell": None, "kind": "notebook-missing", "level": "attention",
             "message": f"{p.name} was not submitted (scored 0)"}
            for p in sorted((root / "source" / assignment).glob("*.ipynb")) if not (folder / p.name).is_file()]


def needs_attention(events: list[dict]) -> bool:
    """Return whether any event asks a human to look at the submission."""
    return any(ev.get("level") == "attention" for ev in events)


def describe(events: list[dict]) -> str:
    """Return a short one-line summary of events, e.g. 'test restored x2; tags removed'."""
    counts: dict[str, int] = {}
    for ev in events:
        if ev.get("level") != "info":
            counts[ev["kind"]] = counts.get(ev["kind"], 0) + 1
    return "; ".join(k.replace("-", " ") + (f" x{n}" if n > 1 else "") for k, n in counts.items())


# ------------------------------------------------------------------------------------------ helpers

def _norm(text: str) -> str:
    """Return source text with line endings and trailing blanks normalized, for comparisons."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").strip().split("\n"))


def strip_hidden(source: str) -> str:
    """Return ``source`` without its hidden-test block(s), as nbgrader's release has it."""
    out, hidden = [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            hidden = True
        elif END_HIDDEN in line:
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out)


def hidden_lines(source: str) -> list[str]:
    """Return the lines inside the hidden-test block(s) of ``source`` (markers excluded)."""
    lines, hidden = [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            hidden = True
        elif END_HIDDEN in line:
            hidden = False
        elif hidden:
            lines.append(line)
    return lines


def _nbg(cell: NotebookNode) -> dict:
    """Return a cell's nbgrader metadata dict ({} when absent or malformed)."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def _strip_nbgrader(cell: NotebookNode) -> None:
    """Remove nbgrader metadata from a cell, making it an ordinary cell."""
    cell.metadata.pop("nbgrader", None)


def _read(path: Path) -> NotebookNode | None:
    """Read a notebook, or return None if it is absent or unreadable."""
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - a missing reference only weakens recovery
        return None


class _Enabled(Preprocessor):
    """A preprocessor that runs when listed (nbconvert's default is disabled)."""

    enabled = Bool(True, help="Whether to run this preprocessor").tag(config=True)


class Expected:
    """One cell the gradebook knows: its authoritative metadata, source, tags and release id."""

    def __init__(self, name: str, cell_type: str, source: str, meta: dict, tags: list[str], cell_id: str | None):
        """Store the fields (meta is the complete nbgrader metadata the cell must carry)."""
        self.name, self.cell_type, self.source, self.meta = name, cell_type, source, meta
        self.tags, self.cell_id = tags, cell_id
        self.release_source = strip_hidden(source)

    @property
    def role(self) -> str:
        """Return 'test', 'manual', 'answer', 'task' or 'readonly'."""
        m = self.meta
        if m.get("task"):
            return "task"
        if m["grade"] and m["solution"]:
            return "manual"
        if m["grade"]:
            return "test"
        return "answer" if m["solution"] else "readonly"

    def new_cell(self, source: str | None = None) -> NotebookNode:
        """Return a fresh cell carrying this cell's metadata and (by default) its gradebook source."""
        maker = nbformat.v4.new_code_cell if self.cell_type == "code" else nbformat.v4.new_markdown_cell
        cell = maker(self.source if source is None else source)
        cell.metadata["nbgrader"] = copy.deepcopy(self.meta)
        if self.tags:
            cell.metadata["tags"] = list(self.tags)
        return cell


# ---------------------------------------------------------------------------- autograde: sanitize

class EnforceSourceCells(_Enabled):
    """Make every graded/locked cell's metadata and tags authoritative and recover lost cells (see module doc)."""

    execution_tags = List(list(EXECUTION_TAGS), help="Tags that change how a cell executes.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Rewrite ``nb`` against the gradebook and source/, and record what was done."""
        from nbgrader.coursedir import CourseDirectory

        info = resources["nbgrader"]
        coursedir = CourseDirectory(config=self.config)
        root = Path(coursedir.root)
        self.events: list[dict] = []
        self.notebook = info["notebook"]
        expected = self._expected(info, coursedir)
        nb.cells = self._rewrite(nb.cells, expected, coursedir, info["assignment"])
        student = info.get("student")
        if student:
            _write_events(root, info["assignment"], student, self.notebook, self.events)
        shown = [ev for ev in self.events if ev["level"] != "info"]
        for ev in shown:
            self.log.warning("%s: %s", ev["kind"], ev["message"])
        if shown:
            # The grader (formgrader) and the student (feedback) see what was repaired, at the top.
            note = nbformat.v4.new_markdown_cell(
                "**[course grade] This notebook was repaired before grading:**\n\n" +
                "\n".join(f"- {html.escape(ev['message'], quote=False)}" for ev in shown))
            note.metadata["course_grade"] = "events"
            nb.cells.insert(0, note)
        return nb, resources

    def _event(self, kind: str, level: str, message: str, cell: str | None = None) -> None:
        """Record one event of this notebook."""
        self.events.append({"notebook": self.notebook, "cell": cell, "kind": kind, "level": level,
                            "message": message})

    def _expected(self, info: dict, coursedir) -> list[Expected]:
        """Return the gradebook's cells of this notebook in source order, with tags and release ids."""
        from nbgrader.api import Gradebook

        assignment, notebook = info["assignment"], info["notebook"]
        with Gradebook(info["db_url"]) as gb:
            nb = gb.find_notebook(notebook, assignment)
            grades = {c.name: c.max_score for c in nb.grade_cells}
            tasks = {c.name: c.max_score for c in nb.task_cells}
            solutions = {c.name for c in nb.solution_cells}
            sources = [(c.name, c.cell_type, c.locked, c.source, c.checksum) for c in nb.source_cells]
            task_cells = [(c.name, c.cell_type, c.source) for c in nb.task_cells]
        src_nb = _read(Path(coursedir.format_path(coursedir.source_directory, ".", assignment)) / f"{notebook}.ipynb")
        rel_nb = _read(Path(coursedir.format_path(coursedir.release_directory, ".", assignment)) / f"{notebook}.ipynb")
        order, tags, ids = {}, {}, {}
        for i, cell in enumerate(src_nb.cells if src_nb else []):
            gid = _nbg(cell).get("grade_id")
            if gid:
                order[gid], tags[gid], ids[gid] = i, list(cell.metadata.get("tags", [])), cell.get("id")
        for cell in rel_nb.cells if rel_nb else []:
            gid = _nbg(cell).get("grade_id")
            if gid and cell.get("id"):
                ids[gid] = cell.get("id")
        known = {s[0] for s in sources}
        sources += [(name, ctype, True, text, None) for name, ctype, text in task_cells if name not in known]
        out = []
        for name, ctype, locked, text, checksum in sources:
            meta = {"schema_version": 3, "grade_id": name, "grade": name in grades, "solution": name in solutions,
                    "locked": bool(locked)}
            if name in grades:
                meta["points"] = float(grades[name])
            if name in tasks:
                meta.update(task=True, points=float(tasks[name]), grade=False)
            if checksum:
                meta["checksum"] = checksum
            out.append(Expected(name, ctype, text, meta, tags.get(name, []), ids.get(name)))
        out.sort(key=lambda e: order.get(e.name, len(order)))
        self.plain_sources = {_norm(c.source) for c in (rel_nb.cells if rel_nb else []) if not _nbg(c).get("grade_id")}
        return out

    def _rewrite(self, cells: list, expected: list[Expected], coursedir, assignment: str) -> list:
        """Return the cells with identities resolved, metadata enforced and missing cells put back."""
        by_name = {e.name: e for e in expected}
        had_metadata = any(_nbg(c).get("grade_id") in by_name for c in cells)
        claimed: dict[str, NotebookNode] = {}
        # 1. Cells that name a known grade_id; duplicates and unknown ids become ordinary cells.
        occurrences: dict[str, list[NotebookNode]] = {}
        for cell in cells:
            meta = _nbg(cell)
            if "nbgrader" not in cell.get("metadata", {}):
                continue
            gid = meta.get("grade_id")
            if gid in by_name:
                occurrences.setdefault(gid, []).append(cell)
            else:
                flagged = meta.get("grade") or meta.get("solution") or meta.get("locked") or meta.get("task")
                if flagged or gid:
                    self._event("unknown-cell", "warning",
                                f"cell with unknown grade id {gid!r} graded as an ordinary cell", gid)
                _strip_nbgrader(cell)
        for gid, found in occurrences.items():
            exp = by_name[gid]
            if len(found) == 1:
                keep = found[0]
            elif exp.meta["locked"]:
                same = [c for c in found if _norm(c.source) in (_norm(exp.release_source), _norm(exp.source))]
                keep = (same or found)[0]
            else:
                keep = found[-1]  # nbgrader's own choice for a duplicated answer: the last one
            for cell in found:
                if cell is not keep:
                    _strip_nbgrader(cell)
            if len(found) > 1:
                self._event("duplicate-cell", "warning",
                            f"grade id {gid!r} appeared {len(found)} times; one kept, the others graded as "
                            "ordinary cells", gid)
            claimed[gid] = keep
        # 2. Cells that lost their metadata: recovered by release cell id, then locked ones by source text.
        free = [c for c in cells if "nbgrader" not in c.get("metadata", {})]
        recovered = 0
        for exp in expected:
            if exp.name in claimed or not exp.cell_id:
                continue
            for cell in free:
                if cell.get("id") == exp.cell_id and not any(cell is c for c in claimed.values()):
                    claimed[exp.name] = cell
                    recovered += 1
                    break
        for exp in expected:
            if exp.name in claimed or not exp.meta["locked"]:
                continue
            for cell in free:
                if (cell.cell_type == exp.cell_type and _norm(cell.source) in (_norm(exp.release_source), _norm(exp.source))
                        and not any(cell is c for c in claimed.values())):
                    claimed[exp.name] = cell
                    recovered += 1
                    break
        # 3. Answer cells still missing: the new cell(s) in their place, between the neighbouring matched cells.
        moved_any = self._claim_by_position(cells, expected, claimed)
        if recovered:
            self._event("metadata-recovered", "warning" if had_metadata else "info",
                        f"{recovered} cell(s) without nbgrader metadata matched to the release by id or text")
        # 4. Enforce metadata, tags and locked sources on every claimed cell.
        for exp in expected:
            if exp.name in claimed:
                self._enforce(claimed[exp.name], exp)
        # 5. Put back what is still missing, each just before the next matched cell (after the student's code).
        cells, restored = self._restore_missing(cells, expected, claimed)
        if not had_metadata:
            complete = not restored and not moved_any
            self._event("no-metadata", "warning" if complete else "attention",
                        "notebook had no nbgrader metadata: " +
                        ("every graded cell recovered from the release" if complete else
                         "recovered where possible; check this submission by hand"))
        return cells

    def _claim_by_position(self, cells: list, expected: list[Expected], claimed: dict) -> bool:
        """Adopt new cells as missing answer cells by position; return whether a manual answer was moved."""
        position = {id(c): i for i, c in enumerate(cells)}
        moved = False
        taken = {id(c) for c in claimed.values()}
        for k, exp in enumerate(expected):
            if exp.role not in ("answer", "manual"):
                continue
            stub = claimed.get(exp.name)
            if stub is not None and (exp.role == "answer" or _norm(stub.source) != _norm(exp.source)):
                continue  # present and answered in place
            prev = max((position[id(claimed[e.name])] for e in expected[:k] if e.name in claimed), default=-1)
            if stub is not None:
                prev = min(prev, position[id(stub)])
            nxt = min((position[id(claimed[e.name])] for e in expected[k + 1:] if e.name in claimed),
                      default=len(cells))
            candidates = [c for c in cells[prev + 1:nxt] if id(c) not in taken and "nbgrader" not in c.metadata
                          and c.cell_type == exp.cell_type and c.source.strip()
                          and _norm(c.source) not in self.plain_sources and _norm(c.source) != _norm(exp.source)
                          and "colab-bootstrap" not in c.metadata.get("tags", [])
                          and "colab-badge" not in c.metadata.get("tags", [])]
            if exp.role == "answer":
                if len(candidates) == 1:
                    claimed[exp.name] = candidates[0]
                    taken.add(id(candidates[0]))
                    self._event("metadata-recovered", "info", f"answer cell {exp.name!r} recognized by position",
                                exp.name)
                else:
                    self._event("answer-missing", "warning",
                                f"answer cell {exp.name!r} not found; any code in its place ran as ordinary cells",
                                exp.name)
                continue
            if candidates:
                text = "\n\n".join(c.source for c in candidates)
                cell = exp.new_cell(MOVED_NOTE + text if exp.cell_type == "markdown" else
                                    "# " + MOVED_NOTE.strip().replace("*", "") + "\n" + text)
                if stub is not None:
                    cells[:] = [c for c in cells if c is not stub]
                first = candidates[0]
                index = next(i for i, c in enumerate(cells) if c is first)
                cells[index] = cell
                for extra in candidates[1:]:
                    cells[:] = [c for c in cells if c is not extra]
                position = {id(c): i for i, c in enumerate(cells)}
                claimed[exp.name] = cell
                taken.add(id(cell))
                moved = True
                self._event("answer-moved", "attention",
                            f"manually graded answer {exp.name!r} found in {len(candidates)} new cell(s) and moved "
                            "into its cell", exp.name)
        return moved

    def _enforce(self, cell: NotebookNode, exp: Expected) -> None:
        """Give ``cell`` the gradebook's metadata, type, tags and (if locked) source; record real changes."""
        old = _nbg(cell)
        changed = [k for k in ("grade", "solution", "locked", "task", "points")
                   if k in old and k in exp.meta and old.get(k) != exp.meta.get(k)
                   and not (k == "points" and _same_number(old.get(k), exp.meta.get(k)))]
        changed += [k for k in ("grade", "solution", "locked", "task") if k not in old and exp.meta.get(k)] if old else []
        if changed:
            self._event("metadata-edited", "warning",
                        f"{exp.name!r}: {', '.join(sorted(set(changed)))} edited in the submission; reset", exp.name)
        if cell.cell_type != exp.cell_type:
            self._event("metadata-edited", "warning", f"{exp.name!r}: cell type changed; reset", exp.name)
            if exp.cell_type == "code":
                cell.cell_type, cell.outputs, cell.execution_count = "code", [], None
            else:
                cell.cell_type = "markdown"
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
        cell.metadata["nbgrader"] = copy.deepcopy(exp.meta)
        tags = list(cell.metadata.get("tags", []))
        if tags != exp.tags:
            bad = [t for t in tags if t in self.execution_tags and t not in exp.tags]
            if bad:
                self._event("tags-removed", "warning", f"{exp.name!r}: tag(s) {', '.join(bad)} removed", exp.name)
            if exp.tags:
                cell.metadata["tags"] = list(exp.tags)
            else:
                cell.metadata.pop("tags", None)
        if exp.meta["locked"] and cell.source != exp.source:
            if _norm(cell.source) != _norm(exp.release_source):
                kind = "test-edited" if exp.role == "test" else "locked-cell-edited"
                self._event(kind, "warning", f"{exp.name!r} was edited; the original was restored", exp.name)
            cell.source = exp.source  # also puts the hidden tests back (silently: that is the normal case)

    def _restore_missing(self, cells: list, expected: list[Expected], claimed: dict) -> tuple[list, int]:
        """Insert a fresh copy of each unclaimed graded/locked cell; return the cells and how many were added."""
        restored = 0
        for k, exp in enumerate(expected):
            if exp.name in claimed or exp.role == "answer":
                continue
            cell = exp.new_cell()
            later = [claimed[e.name] for e in expected[k + 1:] if e.name in claimed]
            index = next((i for i, c in enumerate(cells) if later and c is later[0]), len(cells))
            cells.insert(index, cell)
            claimed[exp.name] = cell
            restored += 1
            kind = {"test": "test-restored", "manual": "answer-restored", "task": "task-restored"}.get(
                exp.role, "cell-restored")
            self._event(kind, "info" if exp.role == "readonly" else "warning",
                        f"{exp.name!r} was missing from the submission and was put back", exp.name)
        return cells, restored


def _same_number(a: Any, b: Any) -> bool:
    """Return whether two points values are the same number."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


# ------------------------------------------------------------------------------ active content

SAFE_TAGS = ["a", "abbr", "b", "blockquote", "br", "code", "del", "details", "div", "dl", "dd", "dt", "em",
             "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s",
             "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
             "thead", "tr", "tt", "u", "ul", "var", "center", "font", "caption", "colgroup", "col"]
SAFE_ATTRS = {"*": ["class", "title", "align", "style"], "a": ["href", "title", "name"],
              "img": ["src", "alt", "title", "width", "height"], "td": ["colspan", "rowspan"],
              "th": ["colspan", "rowspan"], "font": ["color"], "details": ["open"]}
SAFE_PROTOCOLS = ["http", "https", "mailto", "attachment"]
ACTIVE = re.compile(r"<\s*/?\s*(script|iframe|frame|object|embed|applet|link|meta|base|form|svg|math|template)"
                    r"\b|\bon[a-z]+\s*=|javascript\s*:|vbscript\s*:|data\s*:\s*text/html|srcdoc", re.IGNORECASE)
ANY_TAG = re.compile(r"<\s*/?[A-Za-z][A-Za-z0-9-]*(?=[\s/>])|<!--")
BAD_URL = re.compile(r"(javascript|vbscript|livescript):|data:text/html", re.IGNORECASE)
INERT_NOTE = "**[course grade] Script or active HTML found here: shown as plain text.**\n\n"
HTML_NOTE = "<p><b>[course grade] Script or active HTML found in this output: shown as plain text.</b></p>"
DROP_MIMES = ("application/javascript", "text/javascript", "application/x-javascript",
              "application/vnd.jupyter.widget-state+json")
# Dropped without calling it active: a widget view has no widget manager to render it in formgrader or
# feedback (the notebook's widget state is dropped), so its text/plain form is shown instead.
QUIET_DROP_MIMES = ("application/vnd.jupyter.widget-view+json",)
# Output metadata that nbconvert's templates print (nbconvert/templates/{classic,lab}/base.html.j2 read
# them per MIME type, falling back to the top level: `width={{ width | escape_html }}` is unquoted, so
# "1 onload=..." becomes an attribute). Each is validated; every other key (filenames, isolated, ...)
# is dropped.
DIMENSION = re.compile(r"^\d{1,5}$")
MAX_DIMENSION = 100_000


def _dimension(value: Any) -> int | float | None:
    """Return a width/height as a plain positive number, or None when it is anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and 0 <= value <= MAX_DIMENSION and value == value:
        return value
    if isinstance(value, str) and DIMENSION.match(value.strip()) and int(value) <= MAX_DIMENSION:
        return int(value)
    return None


META_RULES = {
    "width": _dimension,
    "height": _dimension,
    "unconfined": lambda v: v if isinstance(v, bool) else None,
    "alt": lambda v: v[:1000] if isinstance(v, str) else None,  # printed quoted and escaped
    "needs_background": lambda v: v if v in ("light", "dark") else None,
}


def _clean_meta_level(meta: dict) -> tuple[dict, bool]:
    """Return (the validated template keys of one metadata level, whether a printed key was invalid)."""
    kept, bad = {}, False
    for key, rule in META_RULES.items():
        if key in meta:
            value = rule(meta[key])
            if value is None:
                bad = True
            else:
                kept[key] = value
    return kept, bad


def clean_output_metadata(output: NotebookNode) -> bool:
    """Reduce an output's metadata to validated width/height/alt/unconfined/needs_background, per MIME type
    and at the top level; drop everything else. Return whether a printed value was invalid (an attack)."""
    meta = output.get("metadata")
    if meta is None:
        return False
    if not isinstance(meta, dict):
        output["metadata"] = {}
        return True
    clean, bad = _clean_meta_level(meta)
    for mime, value in meta.items():
        if "/" in mime and isinstance(value, dict):
            kept, found = _clean_meta_level(value)
            bad = bad or found
            if kept:
                clean[mime] = kept
    output["metadata"] = nbformat.from_dict(clean)
    return bad


def _bleach(text: str) -> str:
    """Return ``text`` with every tag, attribute and URL outside the safe lists escaped or dropped."""
    import bleach
    from bleach.css_sanitizer import CSSSanitizer

    text = re.sub(r"<style\b.*?</style\s*>", "", text, flags=re.IGNORECASE | re.DOTALL)
    css = CSSSanitizer(allowed_css_properties=["color", "background-color", "text-align", "font-weight",
                                               "font-style", "text-decoration", "width", "height"])
    return bleach.clean(text, tags=SAFE_TAGS, attributes=SAFE_ATTRS, protocols=SAFE_PROTOCOLS, strip=False,
                        strip_comments=True, css_sanitizer=css)


def clean_markup(text: str, note: str = "") -> tuple[str, bool]:
    """Return (safe text, whether something active was found) for markdown or HTML from a submission.

    Active content (a script, an event handler, a javascript: URL in any spelling, ...) turns the whole
    text into an escaped <pre> block: the grader reads exactly what was written, and nothing of it can
    become a tag or a link. Other HTML is cleaned by an allow-list; text without any tag is left as is
    (cleaning would mangle `<` in code spans and maths).
    """
    note = note or INERT_NOTE
    if re.fullmatch(re.escape(note) + r"<pre>[^<>]*</pre>\n", text):
        return text, False  # already made inert (feedback runs this again on the autograded copy)
    plain = html.unescape(text)
    squeezed = re.sub(r"[\x00-\x20]", "", plain)  # browsers ignore tabs/newlines inside a URL scheme
    if ACTIVE.search(plain) or BAD_URL.search(squeezed):
        return note + "<pre>" + html.escape(text) + "</pre>\n", True
    if ANY_TAG.search(text):
        return _bleach(text), False
    return text, False


def _mime_text(value: Any) -> str:
    """Return an output's MIME value as text (a list of lines joined; anything else as JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return json.dumps(value)


def clean_output(output: NotebookNode) -> bool:
    """Make one output inert in place; return whether it carried active content."""
    active = clean_output_metadata(output)
    data = output.get("data")
    if not isinstance(data, dict):
        return active
    quiet = False
    for mime in list(data):
        if mime in QUIET_DROP_MIMES:
            data.pop(mime)
            quiet = True
        elif mime in DROP_MIMES:
            data.pop(mime)
            active = True
        elif mime == "text/html" or mime == "text/markdown":
            safe, found = clean_markup(_mime_text(data[mime]), "" if mime == "text/markdown" else HTML_NOTE)
            data[mime] = safe
            active = active or found
        elif mime == "text/latex":  # MathJax turns \href{javascript:...} into a link
            if BAD_URL.search(re.sub(r"[\x00-\x20]", "", html.unescape(_mime_text(data[mime])))):
                data.pop(mime)
                active = True
        elif mime == "image/svg+xml":
            value = _mime_text(data[mime])
            if ACTIVE.search(value) or re.search(r"href|foreignObject", value, re.IGNORECASE):
                data.pop(mime)
                active = True
    if not data:
        data["text/plain"] = ("[output removed: it contained script]" if active or not quiet
                              else "[widget: not shown outside JupyterLab]")
    return active


# Cell metadata the templates read besides nbgrader's: highlight_code(metadata=...) takes magics_language
# as a lexer name, raw cells print their source for raw_mimetype/format text/html, nbconvert's
# transient.remove_source hides a cell, tags become class names, alt an attribute (quoted, escaped).
CELL_META_DROP = ("magics_language", "transient", "raw_mimetype", "format")
ATTACHMENT_MIMES = ("image/png", "image/jpeg", "image/gif")
BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")
# A 1x1 transparent PNG: what a markdown image shows when its attachment was removed or never existed
# (nbconvert fails the whole page on a missing attachment).
PLACEHOLDER_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")


def clean_cell_metadata(cell: NotebookNode) -> bool:
    """Drop or validate the cell metadata that templates read; return whether a tag or alt was not text."""
    meta = cell.get("metadata")
    if not isinstance(meta, dict):
        cell["metadata"] = nbformat.from_dict({})
        return True
    for key in CELL_META_DROP:
        meta.pop(key, None)
    bad = False
    if "tags" in meta:
        tags = meta["tags"] if isinstance(meta["tags"], list) else []
        kept = [t for t in tags if isinstance(t, str) and len(t) <= 200]
        bad = len(kept) != len(tags) or not isinstance(meta["tags"], list)
        meta["tags"] = kept
    if "alt" in meta and not isinstance(meta["alt"], str):
        meta.pop("alt")
        bad = True
    return bad


def clean_notebook_metadata(nb: NotebookNode) -> None:
    """Keep the notebook-level metadata templates read as plain text (a lexer name, a title)."""
    info = nb.metadata.get("language_info")
    if info is not None and (not isinstance(info, dict) or
                             not all(isinstance(info.get(k, ""), str) for k in ("name", "pygments_lexer"))):
        nb.metadata["language_info"] = nbformat.from_dict({"name": "python"})
    if "title" in nb.metadata and not isinstance(nb.metadata["title"], str):
        nb.metadata.pop("title")


class _Recorder(dict):
    """An attachments mapping that answers every name and remembers which were asked for."""

    def __init__(self) -> None:
        """Start with no name asked for."""
        super().__init__()
        self.asked: list[str] = []

    def __contains__(self, name: object) -> bool:
        """Every name is there (nbconvert then asks for it)."""
        return True

    def __getitem__(self, name: str) -> dict:
        """Record the name; return a placeholder image."""
        self.asked.append(name)
        return {"image/png": PLACEHOLDER_PNG}


def attachment_names(source: str) -> list[str]:
    """Return the attachment names a markdown text refers to, as nbconvert's renderer looks them up."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    recorder = _Recorder()
    MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=recorder)).render(source)
    return recorder.asked


def clean_attachments(cell: NotebookNode) -> bool:
    """Keep only base64 PNG/JPEG/GIF attachments; give every name the markdown uses an image (a placeholder for
    a removed or missing one, so rendering cannot fail). Return whether an attachment was removed."""
    atts = cell.get("attachments")
    removed = False
    if atts is not None and not isinstance(atts, dict):
        cell.pop("attachments")
        atts, removed = None, True
    for name, att in list((atts or {}).items()):
        ok = isinstance(att, dict) and att and all(
            m in ATTACHMENT_MIMES and isinstance(v, str) and BASE64.match(v) for m, v in att.items())
        if not ok:
            atts.pop(name)
            removed = True
    if "attachment:" in cell.source:
        try:
            names = attachment_names(cell.source)
        except Exception:  # noqa: BLE001 - markdown nbconvert cannot render is shown as text
            cell.source = INERT_NOTE + "<pre>" + html.escape(cell.source) + "</pre>\n"
            names = []
        for name in names:
            cell.setdefault("attachments", nbformat.from_dict({}))
            if name not in cell.attachments:
                cell.attachments[name] = nbformat.from_dict({"image/png": PLACEHOLDER_PNG})
    return removed


class StripActiveContent(_Enabled):
    """Escape scripts, iframes, event handlers and javascript: URLs; drop JavaScript outputs (see module doc)."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Clean every markdown/raw cell and every output, and drop notebook widget state."""
        found = []
        nb.metadata.pop("widgets", None)
        clean_notebook_metadata(nb)
        for cell in nb.cells:
            active = clean_cell_metadata(cell)
            if cell.cell_type in ("markdown", "raw"):
                cell.source, markup = clean_markup(cell.source)
                active = clean_attachments(cell) or markup or active
            for output in cell.get("outputs", []):
                active = clean_output(output) or active
            if active:
                found.append(_nbg(cell).get("grade_id") or f"cell {cell.get('id', '?')}")
        info = resources.get("nbgrader", {})
        if found:
            self.log.warning("active content (script/HTML) removed from %s", ", ".join(found))
            if info.get("student") and self._autograding(resources):
                from nbgrader.coursedir import CourseDirectory

                root = Path(CourseDirectory(config=self.config).root)
                path = events_path(root, info["assignment"], info["student"])
                try:
                    data = json.loads(path.read_text())
                except (OSError, ValueError):
                    data = {}
                evs = [e for e in data.get(info["notebook"], []) if e["kind"] != "script-removed"]
                evs.append({"notebook": info["notebook"], "cell": None, "kind": "script-removed", "level": "warning",
                            "message": "script or active HTML removed from " + ", ".join(found)})
                _write_events(root, info["assignment"], info["student"], info["notebook"], evs)
        return nb, resources

    def _autograding(self, resources: dict) -> bool:
        """Return whether this runs inside autograde (feedback must not rewrite the events)."""
        return os.environ.get("NBGRADER_EXECUTION") == "autograde"


# ---------------------------------------------------------------------------------------- feedback

class HideHiddenTests(_Enabled):
    """Replace each hidden-test block by a placeholder and cut tracebacks that quote hidden lines."""

    placeholder = Unicode("# (hidden tests: not shown)", help="What feedback shows instead of a hidden block"
                          ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Rewrite grade cells' sources and any output that quotes a hidden line."""
        secret = set()
        for cell in nb.cells:
            lines = hidden_lines(cell.source)
            if not lines and BEGIN_HIDDEN not in cell.source:
                continue
            secret.update(ln.strip() for ln in lines if ln.strip())
            out, hidden = [], False
            for line in cell.source.split("\n"):
                if BEGIN_HIDDEN in line:
                    hidden = True
                    out.append(line[: len(line) - len(line.lstrip())] + self.placeholder)
                elif END_HIDDEN in line:
                    hidden = False
                elif not hidden:
                    out.append(line)
            cell.source = "\n".join(out)
        if not secret:
            return nb, resources
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    text = "\n".join(output.get("traceback", []))
                    if any(s in _plain(text) for s in secret):
                        output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
                elif output.get("output_type") == "stream":
                    if any(s in output.get("text", "") for s in secret):
                        output["text"] = "[output hidden: it quoted a hidden test]\n"
        return nb, resources


def _plain(text: str) -> str:
    """Return terminal text without ANSI colour codes."""
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
