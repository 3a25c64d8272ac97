"""Fixtures of the browser suite: one JupyterLab (student view) on a scratch course, one Chromium.

Without a system Chromium or the Playwright package every test here is skipped, with the reason in
pytest's summary (`make test` runs pytest with -ra, so the skip is visible).
"""

from __future__ import annotations

import pytest

from .lab_driver import CHROMIUM_ARGS, Lab, Student, chromium_path, scratch_course, screenshot_dir


def pytest_collection_modifyitems(items):
    """Mark every browser test slow (each runs notebooks in a real JupyterLab)."""
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Return the system Chromium, or skip the browser suite saying why."""
    path = chromium_path()
    if path is None:
        pytest.skip("browser suite skipped: no system Chromium (apt-get install chromium, or set CHROMIUM=/path)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("browser suite skipped: the playwright package is missing (pip install -e '.[dev]')")
    return path


@pytest.fixture(scope="session")
def course(tmp_path_factory, chromium):
    """Return a scratch copy of the course the lab serves."""
    return scratch_course(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="session")
def lab(course, chromium):
    """Start JupyterLab in the student view on the scratch course; stop it afterwards."""
    server = Lab(course, log=screenshot_dir() / "jupyterlab.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory, chromium, sync_playwright_session):
    """Return a headless Chromium context with a fresh profile."""
    context = sync_playwright_session.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium, headless=True,
        args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
    yield context
    context.close()


@pytest.fixture
def student(browser_context, lab):
    """Return a fresh page in the lab."""
    page = browser_context.new_page()
    page.set_default_timeout(60_000)
    yield Student(page, lab, screenshot_dir())
    page.close()
    lab.shutdown_kernels()
