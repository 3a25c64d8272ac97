"""The instructor tooling: parallel and Dask grading, and the kernel sandbox.

Everything runs on a tiny throw-away course (tests/fixtures/tiny_course.py) in a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from course_tools import cli, grade, sandbox
from support.cli import course as run_course
from support.grading import auto_scores, outputs

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import tiny_course as tc  # noqa: E402

PROBE = sandbox.probe()
ISOLATED = bool(PROBE.get("isolation"))
NEEDS_ISOLATION = pytest.mark.skipif(not ISOLATED, reason=f"kernel isolation not enforceable here: {PROBE}")

BROKEN = {"one": {"double": "def double(x)\n    return 2 * x"}, "two": {"square": "def square(x):\n  return x*x"}}
STUDENTS = {"alice": tc.FULL, "bob": tc.PARTIAL, "carol": {}, "dave": BROKEN}


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# (`course collect` is tested in tests/test_collect.py)


def test_help_describes_the_loop_and_limits():
    """`course --help` walks through the loop; `course grade --help` states the sandbox's limits."""
    top = cli.build_parser().format_help()
    for word in ("release", "collect", "grade", "feedback", "export", "formgrader"):
        assert word in top
    sub = cli.build_parser()._subparsers._group_actions[0].choices["grade"].format_help()
    assert "SHARED" in sub and "NOT ENFORCED" in sub and "--scheduler" in sub


def test_size_parsing_and_kernelspec(tmp_path):
    """Sizes parse; the kernelspec runs ipykernel under the wrapper with the policy file next to it."""
    assert sandbox.parse_size("4G") == 4 * 2**30 and sandbox.parse_size("512M") == 512 * 2**20
    policy = sandbox.Policy(uid=5, gid=5, ro_binds=[["/opt/x", "/opt/x"]])
    spec = json.loads(sandbox.write_kernelspec(tmp_path, policy).read_text())
    argv = spec["argv"]
    assert argv[1:3] == ["-m", "course_tools.sandbox_launch"] and argv[-2:] == ["-f", "{connection_file}"]
    assert "ipykernel_launcher" in argv and spec["interrupt_mode"] == "message"
    saved = json.loads(Path(argv[3]).read_text())
    assert Path(argv[3]).parent == tmp_path / "kernels" / sandbox.KERNEL_NAME
    assert saved["uid"] == 5 and saved["ro_binds"] == [["/opt/x", "/opt/x"]]


def test_share_readable(tmp_path):
    """The model cache becomes readable by other uids (files o+r, folders o+rx)."""
    (tmp_path / "m").mkdir(mode=0o700)
    (tmp_path / "m" / "w.safetensors").write_bytes(b"x")
    (tmp_path / "m" / "w.safetensors").chmod(0o600)
    assert grade.share_readable(tmp_path) >= 2
    assert (tmp_path / "m" / "w.safetensors").stat().st_mode & 0o777 == 0o604
    assert grade.share_readable(tmp_path) == 0


# ------------------------------------------------------------------------------ grading equivalence

@pytest.fixture(scope="module")
def courses(tmp_path_factory):
    """One tiny course graded three ways: sequential nbgrader, `course grade --workers 2`, and Dask."""
    base = tc.build_course(tmp_path_factory.mktemp("base") / "course")
    for student, answers in STUDENTS.items():
        tc.submit(base, student, answers)
    shutil.rmtree(base / "submitted" / "carol" / "tiny" / "two.ipynb", ignore_errors=True)
    (base / "submitted" / "carol" / "tiny" / "two.ipynb").unlink(missing_ok=True)  # a missing notebook
    made = {}
    for name in ("sequential", "parallel", "dask"):
        made[name] = tmp_path_factory.mktemp(name) / "course"
        shutil.copytree(base, made[name])
    return made


@pytest.fixture(scope="module")
def sequential(courses):
    """The course after a plain sequential `nbgrader autograde tiny`."""
    root = courses["sequential"]
    subprocess.run([sys.executable, "-m", "nbgrader", "autograde", "tiny"], cwd=root, env=tc.env(),
                   capture_output=True, check=False, timeout=900)
    return root


@pytest.fixture(scope="module")
def parallel(courses):
    """The course after `course grade tiny --workers 2`, and that command's output."""
    root = courses["parallel"]
    out = run_course(root, "grade", "tiny", "--workers", "2", "--no-prepare")
    return root, out


@pytest.mark.slow
def test_parallel_equals_sequential_gradebook(sequential, parallel):
    """Scores and every gradebook row equal those of a sequential nbgrader autograde."""
    root, out = parallel
    assert out.returncode == 0, out.stdout + out.stderr
    rows = grade.gradebook_rows(root, "tiny")
    assert rows and rows == grade.gradebook_rows(sequential, "tiny")
    scores = {r[0]: r[3] for r in rows if r[2] == "test_double"}
    assert scores == {"alice": 2, "bob": 2, "carol": 0, "dave": 0}
    for line in ("alice", "bob", "carol", "dave"):
        assert line in out.stdout
    assert "score" in out.stdout and "seconds" in out.stdout and "%" in out.stderr  # table, progress bar


@pytest.mark.slow
def test_parallel_autograded_notebooks_equal_sequential(sequential, parallel):
    """The autograded notebooks are the same cell by cell, outputs included (timestamps aside)."""
    root, _ = parallel
    paths = sorted((sequential / "autograded").glob("*/tiny/*.ipynb"))
    assert len(paths) == 7
    for path in paths:
        twin = root / path.relative_to(sequential)
        assert grade.normalized_notebook(twin) == grade.normalized_notebook(path), path


@pytest.mark.slow
def test_rerun_skips_unless_force(parallel):
    """A second run skips what is done; --force regrades with the same rows."""
    root, _ = parallel
    before = grade.gradebook_rows(root, "tiny")
    again = run_course(root, "grade", "tiny", "--workers", "2", "--no-prepare")
    assert again.returncode == 0 and again.stdout.count("skipped") >= 4
    forced = run_course(root, "grade", "tiny", "--workers", "2", "--no-prepare", "--force", "--student", "bob")
    assert forced.returncode == 0 and "bob" in forced.stdout
    assert grade.gradebook_rows(root, "tiny") == before


@pytest.mark.slow
def test_dask_equals_local(courses, parallel):
    """`course grade --scheduler` on a scheduler and two workers started here equals the local path."""
    root = courses["dask"]
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    bindir = Path(sys.executable).parent
    env = tc.env()
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(3)
        for _ in range(2):
            procs.append(subprocess.Popen([str(bindir / "dask"), "worker", address, "--nworkers", "1",
                                           "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            workers = len(client.scheduler_info()["workers"])
        out = run_course(root, "grade", "tiny", "--scheduler", address, "--no-prepare")
        assert out.returncode == 0, out.stdout + out.stderr
        assert workers == 2
        assert grade.gradebook_rows(root, "tiny") == grade.gradebook_rows(parallel[0], "tiny")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


# ------------------------------------------------------------------------------------------ sandbox

SNOOP = '''import os, sqlite3
ROOT = {root!r}
seen = []
for path in ["../../../source/tiny/one.ipynb", "../../../../source/tiny/one.ipynb", "../../../gradebook.db",
             ROOT + "/source/tiny/one.ipynb", ROOT + "/gradebook.db", ROOT + "/release/tiny/one.ipynb",
             ROOT + "/autograded/alice/tiny/one.ipynb", ROOT + "/submitted/alice/tiny/one.ipynb",
             os.path.expanduser("~/.bashrc")]:
    try:
        with open(path, "rb") as fh:
            seen.append(path + " READ " + str(len(fh.read())))
    except OSError as err:
        seen.append(path + " blocked")
try:
    con = sqlite3.connect(ROOT + "/gradebook.db")
    con.execute("UPDATE grade SET auto_score = 1000")
    con.commit()
    seen.append("gradebook WRITTEN")
except Exception as err:
    seen.append("gradebook write blocked")
for name in os.listdir("."):
    text = open(name, errors="replace").read() if os.path.isfile(name) else ""
    leak = ("HIDDEN-" + "ONE") in text or ("HIDDEN-" + "TWO") in text  # the hidden tests' comments
    seen.append(name + (" LEAK" if leak else " clean"))
print("\\n".join(seen))
print("uid", os.getuid())
def square(x):
    return x * x'''

NET = '''import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"leak")
    print("NETWORK OPEN")
except OSError as err:
    print("network blocked:", err)
def double(x):
    return 2 * x'''

HOG = '''hog = bytearray(64 * 2**30)  # far beyond the limit
def double(x):
    return 2 * x'''

CRASH = '''import os, signal
os.kill(os.getpid(), signal.SIGKILL)
def double(x):
    return 2 * x'''


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A course with hostile submissions graded once by `course grade`, plus a TCP server's log."""
    root = tc.build_course(tmp_path_factory.mktemp("hostile") / "course")
    hits = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(1)
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve():
        """Accept connections until stopped, recording what each one sent."""
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                hits.append(conn.recv(100))
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    tc.submit(root, "alice", tc.FULL)
    tc.submit(root, "snoop", {**tc.FULL, "two": {"square": SNOOP.format(root=str(root))}})
    tc.submit(root, "net", {**tc.FULL, "one": {**tc.FULL["one"], "double": NET.format(port=port)}})
    tc.submit(root, "hog", {**tc.FULL, "one": {**tc.FULL["one"], "double": HOG}})
    tc.submit(root, "crash", {**tc.FULL, "one": {**tc.FULL["one"], "double": CRASH}})
    before = (root / "source" / "tiny" / "one.ipynb").read_bytes()
    out = run_course(root, "grade", "tiny", "--workers", "2", "--no-prepare", "--memory", "3G")
    stop.set()
    thread.join()
    server.close()
    return root, out, hits, before


@pytest.mark.slow
@NEEDS_ISOLATION
def test_sandbox_hides_course_gradebook_and_hidden_tests(hostile):
    """A submission cannot read source/, release/, the gradebook, other students or hidden tests."""
    root, out, _, before = hostile
    text = outputs(root, "snoop", "two")
    assert "READ" not in text and "WRITTEN" not in text and " LEAK" not in text, text
    assert text.count("blocked") >= 10 and "one.ipynb clean" in text and "two.ipynb clean" in text and "data.txt clean" in text
    uid = int(text.split("uid ")[1].split()[0])
    assert uid >= sandbox.UID_BASE
    assert (root / "source" / "tiny" / "one.ipynb").read_bytes() == before
    assert all(r[3] is None or r[3] <= 4 for r in grade.gradebook_rows(root, "tiny"))  # no score of 1000
    assert auto_scores(root, "snoop") == auto_scores(root, "alice")


@pytest.mark.slow
def test_memory_hog_is_stopped_and_graded(hostile):
    """Allocating far beyond --memory fails in that cell only: it scores 0 there, the rest is graded."""
    root, out, _, _ = hostile
    assert "MemoryError" in outputs(root, "hog", "one")
    scores = auto_scores(root, "hog")
    assert scores["test_double"] == 0 and scores["test_reverse"] == 3 and scores["test_square"] == 4
    assert auto_scores(root, "alice")["test_double"] == 2  # the batch went on


@pytest.mark.slow
@NEEDS_ISOLATION
def test_network_is_blocked(hostile):
    """A submission cannot connect to a TCP server on 127.0.0.1."""
    root, _, hits, _ = hostile
    assert hits == [] and "network blocked" in outputs(root, "net", "one")


@pytest.mark.slow
def test_crashing_kernel_is_a_recorded_result(hostile):
    """A kernel that kills itself loses only its notebook (0 points, an event, "needs attention"); the
    submission's other notebook and the other submissions are graded."""
    root, out, _, _ = hostile
    results = json.loads((root / "autograded" / grade.STATE_DIR / "tiny" / "results.json").read_text())
    assert results["crash"]["status"] == "ok" and results["alice"]["status"] == "ok"
    assert results["hog"]["status"] == "ok" and out.returncode == 0
    assert auto_scores(root, "crash") == {"test_double": 0, "test_reverse": 0, "why": 0, "test_square": 4}
    assert [e["kind"] for e in results["crash"]["events"]] == ["notebook-failed"]
    row = next(line for line in out.stdout.splitlines() if line.startswith("crash"))
    assert "needs attention" in row and "one.ipynb" in row, out.stdout


@pytest.mark.slow
def test_wall_time_limit_kills_a_hanging_submission(tmp_path):
    """A notebook that ignores interrupts is killed at --timeout and recorded (0 points, a timeout event);
    the submission's other notebook is then graded on its own."""
    root = tc.build_course(tmp_path / "course")
    hang = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)"
    tc.submit(root, "hang", {"one": {"double": hang}, "two": tc.FULL["two"]})
    start = time.perf_counter()
    out = run_course(root, "grade", "tiny", "--workers", "1", "--no-prepare", "--timeout", "12")
    assert time.perf_counter() - start < 60
    assert out.returncode == 0 and "needs attention" in out.stdout and "notebook timeout" in out.stdout
    assert not (root / "autograded" / "hang" / "tiny" / "one.ipynb").exists()
    assert auto_scores(root, "hang") == {"test_double": 0, "test_reverse": 0, "why": 0, "test_square": 4}
    # Nothing of the submission runs any more (an exited process may wait a moment to be reaped).
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _uid(p) >= sandbox.UID_BASE
                 and _state(p) != "Z"]
    assert leftovers == []


def _state(proc: Path) -> str:
    """Return the state letter of /proc/<pid> ("Z" for a zombie; "" if it is gone)."""
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return ""


def _uid(proc: Path) -> int:
    """Return the owner uid of /proc/<pid> (0 if it is gone)."""
    try:
        return proc.stat().st_uid
    except FileNotFoundError:
        return 0
