"""Parallel autograding: one `nbgrader autograde --student ID` process per submission, run concurrently.

Each submission is graded by nbgrader itself, in the course root, against the shared sqlite gradebook,
so formgrader, feedback and export see what a sequential ``nbgrader autograde`` would have written.
This module adds what nbgrader lacks: a pool (threads here, or Dask workers), a wall-time limit per
submission, retries on "database is locked", the sandboxed kernel (see ``course_tools.sandbox``), a
progress bar, a results file and a summary table.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import sandbox
from .environment import nbgrader_env

STATE_DIR = ".course-grade"  # under autograded/: logs and results (dot name: nbgrader's globs skip it)
LOCKED = "database is locked"
INFRA = "error"  # status of a submission whose sandbox could not be built: not run, grade it again
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


@dataclass
class GradeOptions:
    """How to grade: limits, sandbox mode, retries, and what to pass to nbgrader."""

    force: bool = False
    timeout: float = 1800.0
    sandbox: str = "auto"  # "auto": isolate where possible; "strict": refuse otherwise; "off": plain kernel
    memory: int = 6 * 2**30  # per submission (cgroup) and per process (address space)
    cpu: int = 1800
    fsize: int = 256 * 2**20
    pids: int = 256  # processes + threads per submission
    cpus: float | None = None  # CPU quota per submission; None: CPUs / workers when grading locally
    isolate: bool | None = None  # the probe's verdict: True promises isolation (fail closed); None: probe here
    cgroups: bool | None = None  # per-submission cgroups usable (probe); None: probe here
    kernel_threads: int | None = None
    retries: int = 4
    network: bool = False
    gpu: bool = True  # bind the host's GPU device nodes into sandboxed kernels
    expose: list[str] = field(default_factory=list)
    nbgrader_args: list[str] = field(default_factory=list)


@dataclass
class Result:
    """The outcome of grading one submission."""

    student: str
    status: str  # ok | skipped | failed | timeout | error (sandbox could not be built: not run)
    seconds: float = 0.0
    returncode: int | None = None
    attempts: int = 0
    log: str = ""
    message: str = ""
    score: float | None = None
    max_score: float | None = None
    events: list[dict] = field(default_factory=list)  # course_tools.preprocessors events of this submission


def students(root: Path, assignment: str) -> list[str]:
    """Return the students with a submission of ``assignment`` under submitted/."""
    return sorted(p.parent.name for p in (root / "submitted").glob(f"*/{assignment}") if p.is_dir())


def _timestamp(path: Path) -> str | None:
    """Return the stripped content of ``path/timestamp.txt`` if present."""
    stamp = path / "timestamp.txt"
    return stamp.read_text().strip() if stamp.is_file() else None


def is_done(root: Path, assignment: str, student: str) -> bool:
    """Return whether nbgrader would skip this submission (autograded and not resubmitted since)."""
    src = root / "submitted" / student / assignment
    dest = root / "autograded" / student / assignment
    if not dest.is_dir() or any(not (dest / nb.name).exists() for nb in src.glob("*.ipynb")):
        return False
    new, old = _timestamp(src), _timestamp(dest)
    if new and old:
        from nbgrader.utils import parse_utc

        return parse_utc(new) <= parse_utc(old)
    return True


def share_readable(directory: Path) -> int:
    """Make a model cache readable by the sandbox's unprivileged kernels (o+r, dirs o+rx); return files changed."""
    changed = 0
    if not directory.is_dir():
        return 0
    for path in [directory, *directory.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        want = mode | (0o005 if path.is_dir() else 0o004)
        if want != mode:
            path.chmod(want)
            changed += 1
    return changed


def _kernel_uid() -> int:
    """Return a uid for one submission's kernels, unique among submissions graded at once on this host."""
    with _uid_lock:
        n = next(_uid_counter) % 1000
    return sandbox.UID_BASE + 1_000_000 + (os.getpid() % 100_000) * 1000 + n


@dataclass
class SandboxRun:
    """One submission's sandbox as the grader holds it: nbgrader arguments, cgroup, failure report."""

    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    uid: int | None = None
    cgroup: "sandbox.Cgroup | None" = None
    report: Path | None = None

    def end(self) -> None:
        """Kill every process the submission left (its cgroup, else its uid)."""
        if self.cgroup is not None:
            self.cgroup.kill()
        elif self.uid is not None:
            sandbox.kill_uid(self.uid)

    def failures(self) -> list[dict]:
        """Return the wrapper's records of sandbox steps that failed (the kernel was then not started)."""
        return sandbox.read_failures(self.report) if self.report else []


def decide_isolation(opts: GradeOptions) -> None:
    """Fill opts.isolate and opts.cgroups from this machine's probe when the caller has not."""
    if opts.sandbox == "off" or (opts.isolate is not None and opts.cgroups is not None):
        return
    report = sandbox.probe()
    if opts.isolate is None:
        opts.isolate = bool(report.get("isolation")) or opts.sandbox == "strict"
    if opts.cgroups is None:
        opts.cgroups = bool(report.get("cgroups"))


def sandbox_setup(tmp: Path, root: Path, opts: GradeOptions, student: str = "", assignment: str = "") -> SandboxRun:
    """Make the submission's cgroup and write its policy and kernelspec under ``tmp``; raise SandboxError."""
    if opts.sandbox == "off":
        return SandboxRun()
    decide_isolation(opts)
    uid = _kernel_uid() if os.geteuid() == 0 else None
    limits = sandbox.Limits(memory=opts.memory, cpu_seconds=opts.cpu, fsize=opts.fsize, pids=opts.pids,
                            cpus=opts.cpus or 0.0)
    run = SandboxRun(uid=uid, report=tmp / "sandbox-failures.jsonl")
    if opts.cgroups:
        run.cgroup = sandbox.Cgroup.create(f"{os.getpid()}-{tmp.name}", limits)
    conn, sock = tmp / "conn", tmp / "sock"
    conn.mkdir(mode=0o700)
    sock.mkdir(mode=0o700)
    if uid is not None:
        os.chown(sock, uid, uid)
    submitted = root / "submitted" / student / assignment if student and assignment else None
    policy = sandbox.make_policy(root, limits, uid=uid, socket_dir=sock, submitted_dir=submitted, report=run.report,
                                 isolate=bool(opts.isolate), network=opts.network,
                                 expose=[Path(p) for p in opts.expose], cgroup=run.cgroup, gpu=opts.gpu)
    sandbox.write_kernelspec(tmp / "jupyter", policy)
    run.args = [f"--Execute.kernel_name={sandbox.KERNEL_NAME}", "--KernelManager.transport=ipc",
                f"--KernelManager.connection_file={conn / 'kernel.json'}", f"--KernelManager.ip={sock / 'kernel'}"]
    run.env = {"JUPYTER_PATH": os.pathsep.join(filter(None, [str(tmp / "jupyter"), os.environ.get("JUPYTER_PATH")]))}
    return run


def _run(cmd: list[str], root: Path, env: dict[str, str], log: Path, timeout: float) -> tuple[int | None, bool]:
    """Run ``cmd`` in its own session with output to ``log``; return (returncode, timed_out)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            return proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            return None, True


def grade_one(root: str | Path, assignment: str, student: str, opts: GradeOptions) -> Result:
    """Autograde one submission with nbgrader in a subprocess, under limits; never raises."""
    root = Path(root).resolve()
    start = time.perf_counter()
    state = root / "autograded" / STATE_DIR / assignment
    state.mkdir(parents=True, exist_ok=True)
    log = state / f"{student}.log"
    log.write_text("")
    result = Result(student, "failed", log=str(log))
    try:
        with tempfile.TemporaryDirectory(prefix="course-grade-") as tmpdir:
            tmp = Path(tmpdir)
            try:
                box = sandbox_setup(tmp, root, opts, student, assignment)
            except (sandbox.SandboxError, OSError) as err:  # fail closed: nothing of the submission runs
                result.status, result.message = INFRA, f"sandbox setup: {err}"
                result.seconds = time.perf_counter() - start
                return result
            try:
                _grade_attempts(root, assignment, student, opts, box, log, result, start)
            finally:
                box.end()  # whatever the submission left running
                if box.cgroup is not None:
                    box.cgroup.remove()
    except Exception as err:  # noqa: BLE001 - one bad submission must never abort the batch
        result.status, result.message = "failed", f"{type(err).__name__}: {err}"
    result.seconds = time.perf_counter() - start
    return result


def _grade_attempts(root: Path, assignment: str, student: str, opts: GradeOptions, box: SandboxRun, log: Path,
                    result: Result, start: float) -> None:
    """Run nbgrader for one submission (retrying on a locked gradebook) and fill ``result``."""
    env = nbgrader_env(**box.env, PYTHONUNBUFFERED="1")
    if opts.kernel_threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, str(opts.kernel_threads))
    force = opts.force
    for attempt in range(1, opts.retries + 2):
        cmd = [sys.executable, "-m", "course_tools.nbgrader_main", "autograde", assignment,
               "--student", student, *(["--force"] if force else []), *box.args, *opts.nbgrader_args]
        remaining = opts.timeout - (time.perf_counter() - start)
        rc, timed_out = _run(cmd, root, env, log, max(remaining, 1.0))
        box.end()
        result.attempts, result.returncode = attempt, rc
        failures = box.failures()
        if failures:  # a sandbox step failed: that kernel never started; no score from this run counts
            result.status = INFRA
            result.message = "sandbox: " + "; ".join(f"{f['stage']}: {f['reason']}" for f in failures[-1:])
            shutil.rmtree(root / "autograded" / student / assignment, ignore_errors=True)
            return
        if timed_out:
            result.status = "timeout"
            result.message = f"killed after {opts.timeout:.0f} s"
            shutil.rmtree(root / "autograded" / student / assignment, ignore_errors=True)
            return
        text = log.read_text(errors="replace")
        if rc == 0:
            result.status = "ok"
            return
        if LOCKED in text and attempt <= opts.retries:
            force = True  # a half-written result must be redone
            time.sleep(random.uniform(0.5, 2.0) * attempt)
            continue
        result.message = _last_error(text)
        return


def _last_error(text: str) -> str:
    """Return the most informative error line of an nbgrader log."""
    lines = [ln.strip() for ln in text.splitlines() if "[ERROR]" in ln or "Error" in ln]
    interesting = [ln for ln in lines if "There was an error processing" not in ln and "Please see" not in ln]
    return (interesting or lines or ["nbgrader failed (see log)"])[-1][-300:]


def add_scores(root: Path, assignment: str, results: list[Result]) -> None:
    """Fill score and max_score of each result from the nbgrader gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url(root)) as gb:
        for r in results:
            if r.status == INFRA:  # not graded: whatever the gradebook holds is not this run's
                r.score, r.max_score = None, None
                continue
            try:
                sub = gb.find_submission(assignment, r.student)
                r.score, r.max_score = sub.score, sub.max_score
            except MissingEntry:
                r.score, r.max_score = None, None


def db_url(root: Path) -> str:
    """Return the gradebook URL of the course (nbgrader's default location under the root)."""
    return f"sqlite:///{root / 'gradebook.db'}"


def _progress(total: int, desc: str):
    """Return a tqdm progress bar on stderr."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sub", file=sys.stderr, dynamic_ncols=True)


def grade_all(root: Path, assignment: str, opts: GradeOptions, workers: int = 1, scheduler: str | None = None,
              only: list[str] | None = None) -> list[Result]:
    """Grade every (or each named) submission concurrently; return one result per student, scores filled."""
    root = Path(root).resolve()
    everyone = only or students(root, assignment)
    todo = [s for s in everyone if opts.force or not is_done(root, assignment, s)]
    results = [Result(s, "skipped", message="already autograded (use --force)") for s in everyone if s not in todo]
    decide_isolation(opts)  # once, here: the promise each submission's sandbox must keep
    if opts.sandbox != "off" and todo:
        sandbox.font_cache(sandbox.course_settings(root)[0], build=True)  # copied into each kernel's home
    if scheduler:
        results += _grade_dask(root, assignment, todo, opts, scheduler)
    else:
        if opts.kernel_threads is None:
            opts.kernel_threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        if opts.cpus is None:  # each submission's cgroup gets its fair part of this machine's CPUs
            opts.cpus = max(0.1, (os.cpu_count() or 1) / max(1, workers))
        results += _grade_local(root, assignment, todo, opts, workers)
    results.sort(key=lambda r: r.student)
    add_scores(root, assignment, results)
    add_events(root, assignment, results)
    save_results(root, assignment, results)
    return results


def _grade_local(root: Path, assignment: str, todo: list[str], opts: GradeOptions, workers: int) -> list[Result]:
    """Grade ``todo`` on this machine with a pool of ``workers`` threads, each driving one nbgrader."""
    done = []
    with _progress(len(todo), f"grading {assignment}") as bar, ThreadPoolExecutor(max(1, workers)) as pool:
        futures = [pool.submit(grade_one, root, assignment, s, opts) for s in todo]
        for fut in as_completed(futures):
            r = fut.result()
            done.append(r)
            bar.set_postfix_str(f"{r.student}: {r.status}")
            bar.update()
    return done


def _grade_dask(root: Path, assignment: str, todo: list[str], opts: GradeOptions, address: str) -> list[Result]:
    """Grade ``todo`` on the workers of the Dask scheduler at ``address`` (shared file system)."""
    from distributed import Client
    from distributed import as_completed as dask_completed

    done = []
    with Client(address, timeout=30) as client, _progress(len(todo), f"grading {assignment} on {address}") as bar:
        futures = {client.submit(grade_one, str(root), assignment, s, opts, pure=False,
                                 key=f"grade-{assignment}-{s}-{time.time_ns()}"): s for s in todo}
        for fut in dask_completed(futures):
            try:
                r = fut.result()
            except Exception as err:  # noqa: BLE001 - a lost worker becomes a failed result
                r = Result(futures[fut], "failed", message=f"dask: {type(err).__name__}: {err}")
            done.append(r)
            bar.set_postfix_str(f"{r.student}: {r.status}")
            bar.update()
    return done


def save_results(root: Path, assignment: str, results: list[Result]) -> Path:
    """Merge ``results`` into autograded/.course-grade/<assignment>/results.json; return its path."""
    path = root / "autograded" / STATE_DIR / assignment / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path.read_text()) if path.is_file() else {}
    for r in results:
        if r.status != "skipped" or r.student not in old:
            old[r.student] = asdict(r)
        else:
            old[r.student].update(score=r.score, max_score=r.max_score)
    path.write_text(json.dumps(old, indent=1, sort_keys=True))
    return path


def add_events(root: Path, assignment: str, results: list[Result]) -> None:
    """Attach each submission's grading events (restored tests, edited cells, ...) and missing notebooks."""
    from .preprocessors import missing_notebooks, read_events

    for r in results:
        r.events = read_events(root, assignment, r.student) + missing_notebooks(root, assignment, r.student)


def shown_status(r: Result) -> str:
    """Return the status to show: "needs attention" for a graded submission a human must look at."""
    from .preprocessors import needs_attention

    return "needs attention" if r.status == "ok" and needs_attention(r.events) else r.status


def summary_table(results: list[Result]) -> str:
    """Return the summary as a plain-text table: student, score, max, status, seconds, note (events)."""
    from .preprocessors import describe

    fmt = lambda x: "-" if x is None else f"{x:g}"  # noqa: E731
    rows = [("student", "score", "max", "status", "seconds", "note")]
    rows += [(r.student, fmt(r.score), fmt(r.max_score), shown_status(r), f"{r.seconds:.1f}",
              "; ".join(filter(None, [r.message[:70], describe(r.events)])))
             for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:5], widths)) + ("  " + row[5] if row[5] else "")
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts = {s: sum(shown_status(r) == s for r in results)
              for s in ("ok", "needs attention", "skipped", "failed", "timeout", INFRA)}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(lines)


def gradebook_rows(root: Path, assignment: str) -> list[tuple]:
    """Return every grade of ``assignment`` as (student, notebook, cell, auto, manual, extra, needs_manual, comment)."""
    import sqlite3

    con = sqlite3.connect(f"file:{root / 'gradebook.db'}?mode=ro", uri=True)
    try:
        rows = con.execute("""
            SELECT sa.student_id, nb.name, bc.name, g.auto_score, g.manual_score, g.extra_credit,
                   g.needs_manual_grade, c.auto_comment
            FROM grade g
            JOIN submitted_notebook sn ON g.notebook_id = sn.id
            JOIN submitted_assignment sa ON sn.assignment_id = sa.id
            JOIN assignment a ON sa.assignment_id = a.id
            JOIN notebook nb ON sn.notebook_id = nb.id
            JOIN base_cell bc ON g.cell_id = bc.id
            LEFT JOIN comment c ON c.notebook_id = sn.id AND c.cell_id = g.cell_id
            WHERE a.name = ?""", (assignment,)).fetchall()
    finally:
        con.close()
    return sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r))


def normalized_notebook(path: Path) -> list[tuple]:
    """Return an autograded notebook's cells (type, source, outputs, nbgrader metadata) without timestamps."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        outputs = []
        for out in cell.get("outputs", []):
            out = {k: v for k, v in out.items() if k != "execution_count"}
            outputs.append(json.dumps(out, sort_keys=True))
        cells.append((cell.cell_type, cell.source, tuple(outputs), json.dumps(cell.metadata.get("nbgrader", {}),
                                                                             sort_keys=True)))
    return cells
