"""Shared fixtures: offline mode, the repository root, and a notebook executor."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent

# The course must work with no Hub: every test runs as a student without network would.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
    """Execute a notebook top to bottom with nbclient and return it with its first error."""
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


@pytest.fixture(scope="session")
def root() -> Path:
    """Return the repository root."""
    return ROOT


@pytest.fixture(scope="session")
def sync_playwright_session():
    """Return one Playwright (sync API) for the whole session, or skip saying why.

    Playwright's sync API keeps an event loop running while it is open, so a second
    ``sync_playwright()`` in the same process fails; every browser test shares this one.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser check skipped: the playwright package is missing (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        yield pw
