"""Parallel autograding: one `nbgrader autograde --student ID` process per submission, run concurrently.

Each submission is graded by nbgrader itself, in the course root, against the shared sqlite gradebook,
so formgrader, feedback and export see what a sequential ``nbgrader autograde`` would have written.
This module adds what nbgrader lacks: a pool (threads here, or Dask workers), a wall-time limit per
submission, retries on "database is locked", the sandboxed kernel (see ``course_tools.sandbox``), a
progress bar, a results file and a summary table.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import re
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


def _released_checksums(root: Path, path: Path) -> dict[str, str]:
    """Return {grade_id: checksum} of a source notebook as `course release` would record it in the gradebook.

    nbgrader computes the checksums right after clearing the solutions (ClearSolutions, with the
    course's stubs); nothing before that step changes a graded cell in this course.
    """
    import nbformat
    from nbgrader.preprocessors import ClearSolutions
    from nbgrader.utils import compute_checksum, is_grade, is_locked, is_solution
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    nb, _ = ClearSolutions(config=config).preprocess(nbformat.read(path, as_version=4), {})
    return {c.metadata.nbgrader["grade_id"]: compute_checksum(c) for c in nb.cells
            if is_grade(c) or is_solution(c) or is_locked(c)}


def preconditions(root: Path, assignment: str) -> str | None:
    """Return why ``assignment`` cannot be graded yet, as one line naming the command to run, or None.

    Checked once, before any worker starts: the gradebook exists (nbgrader would otherwise create it
    in every worker at once) and is at nbgrader's schema version, the assignment was released into
    it, and source/ still says what the gradebook holds (grading would otherwise run the old tests).
    """
    import sqlite3

    source = root / "source" / assignment
    notebooks = sorted(source.glob("*.ipynb"))
    if not notebooks:
        known = sorted(p.name for p in (root / "source").glob("*") if p.is_dir() and not p.name.startswith("."))
        return f"no notebooks in source/{assignment} (assignments: {', '.join(known) or 'none'})"
    release = f"run `course release {assignment}` in {root} first"
    db = root / "gradebook.db"
    if not db.is_file():
        return f"no gradebook yet ({db}): {release}"
    from alembic.script import ScriptDirectory
    from nbgrader import dbutil

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        version = con.execute("SELECT version_num FROM alembic_version").fetchone()
        released = con.execute("SELECT nb.name, sc.name, sc.checksum FROM source_cell sc JOIN notebook nb "
                               "ON sc.notebook_id = nb.id JOIN assignment a ON nb.assignment_id = a.id "
                               "WHERE a.name = ?", (assignment,)).fetchall()
        names = {n for (n,) in con.execute("SELECT nb.name FROM notebook nb JOIN assignment a "
                                             "ON nb.assignment_id = a.id WHERE a.name = ?", (assignment,))}
    except sqlite3.Error as err:
        return f"the gradebook {db} cannot be read ({err}): run `nbgrader db upgrade` in {root}"
    finally:
        con.close()
    head = ScriptDirectory(dbutil.ALEMBIC_DIR).get_current_head()
    if not version or version[0] != head:
        return (f"the gradebook {db} is at schema {version[0] if version else 'none'}, nbgrader needs {head}: "
                f"back it up, then run `nbgrader db upgrade` in {root}")
    if not names:
        return f"{assignment} was never released into the gradebook: {release}"
    if names != {p.stem for p in notebooks}:
        return (f"source/{assignment} holds {', '.join(sorted(p.stem for p in notebooks))} but the gradebook "
                f"{', '.join(sorted(names))}: {release.replace(' first', ' again')}")
    for path in notebooks:
        now = _released_checksums(root, path)
        then = {cell: checksum for nb, cell, checksum in released if nb == path.stem}
        changed = sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k))
        if changed:
            return (f"source/{assignment}/{path.name} changed since it was released (cells "
                    f"{', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}): "
                    f"{release.replace(' first', ' again')}")
    from . import checks  # the grader compares answers with these: missing or stale ones would fail everyone

    stale = checks.stale_notebooks(root, assignment)
    if stale:
        return (f"the hidden checks' recorded answers of {', '.join(stale)} are missing or older than source/"
                f"{assignment} ({checks.EXPECTED_DIR}/{assignment}): run `course record {assignment}` in {root}")
    return None


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
    if opts.sandbox == "off":  # no isolation, no cgroups; as root the kernel still gets a uid of its own
        opts.isolate, opts.cgroups = False, False
        return
    if opts.isolate is not None and opts.cgroups is not None:
        return
    report = sandbox.probe()
    if opts.isolate is None:
        opts.isolate = bool(report.get("isolation")) or opts.sandbox == "strict"
    if opts.cgroups is None:
        opts.cgroups = bool(report.get("cgroups"))


def sandbox_setup(tmp: Path, root: Path, opts: GradeOptions, student: str = "", assignment: str = "") -> SandboxRun:
    """Make the submission's cgroup and write its policy and kernelspec under ``tmp``; raise SandboxError.

    Student code never runs as root: as root, every mode (``--sandbox off`` included) starts the kernel
    through the wrapper with a uid of its own; only ``off`` without root uses the plain python3 kernel.
    """
    if opts.sandbox == "off" and os.geteuid() != 0:
        return SandboxRun()
    decide_isolation(opts)
    uid = _kernel_uid() if os.geteuid() == 0 else None
    off = opts.sandbox == "off"
    limits = sandbox.Limits(memory=0, cpu_seconds=0, fsize=0, pids=0) if off else \
        sandbox.Limits(memory=opts.memory, cpu_seconds=opts.cpu, fsize=opts.fsize, pids=opts.pids,
                       cpus=opts.cpus or 0.0)
    run = SandboxRun(uid=uid, report=tmp / "sandbox-failures.jsonl")
    if uid is not None:
        tmp.chmod(0o711)  # the kernel's uid passes through to its socket folder; it cannot list or read the rest
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
    if not opts.isolate and not off:
        policy.hide = [str(root)]  # limits only: the course root (source/, gradebook, submissions) stays out of sight
    sandbox.write_kernelspec(tmp / "jupyter", policy)
    run.args = [f"--Execute.kernel_name={sandbox.KERNEL_NAME}", "--KernelManager.transport=ipc",
                f"--KernelManager.connection_file={conn / 'kernel.json'}", f"--KernelManager.ip={sock / 'kernel'}"]
    run.env = {"JUPYTER_PATH": os.pathsep.join(filter(None, [str(tmp / "jupyter"), os.environ.get("JUPYTER_PATH")]))}
    return run


PREFLIGHT = """import json, os, sys
import ipykernel, helpers
visible = os.path.exists(os.path.join(sys.argv[1], "nbgrader_config.py"))
print(json.dumps({"uid": os.getuid(), "course_visible": visible}))
"""


def preflight(root: Path, opts: GradeOptions) -> tuple[str | None, str]:
    """Start the kernel wrapper once, as grading will, on a script that imports what a kernel needs.

    Returns (why kernels cannot be started here, in one line, or None; a note on what they can see).
    Run where kernels are not isolated and a uid of their own is taken (as root): that uid must reach
    the interpreter, which a private home (a pyenv build in /root) can keep from it.
    """
    with tempfile.TemporaryDirectory(prefix="course-preflight-") as tmpdir:
        tmp = Path(tmpdir)
        box = sandbox_setup(tmp, root, dataclasses.replace(opts, cgroups=False))
        argv = json.loads((tmp / "jupyter" / "kernels" / sandbox.KERNEL_NAME / "kernel.json").read_text())["argv"]
        cut = argv.index("--") + 1
        work = tmp / "work"
        work.mkdir()
        try:
            done = subprocess.run([*argv[:cut], argv[cut], "-c", PREFLIGHT, str(root)], cwd=work, env=nbgrader_env(),
                                  capture_output=True, text=True, timeout=300)
        finally:
            box.end()
        failures = box.failures()
    if failures:
        return failures[-1]["reason"], ""
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        error = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"kernels cannot start as uid {box.uid}: {error}", ""
    seen = json.loads(lines[-1])
    if seen["uid"] == 0:
        return "refusing to grade: a kernel would run as root", ""
    if opts.sandbox == "off":
        return None, (f"kernels run as uid {seen['uid']}+ (never root), with no limits; they may read what that uid "
                      "may (the course root included: source/ with the hidden tests, the gradebook, other "
                      "submissions), write nothing of the course, and use the network")
    hidden = "hidden from them" if not seen["course_visible"] else \
        "NOT hidden from them (no mount namespace here): they may read source/ and other submissions"
    return None, f"kernels run as uid {seen['uid']}+ (never root) with per-process limits; the course root is {hidden}"


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


def _autograde(root: Path, assignment: str, student: str, opts: GradeOptions, box: SandboxRun, env: dict[str, str],
               log: Path, force: bool, extra: list[str], deadline: float) -> tuple[int | None, bool, str, int]:
    """Run nbgrader autograde (retried on a locked gradebook) until ``deadline``; return (returncode, timed out,
    the log of the last attempt, attempts)."""
    for attempt in range(1, opts.retries + 2):
        cmd = [sys.executable, "-m", "course_tools.nbgrader_main", "autograde", assignment, "--student", student,
               *(["--force"] if force else []), *extra, *box.args, *opts.nbgrader_args]
        offset = log.stat().st_size
        rc, timed_out = _run(cmd, root, env, log, max(deadline - time.perf_counter(), 1.0))
        box.end()
        text = log.read_bytes()[offset:].decode(errors="replace")
        if box.failures() or timed_out or rc == 0 or LOCKED not in text or attempt > opts.retries:
            return rc, timed_out, text, attempt
        force = True  # a half-written result must be redone
        time.sleep(random.uniform(0.5, 2.0) * attempt)
    raise AssertionError("unreachable")


def _sandbox_failed(root: Path, assignment: str, student: str, box: SandboxRun, result: Result) -> bool:
    """Record an infrastructure error when a sandbox step failed (that kernel never started); return whether."""
    failures = box.failures()
    if failures:  # no score from this run counts
        result.status = INFRA
        result.message = "sandbox: " + "; ".join(f"{f['stage']}: {f['reason']}" for f in failures[-1:])
        shutil.rmtree(root / "autograded" / student / assignment, ignore_errors=True)
    return bool(failures)


def _grade_attempts(root: Path, assignment: str, student: str, opts: GradeOptions, box: SandboxRun, log: Path,
                    result: Result, start: float) -> None:
    """Run nbgrader for one submission and fill ``result``; when a notebook of it crashes, hangs or is killed,
    grade its notebooks one by one so that only that notebook is lost (see ``_grade_notebooks``)."""
    env = nbgrader_env(**box.env, PYTHONUNBUFFERED="1")
    if opts.kernel_threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, str(opts.kernel_threads))
    # A submission graded only in part before (a notebook that failed) is graded again from scratch.
    partial = (root / "autograded" / student / assignment).is_dir() and not is_done(root, assignment, student)
    force = opts.force or partial
    rc, timed_out, text, result.attempts = _autograde(root, assignment, student, opts, box, env, log, force, [],
                                                      start + opts.timeout)
    result.returncode = rc
    if _sandbox_failed(root, assignment, student, box, result):
        return
    if rc == 0 and not timed_out:
        result.status = "ok"
        return
    culprit = _culprit(text)
    if culprit is None:  # not a notebook's doing (the gradebook, nbgrader itself): the submission fails
        result.status = "timeout" if timed_out else "failed"
        result.message = f"killed after {opts.timeout:.0f} s" if timed_out else _last_error(text)
        if timed_out:
            shutil.rmtree(root / "autograded" / student / assignment, ignore_errors=True)
        return
    _grade_notebooks(root, assignment, student, opts, box, env, log, result, culprit if timed_out else None)


def _culprit(text: str) -> str | None:
    """Return the notebook nbgrader was sanitizing or executing when it stopped (from its log), or None."""
    found = re.findall(r"\| INFO\] (?:Sanitizing|Autograding) (.+?)\.ipynb\s*$", text, re.MULTILINE)
    return Path(found[-1]).name if found else None


def _grade_notebooks(root: Path, assignment: str, student: str, opts: GradeOptions, box: SandboxRun,
                     env: dict[str, str], log: Path, result: Result, hung: str | None) -> None:
    """Grade each notebook of a submission on its own (``--notebook``), each within --timeout; record the ones
    that fail (score 0 for their cells, an event each) and keep the others' grades.

    ``hung`` is the notebook that used up the submission's wall time: it is recorded, not run again.
    Notebooks already autograded by the submission's own run (before a hang) are kept as they are.
    """
    known = {p.stem for p in (root / "source" / assignment).glob("*.ipynb")}
    notebooks = sorted(p.stem for p in (root / "submitted" / student / assignment).glob("*.ipynb") if p.stem in known)
    failed: dict[str, tuple[str, str]] = {}
    if hung is not None:
        failed[hung] = ("notebook-timeout", f"killed after {opts.timeout:.0f} s of wall time")
    for nb in notebooks:
        if nb in failed:
            continue
        rc, timed_out, text, _ = _autograde(root, assignment, student, opts, box, env, log, False, ["--notebook", nb],
                                            time.perf_counter() + opts.timeout)
        if _sandbox_failed(root, assignment, student, box, result):
            return
        if timed_out:
            failed[nb] = ("notebook-timeout", f"killed after {opts.timeout:.0f} s of wall time")
        elif rc != 0:
            failed[nb] = ("notebook-failed", _last_error(text))
    dest = root / "autograded" / student / assignment
    for nb in failed:  # a hung notebook leaves its sanitized, unexecuted copy: not a graded notebook
        (dest / f"{nb}.ipynb").unlink(missing_ok=True)
    graded = [nb for nb in notebooks if nb not in failed and (dest / f"{nb}.ipynb").is_file()]
    _record_failed_notebooks(root, assignment, student, failed)
    result.message = "; ".join(f"{nb}.ipynb: {why}" for nb, (_, why) in sorted(failed.items()))
    if graded:
        result.status = "ok"  # shown as "needs attention": the failed notebooks carry attention events
    else:
        result.status = "timeout" if all(kind == "notebook-timeout" for kind, _ in failed.values()) else "failed"
        shutil.rmtree(dest, ignore_errors=True)


def _record_failed_notebooks(root: Path, assignment: str, student: str, failed: dict[str, tuple[str, str]]) -> None:
    """Give every cell of each failed notebook 0 points (as nbgrader does for a notebook not handed in) and
    add an attention event saying why, next to the repairs recorded while it was sanitized."""
    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import OperationalError

    from .preprocessors import _write_events, events_path

    if not failed:
        return
    for attempt in range(5):
        try:
            with Gradebook(db_url(root)) as gb:
                for nb in failed:
                    try:
                        sub = gb.find_submission_notebook(nb, assignment, student)
                    except MissingEntry:
                        continue
                    for grade in sub.grades:
                        grade.auto_score, grade.needs_manual_grade = 0, False
                gb.db.commit()
            break
        except OperationalError:  # "database is locked" by a neighbour: try again
            time.sleep(random.uniform(0.5, 2.0) * (attempt + 1))
    try:
        recorded = json.loads(events_path(root, assignment, student).read_text())
    except (OSError, ValueError):
        recorded = {}
    for nb, (kind, why) in failed.items():
        events = [e for e in recorded.get(nb, []) if e.get("kind") not in ("notebook-failed", "notebook-timeout")]
        events.append({"notebook": nb, "cell": None, "kind": kind, "level": "attention",
                       "message": f"{nb}.ipynb could not be graded ({why}): its cells score 0"})
        _write_events(root, assignment, student, nb, events)


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
    from .collect import check_student_id

    for s in list(todo):  # a folder under submitted/ becomes a gradebook id: the same rule as `course collect`
        bad = check_student_id(s)
        if bad:
            todo.remove(s)
            results.append(Result(s, INFRA, message=f"not graded: {bad}; rename submitted/{s}"))
    decide_isolation(opts)  # once, here: the promise each submission's sandbox must keep
    if todo and os.geteuid() == 0 and not opts.isolate:
        problem, note = preflight(root, opts)
        print(f"course grade: {problem or note}", file=sys.stderr)
        if problem:
            results += [Result(s, INFRA, message=problem) for s in todo]
            todo = []
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
              "; ".join(filter(None, [r.message if r.status == INFRA else r.message[:200], describe(r.events)])))
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
