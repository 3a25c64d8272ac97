"""Scripted submissions for the nbgrader end-to-end tests: release notebooks edited cell by cell.

Every submission starts from the committed release (what a student downloads) and changes cells by
their nbgrader ``grade_id``, as a student working in JupyterLab or on Colab would.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat

ASSIGNMENT = "language_models"
SOLUTION = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


def grade_id(cell) -> str | None:
    """Return the nbgrader grade_id of a cell, or None."""
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def find_cell(nb, gid: str):
    """Return the cell of ``nb`` with grade_id ``gid`` (KeyError when absent)."""
    for cell in nb.cells:
        if grade_id(cell) == gid:
            return cell
    raise KeyError(f"no cell with grade_id {gid!r}")


def reference_answers(source_dir: Path) -> dict[str, dict[str, str]]:
    """Return {notebook: {grade_id: solution cell source without the solution markers}} from source/."""
    answers: dict[str, dict[str, str]] = {}
    for path in sorted(source_dir.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        answers[path.stem] = {grade_id(c): SOLUTION.sub("", c.source) for c in nb.cells
                              if c.metadata.get("nbgrader", {}).get("solution")}
    return answers


def load_release(release_dir: Path) -> dict[str, nbformat.NotebookNode]:
    """Return the release notebooks by stem."""
    return {p.stem: nbformat.read(p, as_version=4) for p in sorted(release_dir.glob("*.ipynb"))}


def solve(nbs: dict, answers: dict, which: list[str] | None = None) -> None:
    """Fill the solution cells named in ``which`` (default: all) with the reference answers."""
    for stem, nb in nbs.items():
        for gid, source in answers[stem].items():
            if which is None or gid in which:
                find_cell(nb, gid).source = source


def set_source(nbs: dict, stem: str, gid: str, source: str) -> None:
    """Replace the source of one cell, found by grade_id."""
    find_cell(nbs[stem], gid).source = source


def submit(course: Path, student: str, nbs: dict, only: list[str] | None = None) -> Path:
    """Write the notebooks (or the stems in ``only``) to submitted/<student>/<assignment>/ and return it."""
    folder = course / "submitted" / student / ASSIGNMENT
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for stem, nb in nbs.items():
        if only is None or stem in only:
            nbformat.write(nb, folder / f"{stem}.ipynb")
    (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    return folder


# Wrong answers: each runs, but gives wrong results (so a test fails with AssertionError).
WRONG = {
    ("01_theory", "kl_divergence"):
        'def kl_divergence(p, q) -> float:\n    return 0.0',
    ("02_tokenization", "reverse_dict"):
        'def reverse_dict(d: dict) -> dict:\n    return dict(d)',
    ("03_generation", "stopping_criteria"):
        'def build_stopping_criteria(tokenizer):\n    return StoppingCriteriaList([])',
    ("04_chat", "decode_chat_messages"):
        'def decode_chat_messages(ids, tokenizer):\n    return []',
}

LOOP_FOREVER = 'def reverse_dict(d: dict) -> dict:\n    while True:\n        pass'

WITH_WARNINGS = '''import warnings

from transformers.utils import logging as hf_logging


def reverse_dict(d: dict) -> dict:
    "Return the reversed dict, complaining loudly through the warning machinery on the way."
    warnings.warn("reverse_dict: this is a UserWarning", UserWarning)
    warnings.warn("reverse_dict: this is a DeprecationWarning", DeprecationWarning)
    hf_logging.get_logger("transformers.tokenization_utils_base").warning("a transformers logger warning")
    return {value: key for key, value in d.items()}'''

EDITED_TEST = 'print("all tests passed (trust me)")'
