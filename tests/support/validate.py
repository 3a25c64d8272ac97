"""Validate notebooks with nbgrader's own Validator, each executed once (run inside a course root).

    python validate.py OUT.json NOTEBOOK...

For each notebook it records four things from a single execution: the verdict of Validate (what
JupyterLab's Validate button and `nbgrader validate` compute), the executed notebook that verdict
came from, the verdict with ``invert=True``, and what `nbgrader validate --invert NOTEBOOK` prints
(nbgrader's ValidateApp itself, flag parsed from that command line). The Validator's execution step is
wrapped so that a notebook with the same content is executed only once; everything else is nbgrader's.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys

import nbformat
from nbgrader.apps.validateapp import ValidateApp
from nbgrader.validator import Validator

_execute = Validator._preprocess
_executed: dict[str, nbformat.NotebookNode] = {}
_last: list = [None]


def _execute_once(self: Validator, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Execute ``nb`` as nbgrader's Validator does, once per notebook content; return a copy of the result."""
    key = hashlib.sha256(nbformat.writes(nb).encode()).hexdigest()
    if key not in _executed:
        _executed[key] = _execute(self, nb)
    _last[0] = _executed[key]
    return copy.deepcopy(_executed[key])


Validator._preprocess = _execute_once


def main(out: str, paths: list[str]) -> int:
    """Validate every path (normal and inverted, and the --invert command's text); write the JSON to ``out``."""
    app = ValidateApp()
    app.initialize([])
    found = {}
    for path in paths:
        _last[0] = None
        results = Validator(parent=app).validate(path)
        executed = _last[0]
        inverted = Validator(parent=app, invert=True).validate(path)
        printed = _Text()
        Validator.stream = printed
        try:
            command = ValidateApp()
            command.initialize(["--invert", path])
            command.start()
        finally:
            Validator.stream = sys.stdout
        found[path] = {"results": results, "executed": executed, "inverted": inverted,
                       "invert_output": printed.text}
    with open(out, "w") as fh:
        json.dump(found, fh)
    return 0


class _Text:
    """A write-only text stream that keeps what was written."""

    def __init__(self) -> None:
        """Start empty."""
        self.text = ""

    def write(self, text: str) -> None:
        """Keep ``text``."""
        self.text += text

    def flush(self) -> None:
        """Nothing to flush."""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
