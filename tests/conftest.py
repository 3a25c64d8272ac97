"""Shared fixtures: offline mode, the repository root, and the session's shared runs.

Test modules import shared code from tests/support (never from this file). The session's expensive runs
(released scratch courses, notebook executions, nbgrader validations) live in one ``jobs`` object
(tests/support/jobs.py): each is done once and shared. Before the first test, every test module that
defines ``prefetch(jobs, items)`` names what its selected tests will need, and background workers
start on it while the other tests run.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

# The course must work with no Hub: every test runs as a student without network would.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Kernels run beside each other (background workers, two autograde processes, the tests): one BLAS thread
# each avoids the oversubscription that makes torch several times slower on a loaded machine (measured: 5x).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from support import ROOT, Executed, execute_notebook  # noqa: E402,F401  (re-exported for older imports)
from support.jobs import Jobs  # noqa: E402


@pytest.fixture(scope="session")
def root() -> Path:
    """Return the repository root."""
    return ROOT


@pytest.fixture(scope="session", autouse=True)
def jobs(request, tmp_path_factory):
    """Return the session's shared runs, with what the selected tests need already started (see above)."""
    shared = Jobs(tmp_path_factory.mktemp("jobs"))
    modules: dict[str, tuple] = {}
    for item in request.session.items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "prefetch"):
            modules.setdefault(module.__name__, (module, []))[1].append(item)
    for module, items in modules.values():
        try:
            module.prefetch(shared, items)
        except Exception as err:  # noqa: BLE001 - only the head start is lost: tests still compute what they need
            warnings.warn(f"{module.__name__}.prefetch failed: {err!r}", stacklevel=1)
    yield shared
    shared.close()


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


@pytest.fixture(autouse=True)
def _course_variables_restored():
    """`course_tools.cli.main` run in-process sets COURSE_ROOT (for its child processes); put it and the
    LLM_COURSE_* settings back after each test, so a scratch course never becomes a later test's course."""
    saved = {k: v for k, v in os.environ.items() if k == "COURSE_ROOT" or k.startswith("LLM_COURSE_")}
    yield
    for key in [k for k in os.environ if k == "COURSE_ROOT" or k.startswith("LLM_COURSE_")]:
        if key not in saved:
            del os.environ[key]
    os.environ.update(saved)
