"""The session's shared runs (tests/support/jobs.py): computed once, by whoever needs them first, errors
handed to every test that asks, child processes stopped at the end, executions keyed on what decides them."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from support.jobs import Jobs, Task
from support.notebooks import execution_key


def test_a_task_is_computed_once_for_every_thread_that_asks():
    calls = []

    def compute():
        calls.append(threading.current_thread().name)
        time.sleep(0.2)
        return len(calls)

    task = Task(compute)
    results = []
    threads = [threading.Thread(target=lambda: results.append(task.result())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [1, 1, 1, 1] and len(calls) == 1


def test_an_error_reaches_every_test_that_asks():
    task = Task(lambda: 1 / 0)
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            task.result()


def test_prefetched_tasks_run_in_the_background_and_unstarted_ones_in_the_caller(tmp_path):
    jobs = Jobs(tmp_path, workers=1)
    try:
        gate = threading.Event()
        slow = jobs.task("slow", lambda: gate.wait(10) and threading.current_thread().name)
        queued = jobs.task("queued", lambda: threading.current_thread().name)
        jobs.prefetch(slow)
        jobs.prefetch(queued)
        time.sleep(0.2)
        assert slow.started and not queued.started  # the one worker is busy with the first
        assert queued.result() == threading.current_thread().name  # not left waiting in the queue: run here
        gate.set()
        assert slow.result() == "jobs-0"
        assert jobs.task("slow", lambda: "never") is slow  # one task per key
    finally:
        jobs.close()


def test_close_stops_a_running_child_process(tmp_path):
    jobs = Jobs(tmp_path, workers=1)
    task = jobs.task("sleep", lambda: jobs.run([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path,
                                               env={}, timeout=120))
    jobs.prefetch(task)
    deadline = time.time() + 10
    while not jobs.procs and time.time() < deadline:
        time.sleep(0.05)
    start = time.perf_counter()
    jobs.close()
    assert task.done.wait(10) and time.perf_counter() - start < 10
    assert task.value.returncode != 0  # terminated, not finished
    with pytest.raises(RuntimeError, match="over"):
        jobs.run([sys.executable, "-c", "pass"], cwd=tmp_path, env={}, timeout=10)


def test_execution_key_follows_content_folder_and_environment(tmp_path):
    path = tmp_path / "a.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), path)
    base = {"HF_HUB_OFFLINE": "1", "HOME": "/x"}
    key = execution_key(path, base=base)
    assert execution_key(path, base={**base, "HOME": "/y"}) == key  # what does not matter to a notebook
    assert execution_key(path, {"NBGRADER_EXECUTION": "autograde"}, base=base) != key
    assert execution_key(path, base={**base, "OMP_NUM_THREADS": "4"}) != key
    assert execution_key(path, base={**base, "LLM_COURSE_CACHE_DIR": "/c"}) != key
    assert execution_key(path, cwd=tmp_path.parent, base=base) != key
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("2")]), path)
    assert execution_key(path, base=base) != key


@pytest.mark.slow
def test_a_notebook_is_executed_once_in_a_child_process(tmp_path):
    """Two asks, one execution (the kernel's pid is the same); the first error comes back as nbclient's."""
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os\nprint(os.getpid())"),
                                                   nbformat.v4.new_code_cell("1 / 0")]), path)
    jobs = Jobs(tmp_path / "jobs", workers=1)
    try:
        first, second = jobs.execution(path).result(), jobs.execution(Path(str(path))).result()
        assert first is second
        assert first.nb.cells[0].outputs[0]["text"].strip().isdigit()
        assert first.error is not None and first.error.ename == "ZeroDivisionError"
        assert "ZeroDivisionError" in str(first.error)
        assert jobs.execution(path, env={"SOMETHING": "else"}) is not jobs.execution(path)
    finally:
        jobs.close()
