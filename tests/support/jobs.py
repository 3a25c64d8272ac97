"""The expensive runs of a test session, each done once and shared: released scratch courses, notebook
executions and nbgrader validations.

Every result is computed at most once per session, keyed on what determines it (a notebook's bytes,
folder and environment; an assignment and a release variant), and handed to every test that asks.
Test modules name what their selected tests will need in a ``prefetch(jobs, items)`` function; those
runs start in background workers (child processes, one single-threaded kernel each) while other tests
run, in the order they will be needed. A test that needs a result nobody has started runs it itself,
so nothing waits in a queue; one that needs a result being computed waits for it.
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import nbformat

from .cli import env_for
from .courses import release_dir, released_course
from .notebooks import Executed, execution_key, load_result

HERE = Path(__file__).resolve().parent
WORKERS_ENV = "LLM_COURSE_TEST_JOBS"


def default_workers() -> int:
    """Return how many background workers to run: LLM_COURSE_TEST_JOBS, else one core less than the machine has.

    The tests themselves keep one core busy; each worker runs one single-threaded kernel (OMP_NUM_THREADS=1).
    """
    if os.environ.get(WORKERS_ENV):
        return max(0, int(os.environ[WORKERS_ENV]))
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class Task:
    """One result computed once, by the first thread that needs it (a worker or a test)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        """Remember how to compute the result."""
        self.fn = fn
        self.lock = threading.Lock()
        self.started = False
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def claim(self) -> bool:
        """Return True exactly once: for the caller that is to compute the result."""
        with self.lock:
            if self.started:
                return False
            self.started = True
            return True

    def run(self) -> None:
        """Compute the result (after ``claim``), keeping the exception if it fails."""
        try:
            self.value = self.fn()
        except BaseException as err:  # noqa: BLE001 - handed to every test that asks
            self.error = err
        finally:
            self.done.set()

    def result(self) -> Any:
        """Return the result: compute it now if nobody has started it, else wait for it."""
        if self.claim():
            self.run()
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


class Jobs:
    """The session's shared runs (see the module docstring)."""

    def __init__(self, base: Path, workers: int | None = None) -> None:
        """Keep results under ``base``; start ``workers`` background threads (default: default_workers())."""
        self.base = base
        # The environment of every child process: os.environ now, at the start of the session. Tests change
        # os.environ for a moment (monkeypatch, execute_notebook's env, course_tools.cli.main); workers must
        # not pick that up.
        self.env = dict(os.environ)
        self.tasks: dict[Any, Task] = {}
        self.lock = threading.Lock()
        self.queue: queue.Queue = queue.Queue()
        self.procs: set[subprocess.Popen] = set()
        self.numbers = itertools.count()  # names the folders of executions
        self.closed = False
        count = default_workers() if workers is None else workers
        self.threads = [threading.Thread(target=self._work, daemon=True, name=f"jobs-{i}") for i in range(count)]
        for thread in self.threads:
            thread.start()

    # ------------------------------------------------------------------------------------ mechanics

    def task(self, key: Any, fn: Callable[[], Any]) -> Task:
        """Return the task for ``key``, created with ``fn`` the first time."""
        with self.lock:
            if key not in self.tasks:
                self.tasks[key] = Task(fn)
            return self.tasks[key]

    def prefetch(self, task: Task) -> None:
        """Let a background worker compute ``task`` when it gets to it (unless a test starts it first)."""
        if self.threads:
            self.queue.put(task)

    def _work(self) -> None:
        """Compute queued tasks until told to stop."""
        while True:
            task = self.queue.get()
            if task is None or self.closed:
                return
            if task.claim():
                task.run()

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        """Run a child process (stopped if the session ends first); return it finished, output captured."""
        if self.closed:
            raise RuntimeError("the test session is over")
        proc = subprocess.Popen(argv, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with self.lock:
            self.procs.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"{argv[:4]} ran past {timeout} s:\n{out[-2000:]}\n{err[-2000:]}") from None
        finally:
            with self.lock:
                self.procs.discard(proc)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def close(self) -> None:
        """Stop the workers and any child process still running (a session cut short)."""
        self.closed = True
        for _ in self.threads:
            self.queue.put(None)
        with self.lock:
            running = list(self.procs)
        for proc in running:
            proc.terminate()
        for thread in self.threads:
            thread.join(timeout=30)

    # ------------------------------------------------------------------------------- what is shared

    def course(self, name: str) -> Task:
        """Return the task of a scratch course holding this repository's ``name``, released by `course release`.

        One per assignment per session; tests that write to it use their own student names and folders.
        """
        return self.task(("course", name), lambda: released_course(self.base / f"course-{name}", name, self.env))

    def execution(self, path: Path, env: dict[str, str] | None = None, timeout: int = 300) -> Task:
        """Return the task of executing ``path`` top to bottom with nbclient (an Executed; read it, never change it)."""
        path = Path(path).resolve()
        key = ("execute", execution_key(path, env, base=self.env))
        with self.lock:
            number = next(self.numbers)
        return self.task(key, lambda: self._execute(path, env or {}, timeout, number))

    def _execute(self, path: Path, env: dict[str, str], timeout: int, number: int) -> Executed:
        """Execute ``path`` in a child process and return the result."""
        folder = self.base / "executed" / f"{number:03d}-{path.parent.name}-{path.stem}"
        folder.mkdir(parents=True)
        out, result = folder / path.name, folder / "result.json"
        done = self.run([sys.executable, str(HERE / "notebooks.py"), str(path), str(out), str(result), str(timeout),
                         "0", str(path.parent)], cwd=path.parent, env={**self.env, **env}, timeout=4 * 3600)
        assert done.returncode == 0 and result.is_file(), (
            f"executing {path} failed outside the notebook ({done.returncode}):\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-4000:]}")
        return load_result(out, result)

    def solved_release(self, name: str) -> Task:
        """Return the task of a copy of ``name``'s release with every reference answer pasted in (course/solved/)."""
        def make() -> Path:
            import submissions as sub

            course = self.course(name).result()
            folder = course / "solved" / name
            shutil.copytree(release_dir(course, name), folder)
            answers = sub.reference_answers(course / "source" / name)
            for path in sorted(folder.glob("*.ipynb")):
                nb = nbformat.read(path, as_version=4)
                for gid, source in answers.get(path.stem, {}).items():
                    sub.find_cell(nb, gid).source = source
                nbformat.write(nb, path)
            return folder

        return self.task(("solved", name), make)

    def validation(self, name: str, which: str, stem: str) -> Task:
        """Return the task of validating one notebook of ``name``'s release, "untouched" or "solved".

        Its result is support/validate.py's record for that notebook: Validate's verdict, the executed
        notebook, the inverted verdict and the text of `nbgrader validate --invert` (one execution).
        """
        assert which in ("untouched", "solved"), which

        def validate() -> dict:
            course = self.course(name).result()
            folder = release_dir(course, name) if which == "untouched" else self.solved_release(name).result()
            path = folder / f"{stem}.ipynb"
            out = self.base / "validated" / f"{name}-{which}-{stem}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            done = self.run([sys.executable, str(HERE / "validate.py"), str(out), str(path)], cwd=course,
                            env=env_for(course, self.env), timeout=3600)
            assert done.returncode == 0 and out.is_file(), (
                f"the validator crashed on {which} {name}/{stem}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
            import json

            return json.loads(out.read_text())[str(path)]

        return self.task(("validate", name, which, stem), validate)

    def validations(self, name: str, which: str, stems: list[str]) -> dict[str, dict]:
        """Return {stem: validation record} for several notebooks (queued together, so two can run at once)."""
        tasks = {stem: self.validation(name, which, stem) for stem in stems}
        for task in tasks.values():
            self.prefetch(task)
        return {stem: task.result() for stem, task in tasks.items()}
