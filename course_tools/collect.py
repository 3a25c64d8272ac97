"""Collect an LMS or Colab download (a zip of notebooks) into nbgrader's submitted/ folder, exactly.

A notebook is only ever attributed to the student whose folder or file name it comes from. How the
zip names students is its *layout*, chosen with ``--lms`` or detected (the report says which):

* ``canvas``   Canvas' "Download submissions": flat files ``login_uid_aid_NB.ipynb`` (``login_LATE_uid_aid_...``
  for late ones). The student is ``login`` (or, with a roster, the row whose ``lms_user_id`` is ``uid``).
* ``moodle``   Moodle's "Download all submissions", in folders (``Full Name_12345_assignsubmission_file_/NB.ipynb``)
  or flat (``Full Name_12345_assignsubmission_file_NB.ipynb``). The student is the roster row whose first and
  last name give ``Full Name``; without a roster, the name in lower case with dots (``full.name``).
* ``folders``  a folder per student (``alice/NB.ipynb``, any depth below the student's folder), and files at
  the top level named ``alice_NB.ipynb`` or ``alice-NB.ipynb`` (hand-renamed or Colab downloads).
  A file in one student's folder that names another student (``mallory/bob_NB.ipynb``) is unmatched.
* ``--pattern REGEX``  anything else: a regular expression searched in each member's path, with named groups
  ``student`` and ``notebook``.

``NB`` is one of the assignment's notebook names (``source/<assignment>/NB.ipynb``). Decorations added by
Colab, browsers and LMSs are ignored: ``Copy of `` in front, `` (1)`` or ``-1`` behind. One wrapping folder
around the whole download (``submissions/...``) is ignored; so are ``__MACOSX/``, dot files and files
that are not notebooks (listed as ignored).

Every member ends up in exactly one list of the report: collected; unmatched (no student or notebook
could be read from its name, or the student is not on the roster); rejected, with the reason (an
absolute or ``..`` path, a size over the per-notebook or total cap, a corrupt member, not a JSON
notebook, an invalid or over-long student id); duplicates (several copies of one notebook in one
student's own files: the newest by its date in the zip is kept). Sizes are checked against the zip's
declared size before a member is opened and counted again while it is read, so a zip bomb is refused
without being unpacked. Each notebook is written atomically. Exit code 2 when anything was unmatched
or rejected.

With ``--roster FILE`` (nbgrader's student CSV: ``id`` and optionally ``first_name``, ``last_name``,
``email``, ``lms_user_id``; or one id per line) only roster students are collected, and roster students
without a submission are listed.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

LAYOUTS = ("canvas", "moodle", "folders")
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")
MAX_ID_LENGTH = 128  # nbgrader's gradebook column for student ids
DECORATION_BEFORE = re.compile(r"^(?:Copy of |Copy_of_)+", re.IGNORECASE)
DECORATION_AFTER = re.compile(r"(?:\s*\(\d+\)|-\d+)+$")
CANVAS = re.compile(r"^(?P<login>[^_]+)_(?:LATE_|late_)?(?P<uid>\d+)_(?P<aid>\d+)_(?P<file>.+)$")
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<pid>\d+)_assignsubmission_file_(?P<file>.*)$")
DEFAULT_MAX_NOTEBOOK = 20 * 2**20
DEFAULT_MAX_TOTAL = 2 * 2**30
CHUNK = 2**20


class Refused(Exception):
    """A member that cannot be collected, with the reason as its message."""


@dataclass
class Candidate:
    """One zip member attributed to (student, notebook) by the layout."""

    info: zipfile.ZipInfo
    index: int  # position in the archive (a later member wins a tie of dates)
    student: str
    notebook: str

    @property
    def member(self) -> str:
        """Return the member's name in the zip."""
        return self.info.filename

    def when(self) -> str:
        """Return the member's date in the zip as text."""
        return "%04d-%02d-%02d %02d:%02d:%02d" % self.info.date_time


@dataclass
class Collection:
    """What became of every member of a download."""

    layout: str = ""
    layout_reason: str = ""
    collected: list[Candidate] = field(default_factory=list)
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # (member, reason)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (member, reason)
    duplicates: list[tuple[str, str, str]] = field(default_factory=list)  # (dropped, kept, why)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # roster students without any notebook
    incomplete: dict[str, list[str]] = field(default_factory=dict)  # student -> notebooks not handed in
    notes: list[tuple[str, str]] = field(default_factory=list)  # collected, with a warning
    written: list[Path] = field(default_factory=list)
    bytes_read: int = 0

    def students(self) -> dict[str, list[str]]:
        """Return {student: [notebook, ...]} of what was collected."""
        found: dict[str, list[str]] = {}
        for c in sorted(self.collected, key=lambda c: (c.student, c.notebook)):
            found.setdefault(c.student, []).append(c.notebook)
        return found

    @property
    def problems(self) -> bool:
        """Return whether anything was unmatched or rejected (exit code 2)."""
        return bool(self.unmatched or self.rejected)


# ----------------------------------------------------------------------------------------- inputs

def notebook_names(root: Path, assignment: str) -> list[str]:
    """Return the assignment's notebook names (stems) from source/ (or release/)."""
    for step in ("source", "release"):
        names = sorted(p.stem for p in (root / step / assignment).glob("*.ipynb"))
        if names:
            return names
    raise FileNotFoundError(f"no notebooks in source/{assignment} or release/{assignment}")


def read_roster(path: Path) -> list[dict[str, str]]:
    """Return the roster's rows (``id`` plus any of first_name, last_name, email, lms_user_id)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    rows = list(csv.DictReader(lines))
    if rows and "id" in rows[0]:
        return [{k: (v or "").strip() for k, v in r.items() if k} for r in rows if (r.get("id") or "").strip()]
    ids = [line.split(",")[0].strip() for line in lines if line.strip() and not line.startswith("#")]
    return [{"id": i} for i in ids]


def check_roster(rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[str]]:
    """Return the roster rows whose id is a valid student id, and one line for each row refused.

    Roster ids reach the gradebook (and every export) as they are, so they pass the same check as the
    ids taken from a download.
    """
    kept, refused = [], []
    for number, row in enumerate(rows, start=1):
        bad = check_student_id(row["id"])
        if bad:
            refused.append(f"roster row {number} refused: {bad}")
        else:
            kept.append(row)
    return kept, refused


def human(n: int) -> str:
    """Return a byte count for people (KiB, MiB, GiB)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


# ------------------------------------------------------------------------------------------ names

def clean_stem(stem: str) -> str:
    """Remove Colab/browser/LMS decorations: a leading "Copy of " and trailing " (1)" or "-1"."""
    return DECORATION_AFTER.sub("", DECORATION_BEFORE.sub("", stem.strip())).strip()


def _norm(text: str) -> str:
    """Return ``text`` lower-cased with spaces and hyphens read as underscores (same length)."""
    return text.lower().replace(" ", "_").replace("-", "_")


def identify_notebook(stem: str, notebooks: list[str]) -> str | None:
    """Return which of ``notebooks`` a file stem is (decorations and _/-/space spelling tolerated)."""
    for candidate in dict.fromkeys([stem, clean_stem(stem)]):
        if candidate in notebooks:
            return candidate
        loose = [nb for nb in notebooks if _norm(nb) == _norm(candidate)]
        if len(loose) == 1:
            return loose[0]
    return None


def split_student_notebook(stem: str, notebooks: list[str]) -> tuple[str, str] | None:
    """Split ``<student>_NB`` (or ``-``/space) into (student, notebook); the longest notebook name wins."""
    for candidate in dict.fromkeys([stem, clean_stem(DECORATION_BEFORE.sub("", stem))]):
        low = _norm(candidate)
        fits = [nb for nb in notebooks if len(low) > len(nb) + 1 and low.endswith("_" + _norm(nb))]
        if fits:
            nb = max(fits, key=len)
            return candidate[: -len(nb) - 1].strip(), nb
    return None


def unsafe_reason(name: str) -> str | None:
    """Return why a member name must never be used as a path (absolute, .., control chars), or None."""
    path = name.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "absolute path in the zip: refused"
    if ".." in path.split("/"):
        return "path traversal (..) in the zip: refused"
    if any(ord(ch) < 32 for ch in path):
        return "control characters in the name: refused"
    return None


def check_student_id(student: str) -> str | None:
    """Return why ``student`` cannot be an nbgrader student id (a folder name), or None."""
    if len(student) > MAX_ID_LENGTH:
        return f"student id is {len(student)} characters long (at most {MAX_ID_LENGTH})"
    if not STUDENT_ID.fullmatch(student):
        return f"student id {student!r} is not of the form [A-Za-z0-9][A-Za-z0-9._@-]*"
    return None


def name_slug(full_name: str) -> str:
    """Return a student id made from a person's name: ASCII, lower case, words joined by dots."""
    ascii_name = unicodedata.normalize("NFKD", full_name).encode("ascii", "ignore").decode()
    return ".".join(re.findall(r"[a-z0-9]+", ascii_name.lower()))


def name_key(full_name: str) -> str:
    """Return a person's name for comparison: accents dropped, case folded, words split on anything else."""
    plain = "".join(ch for ch in unicodedata.normalize("NFKD", full_name) if not unicodedata.combining(ch))
    return " ".join(re.findall(r"\w+", plain.casefold()))


def wrapper_depth(paths: list[tuple[str, ...]], layout: str) -> int:
    """Return how many leading folders every notebook path shares as a mere wrapper (``submissions/``).

    With a folder per student, a shared folder counts as a wrapper only when every path still has a
    student folder and a file below it, so that one student's own folder is never taken for one;
    a Moodle submission folder is never a wrapper.
    """
    keep = 2 if layout == "folders" else 1
    depth = 0
    while (paths and all(len(p) >= depth + 1 + keep for p in paths) and len({p[depth] for p in paths}) == 1
           and not (layout == "moodle" and MOODLE.match(paths[0][depth]))):
        depth += 1
    return depth


# ---------------------------------------------------------------------------------------- layouts

# A layout turns a member's path (wrapper removed; ``full``: the whole path) into (keys, notebook) or
# the reason it cannot.
# keys are (kind, value) pairs a roster row can match: ("id", x), ("lms", uid) or ("name", full name);
# the first one is the student id when there is no roster.
Keys = list[tuple[str, str]]


def _inside_folder(student: str, filename: str, notebooks: list[str]) -> tuple[str, str] | str:
    """Return (student, notebook) for a file inside ``student``'s folder, or why it is not theirs."""
    stem = PurePosixPath(filename).stem
    nb = identify_notebook(stem, notebooks)
    if nb:
        return student, nb
    split = split_student_notebook(stem, notebooks)
    if split and _norm(split[0]) == _norm(student):
        return student, split[1]
    if split:
        return (f"its name names student {split[0]!r} but it lies in the folder of {student!r}: attributed "
                f"to nobody (a file counts only for the student whose folder holds it)")
    return f"in the folder of {student!r}, but not one of the notebooks ({', '.join(notebooks)})"


def layout_folders(parts: tuple[str, ...], notebooks: list[str], full: str = "") -> tuple[Keys, str] | str:
    """A folder per student; top-level files named <student>_NB.ipynb."""
    if len(parts) >= 2:
        student = clean_stem(parts[0])
        found = _inside_folder(student, parts[-1], notebooks)
        return found if isinstance(found, str) else ([("id", found[0])], found[1])
    stem = PurePosixPath(parts[0]).stem
    if CANVAS.match(stem):  # never read Canvas' login_uid_aid as one fake student per file
        return "looks like a Canvas name (login_uid_aid_file): use --lms canvas"
    split = split_student_notebook(stem, notebooks)
    if not split:
        return (f"no student in the name: expected <student>/NB.ipynb or <student>_NB.ipynb "
                f"with NB one of: {', '.join(notebooks)}")
    return [("id", split[0])], split[1]


def layout_canvas(parts: tuple[str, ...], notebooks: list[str], full: str = "") -> tuple[Keys, str] | str:
    """Canvas: flat login_[LATE_]uid_aid_<file>.ipynb."""
    if len(parts) != 1:
        return f"inside folder {'/'.join(parts[:-1])!r}: Canvas names files, it makes no folders"
    m = CANVAS.match(PurePosixPath(parts[0]).stem)
    if not m:
        return "not a Canvas name (login_uid_aid_file.ipynb)"
    nb = identify_notebook(m["file"], notebooks)
    if not nb:
        return f"file {m['file']!r} is not one of the notebooks ({', '.join(notebooks)})"
    return [("id", m["login"]), ("lms", m["uid"])], nb


def layout_moodle(parts: tuple[str, ...], notebooks: list[str], full: str = "") -> tuple[Keys, str] | str:
    """Moodle: Full Name_pid_assignsubmission_file_/<file> (folders) or ..._file_<file> (flat)."""
    if len(parts) >= 2 and not MOODLE.match(parts[0]):
        return f"inside folder {parts[0]!r}, which is not a Moodle submission folder"
    m = MOODLE.match(parts[0] if len(parts) >= 2 else PurePosixPath(parts[0]).stem)
    if not m:
        return "not a Moodle name (Full Name_12345_assignsubmission_file_...)"
    keys = [("id", name_slug(m["name"])), ("name", m["name"])]
    if len(parts) >= 2:
        if m["file"]:
            return "not a Moodle submission folder (it should end in _assignsubmission_file_)"
        found = _inside_folder(keys[0][1], parts[-1], notebooks)
        return found if isinstance(found, str) else (keys, found[1])
    nb = identify_notebook(m["file"], notebooks)
    if not nb:
        return f"file {m['file']!r} is not one of the notebooks ({', '.join(notebooks)})"
    return keys, nb


LAYOUT_RULES = {"canvas": layout_canvas, "moodle": layout_moodle, "folders": layout_folders}


def detect_layout(paths: list[tuple[str, ...]]) -> tuple[str, str]:
    """Return (layout, why) from the notebook paths of a download (wrapper removed)."""
    total = len(paths)
    moodle = sum(any("_assignsubmission_" in part for part in p) for p in paths)
    canvas = sum(len(p) == 1 and bool(CANVAS.match(PurePosixPath(p[0]).stem)) for p in paths)
    if moodle and 2 * moodle >= total:
        return "moodle", f"detected: {moodle} of {total} notebook paths carry Moodle's _assignsubmission_file_"
    if canvas and 2 * canvas >= total:
        return "canvas", f"detected: {canvas} of {total} notebook names look like Canvas' login_uid_aid_file"
    return "folders", "detected: neither Canvas nor Moodle names, so a folder (or a name prefix) per student"


def pattern_rule(regex: re.Pattern):
    """Return a layout rule from ``--pattern``: named groups student and notebook, searched in the path."""
    if not {"student", "notebook"} <= set(regex.groupindex):
        raise ValueError("--pattern needs the named groups (?P<student>...) and (?P<notebook>...)")

    def rule(parts: tuple[str, ...], notebooks: list[str], full: str = "") -> tuple[Keys, str] | str:
        """Match the whole member path against the pattern."""
        m = regex.search(full)
        if not m:
            return f"does not match --pattern {regex.pattern!r}"
        nb = identify_notebook(m["notebook"], notebooks)
        if not nb:
            return f"notebook {m['notebook']!r} is not one of: {', '.join(notebooks)}"
        return [("id", m["student"].strip())], nb

    return rule


def roster_match(keys: Keys, roster: list[dict[str, str]]) -> str | None:
    """Return the one roster id that ``keys`` designate, or None (no match or ambiguous)."""
    def matches(row: dict[str, str], kind: str, value: str) -> bool:
        """Return whether one key designates this roster row."""
        if kind == "id":
            return row["id"].lower() == value.lower()
        if kind == "lms":
            return bool(row.get("lms_user_id")) and row["lms_user_id"] == value
        full = name_key(value)
        first, last = row.get("first_name", ""), row.get("last_name", "")
        return bool(full) and full in (name_key(f"{first} {last}"), name_key(f"{last} {first}"))

    for kind, value in keys:  # strongest key first: an exact id, then the LMS id, then the name
        ids = {row["id"] for row in roster if matches(row, kind, value)}
        if len(ids) == 1:
            return ids.pop()
    return None


# -------------------------------------------------------------------------------------- the work

def read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """Return a member's bytes, refusing it before reading when its declared size is over ``cap``
    and while reading as soon as more than ``cap`` (or more than declared) bytes come out."""
    if info.flag_bits & 0x1:
        raise Refused("encrypted member: refused")
    if info.file_size > cap:
        raise Refused(f"declares {human(info.file_size)} uncompressed, over the cap of {human(cap)}: not unpacked")
    chunks, count = [], 0
    try:
        with zf.open(info) as stream:
            while chunk := stream.read(CHUNK):
                count += len(chunk)
                if count > cap or count > info.file_size:
                    raise Refused(f"expands beyond its declared {human(info.file_size)} "
                                  f"(cap {human(cap)}): unpacking stopped")
                chunks.append(chunk)
    except Refused:
        raise
    except Exception as err:  # CRC mismatch, bad deflate stream, unsupported method, truncated zip ...
        raise Refused(f"corrupt member ({type(err).__name__}: {err})") from None
    return b"".join(chunks)


def check_notebook(data: bytes) -> str | None:
    """Raise Refused when ``data`` is not a JSON notebook; return a schema warning or None."""
    import nbformat

    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=nbformat.NO_CONVERT)
    except Exception as err:
        raise Refused(f"not a Jupyter notebook ({type(err).__name__}: {str(err)[:200]})") from None
    try:
        nbformat.validate(nb)
    except Exception as err:  # collected: nbgrader may still grade it or flag it
        return f"collected, but it does not follow the notebook schema: {str(err).splitlines()[0][:200]}"
    return None


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _timestamp(date_time: tuple) -> str:
    """Return nbgrader's timestamp.txt text for a zip date."""
    return datetime(*date_time).strftime("%Y-%m-%d %H:%M:%S.%f")


def _attribute(zf: zipfile.ZipFile, result: Collection, notebooks: list[str], roster: list[dict[str, str]] | None,
               lms: str, pattern: str | None) -> dict[tuple[str, str], list[Candidate]]:
    """Sort every member into rejected, ignored or unmatched, or a (student, notebook) group of candidates."""
    members = []  # (index, info, parts) of notebooks whose names are safe to consider
    for index, info in enumerate(zf.infolist()):
        reason = unsafe_reason(info.filename)
        if reason:
            result.rejected.append((info.filename, reason))
            continue
        parts = tuple(p for p in info.filename.replace("\\", "/").split("/") if p not in ("", "."))
        if info.is_dir() or not parts:
            continue
        if "__MACOSX" in parts or any(p.startswith(".") for p in parts) or not parts[-1].lower().endswith(".ipynb"):
            result.ignored.append(info.filename)
            continue
        members.append((index, info, parts))

    paths = [p for _, _, p in members]
    if pattern:
        rule, result.layout, result.layout_reason = pattern_rule(re.compile(pattern)), "pattern", f"--pattern {pattern}"
    else:
        if lms == "auto":
            result.layout, result.layout_reason = detect_layout([p[wrapper_depth(paths, "canvas"):] for p in paths])
        else:
            result.layout, result.layout_reason = lms, "chosen with --lms"
        rule = LAYOUT_RULES[result.layout]
    depth = wrapper_depth(paths, result.layout)

    groups: dict[tuple[str, str], list[Candidate]] = {}
    for index, info, parts in members:
        try:
            found = rule(parts[depth:], notebooks, full="/".join(parts))
            if isinstance(found, str):
                result.unmatched.append((info.filename, found))
                continue
            keys, notebook = found
            student = keys[0][1] if roster is None else roster_match(keys, roster)
            if student is None:
                said = ", ".join(f"{kind} {value!r}" for kind, value in keys)
                result.unmatched.append((info.filename, f"not on the roster ({said})"))
                continue
            bad = check_student_id(student)
            if bad:
                result.rejected.append((info.filename, bad))
                continue
            groups.setdefault((student, notebook), []).append(Candidate(info, index, student, notebook))
        except Exception as err:  # one odd member never stops the others
            result.rejected.append((info.filename, f"{type(err).__name__}: {err}"))
    return groups


def _unpack(zf: zipfile.ZipFile, result: Collection, groups: dict[tuple[str, str], list[Candidate]],
            root: Path | None, assignment: str | None, max_notebook: int, max_total: int) -> None:
    """Keep the newest readable copy of each student's notebook, within the caps; write it when asked."""
    for (student, notebook), copies in sorted(groups.items()):
        # Newest first by the date in the zip; on a tie, the later member of the archive.
        copies.sort(key=lambda c: (c.info.date_time, c.index), reverse=True)
        kept = None
        for copy in copies:
            if kept is not None:
                why = "newer" if copy.info.date_time < kept.info.date_time else "same date, later in the zip"
                result.duplicates.append((copy.member, kept.member, f"the {why} copy ({kept.when()} vs "
                                          f"{copy.when()}) among {student}'s own files"))
                continue
            try:
                cap = min(max_notebook, max_total - result.bytes_read)
                if cap < copy.info.file_size <= max_notebook:
                    raise Refused(f"the download's total cap of {human(max_total)} is reached: not unpacked")
                data = read_capped(zf, copy.info, cap)
                result.bytes_read += len(data)
                warning = check_notebook(data)
                if root is not None and assignment is not None:
                    dest = root / "submitted" / student / assignment / f"{notebook}.ipynb"
                    atomic_write(dest, data)
                    result.written.append(dest)
                if warning:
                    result.notes.append((copy.member, warning))
                kept = copy
                result.collected.append(copy)
            except Refused as err:
                result.rejected.append((copy.member, str(err)))
            except Exception as err:  # a write that failed, ...: this copy only
                result.rejected.append((copy.member, f"{type(err).__name__}: {err}"))


def collect(zip_path: Path, notebooks: list[str], *, root: Path | None = None, assignment: str | None = None,
            roster: list[dict[str, str]] | None = None, lms: str = "auto", pattern: str | None = None,
            max_notebook: int = DEFAULT_MAX_NOTEBOOK, max_total: int = DEFAULT_MAX_TOTAL) -> Collection:
    """Map, check and (when ``root`` and ``assignment`` are given) write every notebook of a download."""
    result = Collection()
    with zipfile.ZipFile(zip_path) as zf:
        groups = _attribute(zf, result, notebooks, roster, lms, pattern)
        _unpack(zf, result, groups, root, assignment, max_notebook, max_total)

    if root is not None and assignment is not None:
        for student in result.students():
            newest = max(c.info.date_time for c in result.collected if c.student == student)
            try:
                atomic_write(root / "submitted" / student / assignment / "timestamp.txt",
                             (_timestamp(newest) + "\n").encode())
            except Exception as err:
                result.notes.append((student, f"no timestamp.txt written ({type(err).__name__}: {err})"))
    handed = result.students()
    for student, names in handed.items():
        lacking = [nb for nb in notebooks if nb not in names]
        if lacking:
            result.incomplete[student] = lacking
    if roster is not None:
        result.missing = sorted({row["id"] for row in roster} - set(handed))
    return result


def report(result: Collection) -> str:
    """Return a human-readable account of a collection: every member in exactly one list."""
    handed = result.students()
    lines = [f"layout: {result.layout} ({result.layout_reason})",
             f"collected {len(result.collected)} notebook(s) of {len(handed)} student(s)"]
    lines += [f"  {student}: {', '.join(names)}" for student, names in handed.items()]
    if result.unmatched:
        lines.append(f"UNMATCHED {len(result.unmatched)} file(s), not collected:")
        lines += [f"  {member}: {reason}" for member, reason in result.unmatched]
    if result.rejected:
        lines.append(f"REJECTED {len(result.rejected)} file(s), not collected:")
        lines += [f"  {member}: {reason}" for member, reason in result.rejected]
    if result.duplicates:
        lines.append(f"duplicates: {len(result.duplicates)} other copy(ies) not collected:")
        lines += [f"  {drop}: not collected, {keep} kept: {why}" for drop, keep, why in result.duplicates]
    if result.notes:
        lines.append("notes:")
        lines += [f"  {member}: {note}" for member, note in result.notes]
    if result.incomplete:
        lines.append("students missing some notebooks: " + "; ".join(
            f"{s} ({', '.join(nbs)})" for s, nbs in result.incomplete.items()))
    if result.missing:
        lines.append(f"{len(result.missing)} roster student(s) without a submission: " + ", ".join(result.missing))
    if result.ignored:
        shown = ", ".join(result.ignored[:10]) + (" ..." if len(result.ignored) > 10 else "")
        lines.append(f"ignored {len(result.ignored)} file(s) that are not notebooks: {shown}")
    return "\n".join(lines)
