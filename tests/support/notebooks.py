"""Executing a notebook top to bottom with nbclient, in this process or in a child process.

Run as a script (``python notebooks.py IN.ipynb OUT.ipynb RESULT.json TIMEOUT ALLOW_ERRORS CWD``) it executes
IN in its own process and writes the executed notebook and {error, seconds}: how tests/support/jobs.py runs
executions beside the tests. It imports nothing of the course, so it runs as a plain script.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent.parent
# Variables of the test process that change what a notebook does, so they are part of an execution's key.
RELEVANT_ENV = ("HF_HUB_OFFLINE", "NBGRADER_EXECUTION", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


@dataclass
class Executed:
    """A notebook after execution, the first error (if any) and the wall time."""

    nb: nbformat.NotebookNode
    error: CellExecutionError | None
    seconds: float

    def stderr(self) -> list[str]:
        """Return every stderr text the notebook's cells wrote."""
        return [out.get("text", "") for cell in self.nb.cells if cell.cell_type == "code"
                for out in cell.get("outputs", []) if out.get("name") == "stderr"]

    def images(self) -> list[str]:
        """Return the base64 PNG images the notebook's cells displayed."""
        return [out["data"]["image/png"] for cell in self.nb.cells if cell.cell_type == "code"
                for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]


def execute_notebook(path: Path | str, timeout: int = 300, env: dict[str, str] | None = None,
                     allow_errors: bool = False, cwd: Path | None = None) -> Executed:
    """Execute a notebook top to bottom with nbclient in this process and return it with its first error.

    ``env`` is set in os.environ while the kernel starts (the kernel inherits it) and restored afterwards,
    so call this from the main thread only; tests/support/jobs.py runs executions in child processes.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    start = time.perf_counter()
    error = None
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                                resources={"metadata": {"path": str(cwd or path.parent)}})
        try:
            client.execute()
        except CellExecutionError as err:
            error = err
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Executed(nb, error, time.perf_counter() - start)


def execution_key(path: Path | str, env: dict[str, str] | None = None, cwd: Path | None = None,
                  allow_errors: bool = False, base: dict[str, str] | None = None) -> str:
    """Return what determines an execution's result: the notebook's bytes, its folder and the environment
    (``base``, os.environ by default, with ``env`` on top)."""
    path = Path(path)
    base = os.environ if base is None else base
    seen = {k: base.get(k) for k in RELEVANT_ENV}
    seen.update({k: v for k, v in base.items() if k.startswith("LLM_COURSE_")})
    seen.update(env or {})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return json.dumps([digest, str((cwd or path.parent).resolve()), sorted(seen.items()), allow_errors])


def load_result(notebook: Path, result: Path) -> Executed:
    """Return the Executed that a child process wrote with ``main``."""
    found = json.loads(result.read_text())
    err = found["error"]
    error = CellExecutionError(err["text"], err["ename"], err["evalue"]) if err else None
    return Executed(nbformat.read(notebook, as_version=4), error, found["seconds"])


def main(argv: list[str]) -> int:
    """Execute argv[0] and write the executed notebook to argv[1], {error, seconds} to argv[2]."""
    source, out, result, timeout, allow_errors, cwd = argv
    run = execute_notebook(source, timeout=int(timeout), allow_errors=allow_errors == "1", cwd=Path(cwd))
    nbformat.write(run.nb, out)
    err = run.error
    error = {"text": str(err), "ename": err.ename, "evalue": err.evalue} if err else None
    Path(result).write_text(json.dumps({"error": error, "seconds": run.seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
