"""Drive JupyterLab in a system Chromium the way a student does: open, Run All, look, click Validate.

A scratch copy of the course is served by `python -m course_tools.lab` (what `make lab` runs) on a
free port with a random token; Chromium is the system one (never a downloaded browser), driven by
Playwright, headless, with a fresh profile.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a student's course folder holds (the rest of the repository is not needed to run notebooks).
COURSE_ITEMS = ("nbgrader_config.py", "pyproject.toml", "models.txt", "course.toml", "release", "source", "notebooks")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
STDERR = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'
ERROR = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'


def chromium_path() -> str | None:
    """Return the system Chromium to drive ($CHROMIUM, else chromium on PATH), or None."""
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                      "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def screenshot_dir() -> Path:
    """Return the folder for the screenshots ($BROWSER_SCREENSHOTS, else tests/browser/screenshots/)."""
    folder = Path(os.environ.get("BROWSER_SCREENSHOTS") or ROOT / "tests" / "browser" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def scratch_course(base: Path) -> Path:
    """Copy what a student's course folder holds into ``base``/course and return it."""
    course = base / "course"
    course.mkdir(parents=True)
    for name in COURSE_ITEMS:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, course / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        elif src.is_file():
            shutil.copy(src, course / name)
    return course


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A JupyterLab server on a scratch course, started as `make lab` starts it (student view by default)."""

    def __init__(self, course: Path, log: Path, instructor: bool = False) -> None:
        self.course, self.token, self.port = course, secrets.token_hex(16), free_port()
        settings = course.parent / "lab-settings"
        # Every cell stays in the page (no virtual scrolling), so outputs can be inspected anywhere.
        tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        tracker.parent.mkdir(parents=True, exist_ok=True)
        tracker.write_text(json.dumps({"windowingMode": "none"}))
        # No "would you like Jupyter news?" toast over the screenshots.
        notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notification.parent.mkdir(parents=True, exist_ok=True)
        notification.write_text(json.dumps({"fetchNews": "false"}))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "JUPYTERLAB_SETTINGS_DIR": str(settings),
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        command = [sys.executable, "-m", "course_tools.lab", "--root", str(course),
                   *(["--instructor"] if instructor else []), "--no-browser", f"--port={self.port}",
                   "--ip=127.0.0.1", f"--ServerApp.token={self.token}", "--LabApp.news_url=",
                   "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self.log = open(log, "w")
        self.process = subprocess.Popen(command, cwd=course, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self._wait_ready()

    @property
    def base(self) -> str:
        """Return the server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        """Return the URL that opens ``path`` (relative to the course) in JupyterLab, token included."""
        # ?reset: a fresh workspace, so tabs of earlier tests are not restored around this one.
        query = f"?reset&token={self.token}"
        return f"{self.base}/lab/tree/{path}{query}" if path else f"{self.base}/lab{query}"

    def shutdown_kernels(self) -> None:
        """Shut down every kernel the server runs (each test's notebook loads its own models)."""
        request = urllib.request.Request(f"{self.base}/api/kernels?token={self.token}")
        with urllib.request.urlopen(request, timeout=30) as reply:
            kernels = json.loads(reply.read())
        for kernel in kernels:
            urllib.request.urlopen(urllib.request.Request(
                f"{self.base}/api/kernels/{kernel['id']}?token={self.token}", method="DELETE"), timeout=60).close()

    def _wait_ready(self, timeout: float = 180) -> None:
        """Wait until the server answers its status API; raise with the log tail if it dies or hangs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=5) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"JupyterLab did not start:\n{Path(self.log.name).read_text()[-3000:]}")

    def stop(self) -> None:
        """Stop the server and the kernels it started (its own process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


class Student:
    """One browser page on the lab, with the steps a student takes and a screenshot after each."""

    def __init__(self, page, lab: Lab, shots: Path) -> None:
        self.page, self.lab, self.shots = page, lab, shots

    def shot(self, name: str) -> Path:
        """Save a full-page screenshot named ``name`` and return its path."""
        path = self.shots / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def open(self, path: str, timeout: float = 120_000) -> None:
        """Open a notebook and wait until its kernel has started and is idle."""
        self.page.goto(self.lab.url(path))
        self.page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", timeout=timeout)
        # The indicator reads "idle" before any kernel exists: wait for the kernel's name as well.
        self.page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar-kernelName')]
                     .some(e => /python/i.test(e.textContent))""", timeout=timeout)
        self.accept_kernel_dialog()
        self.wait_idle(timeout)

    def accept_kernel_dialog(self) -> None:
        """Press Select when JupyterLab asks which kernel to start (as a student would)."""
        dialog = self.page.locator(".jp-Dialog", has_text="Select Kernel")
        if dialog.count():
            dialog.get_by_role("button", name="Select").click()

    def wait_idle(self, timeout: float = 120_000) -> None:
        """Wait until the notebook's kernel reports idle."""
        self.page.wait_for_selector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator'
                                    '[data-status="idle"]', timeout=timeout)

    def menu(self, top: str, item: str) -> None:
        """Click a menu bar entry, then an item of the menu it opens."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).first.click()

    def prompts(self) -> list[str]:
        """Return the execution prompts ("[ ]:", "[*]:", "[3]:") of the open notebook's code cells."""
        return self.texts(".jp-CodeCell .jp-InputPrompt")

    def run_all(self, timeout: float = 600_000) -> None:
        """Run → Run All Cells, then wait until no cell is queued or running."""
        before = self.prompts()
        for _attempt in range(3):  # a menu clicked while the page is still settling may not open
            self.menu("Run", "Run All Cells")
            try:
                self.page.wait_for_function("(old) => JSON.stringify([...document.querySelectorAll("
                                            "'.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent)) !== old",
                                            arg=json.dumps(before), timeout=15_000)
                break
            except Exception:  # Playwright's TimeoutError: answer a kernel question, or try the menu again
                self.accept_kernel_dialog()
                self.page.keyboard.press("Escape")
        self.page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent);
                return prompts.length > 0 && !prompts.some(t => t.includes('*')) && prompts.some(t => /\\d/.test(t));
            }""", timeout=timeout, polling=1000)
        self.wait_idle()

    def count(self, selector: str) -> int:
        """Return how many elements match ``selector`` in the open notebook."""
        return self.page.locator(f".jp-NotebookPanel:not(.lm-mod-hidden) {selector}").count()

    def texts(self, selector: str) -> list[str]:
        """Return the texts of the elements matching ``selector`` in the open notebook."""
        return self.page.locator(f".jp-NotebookPanel:not(.lm-mod-hidden) {selector}").all_inner_texts()

    def validate(self, timeout: float = 600_000) -> str:
        """Press nbgrader's Validate button and return the text of the results dialog (then close it)."""
        self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar").get_by_text("Validate",
                                                                                         exact=True).click()
        dialog = self.page.locator(".jp-Dialog", has_text="Validation")
        dialog.wait_for(timeout=timeout)
        return dialog.inner_text()

    def close_dialog(self) -> None:
        """Close the open dialog with its OK button."""
        self.page.locator(".jp-Dialog").get_by_role("button", name=re.compile("ok", re.I)).click()
