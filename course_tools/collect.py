"""Collect an LMS or Colab download (a zip of notebooks) into nbgrader's submitted/ folder.

Accepted names of the notebooks inside the zip (any folder depth; ``__MACOSX/`` and dot files are
ignored), where ``NB`` is the name of one of the assignment's notebooks (``source/<assignment>/NB.ipynb``):

* ``<student>/NB.ipynb``            a folder per student (the folder right above the notebook);
* ``<student>_NB.ipynb``            or ``<student>-NB.ipynb`` (the longest notebook name that fits wins);
* ``<student>_anything_NB.ipynb``   LMS prefixes such as Canvas' ``login_12345_67890_NB.ipynb``: with
  ``--pattern`` you say which part is the student (see below); by default the whole prefix is;
* Colab and browser decorations are removed first: ``Copy of `` in front, `` (1)``/``(2)`` or ``-1``
  behind the name (``Copy of alice_02_tokenization (1).ipynb`` is alice's ``02_tokenization``).

Student ids must match ``[A-Za-z0-9][A-Za-z0-9._@-]*``. ``--pattern REGEX`` overrides the rule: a regular
expression matched against the zip member path (after the decorations are removed), with named groups
``student`` and ``notebook``. With ``--roster FILE`` (CSV with an ``id`` column, or one id per line) a
student not on the roster is unmatched and roster students without a submission are listed.
"""

from __future__ import annotations

import csv
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")
DECORATION_BEFORE = re.compile(r"^(?:Copy of |Copy_of_)+", re.IGNORECASE)
DECORATION_AFTER = re.compile(r"(?:\s*\(\d+\)|-\d+)+$")


@dataclass
class Match:
    """One zip member mapped to a student's notebook."""

    member: str
    student: str
    notebook: str
    date_time: tuple


@dataclass
class Collection:
    """The result of mapping a zip: matches, unmatched members, ignored members, notes."""

    matches: list[Match] = field(default_factory=list)
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # (member, reason)
    ignored: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (dropped member, kept member)
    missing: list[str] = field(default_factory=list)  # roster students without any notebook

    def students(self) -> list[str]:
        """Return the students with at least one matched notebook."""
        return sorted({m.student for m in self.matches})


def notebook_names(root: Path, assignment: str) -> list[str]:
    """Return the assignment's notebook names (stems) from source/ (or release/)."""
    for step in ("source", "release"):
        names = sorted(p.stem for p in (root / step / assignment).glob("*.ipynb"))
        if names:
            return names
    raise FileNotFoundError(f"no notebooks in source/{assignment} or release/{assignment}")


def read_roster(path: Path) -> list[str]:
    """Return the student ids of a roster: CSV with an ``id`` column, or one id per line."""
    text = path.read_text().splitlines()
    rows = list(csv.DictReader(text))
    if rows and "id" in rows[0]:
        return [r["id"].strip() for r in rows if r["id"].strip()]
    return [line.split(",")[0].strip() for line in text if line.strip() and not line.startswith("#")]


def clean_stem(stem: str) -> str:
    """Remove Colab/browser decorations: a leading "Copy of " and trailing " (1)" or "-1"."""
    return DECORATION_AFTER.sub("", DECORATION_BEFORE.sub("", stem.strip())).strip()


def match_member(member: str, notebooks: list[str], pattern: re.Pattern | None = None) -> tuple[str, str] | str:
    """Return (student, notebook) for a zip member path, or the reason it does not match."""
    path = PurePosixPath(member)
    stem = clean_stem(path.stem)
    if pattern is not None:
        m = pattern.search(str(path.with_name(stem + path.suffix)))
        if not m:
            return f"does not match --pattern {pattern.pattern!r}"
        student, notebook = m.group("student"), clean_stem(m.group("notebook"))
    elif stem in notebooks and len(path.parts) > 1:
        student, notebook = clean_stem(path.parts[-2]), stem
    else:
        fits = [nb for nb in notebooks if len(stem) > len(nb) + 1 and stem.endswith(nb) and stem[-len(nb) - 1] in "_-"]
        if not fits:
            wanted = ", ".join(notebooks)
            return f"name is neither <student>/NB.ipynb nor <student>_NB.ipynb with NB one of: {wanted}"
        notebook = max(fits, key=len)
        student = stem[: -len(notebook) - 1]
    if notebook not in notebooks:
        return f"unknown notebook {notebook!r} (expected one of: {', '.join(notebooks)})"
    if not STUDENT_ID.fullmatch(student):
        return f"student id {student!r} is not of the form [A-Za-z0-9][A-Za-z0-9._@-]*"
    return student, notebook


def scan(zip_path: Path, notebooks: list[str], roster: list[str] | None = None,
         pattern: str | None = None) -> Collection:
    """Map every member of the zip to a student's notebook without writing anything."""
    regex = re.compile(pattern) if pattern else None
    result = Collection()
    chosen: dict[tuple[str, str], Match] = {}
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            path = PurePosixPath(info.filename)
            if info.is_dir() or "__MACOSX" in path.parts or any(p.startswith(".") for p in path.parts):
                continue
            if path.suffix != ".ipynb":
                result.ignored.append(info.filename)
                continue
            found = match_member(info.filename, notebooks, regex)
            if isinstance(found, str):
                result.unmatched.append((info.filename, found))
                continue
            student, notebook = found
            if roster is not None and student not in roster:
                result.unmatched.append((info.filename, f"student {student!r} is not on the roster"))
                continue
            new = Match(info.filename, student, notebook, info.date_time)
            old = chosen.get((student, notebook))
            if old is None:
                chosen[(student, notebook)] = new
            else:  # two copies of one notebook: keep the newer (then the undecorated) one
                keep, drop = sorted([old, new], key=lambda m: (m.date_time, m.member == m.member.strip()))[::-1]
                chosen[(student, notebook)] = keep
                result.duplicates.append((drop.member, keep.member))
    result.matches = sorted(chosen.values(), key=lambda m: (m.student, m.notebook))
    if roster is not None:
        result.missing = sorted(set(roster) - set(result.students()))
    return result


def write(zip_path: Path, root: Path, assignment: str, collection: Collection) -> list[Path]:
    """Extract the matched notebooks to submitted/<student>/<assignment>/ with a timestamp.txt each."""
    written = []
    with zipfile.ZipFile(zip_path) as zf:
        latest: dict[str, tuple] = {}
        for m in collection.matches:
            dest = root / "submitted" / m.student / assignment / f"{m.notebook}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(zf.read(m.member))
            written.append(dest)
            latest[m.student] = max(latest.get(m.student, m.date_time), m.date_time)
    for student, stamp in latest.items():
        when = datetime(*stamp).strftime("%Y-%m-%d %H:%M:%S.%f")
        (root / "submitted" / student / assignment / "timestamp.txt").write_text(when + "\n")
    return written


def report(collection: Collection) -> str:
    """Return a human-readable account of a collection: counts, then every problem, one per line."""
    lines = [f"{len(collection.matches)} notebooks of {len(collection.students())} students matched"]
    if collection.unmatched:
        lines.append(f"{len(collection.unmatched)} UNMATCHED file(s) (not collected):")
        lines += [f"  {member}: {reason}" for member, reason in collection.unmatched]
    if collection.duplicates:
        lines.append("duplicates (older copy dropped):")
        lines += [f"  {drop}  (kept {keep})" for drop, keep in collection.duplicates]
    if collection.ignored:
        lines.append(f"ignored {len(collection.ignored)} non-notebook file(s): " + ", ".join(collection.ignored[:10]))
    if collection.missing:
        lines.append(f"{len(collection.missing)} roster student(s) without a submission: "
                     + ", ".join(collection.missing))
    return "\n".join(lines)
