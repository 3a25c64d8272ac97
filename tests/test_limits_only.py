"""Grading where the sandbox cannot be built (no bubblewrap) and under `--sandbox off`: never as root.

bubblewrap is hidden the way a fresh machine lacks it: `course` finds bwrap on PATH, so PATH is
replaced by a folder holding every other program of PATH. The grading step of `make demo` must then
pass with the per-process limits; as root each kernel runs as a uid of its own that must still reach
the interpreter (here a pyenv build under /root, mode 0700) and must not see the course root; where
that cannot be arranged every submission is an `error` whose note says what to install.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_tools import demo, grade, sandbox, sandbox_launch

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import tiny_course as tc  # noqa: E402
from test_course_root import clone  # noqa: E402  (the demo test's own scratch course)

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="kernels get a uid of their own only when grading as root")

SNOOP = '''import os
ROOT = {root!r}
seen = []
for path in ("/source/tiny/one.ipynb", "/gradebook.db", "/submitted/alice/tiny/one.ipynb"):
    try:
        open(ROOT + path, "rb").read()
        seen.append("READ " + path)
    except OSError:
        seen.append("read blocked " + path)
for path in ("/gradebook.db", "/submitted/alice/tiny/one.ipynb", "/source/tiny/one.ipynb"):
    try:
        open(ROOT + path, "ab").close()
        seen.append("WROTE " + path)
    except OSError:
        seen.append("write blocked " + path)
open({marker!r}, "w").write("ran")
print("\\n".join(seen))
print("uid", os.getuid())
def square(x):
    return x * x'''


@pytest.fixture
def no_bwrap(tmp_path, monkeypatch):
    """Hide bubblewrap: PATH becomes one folder with a link to every other program on PATH."""
    shadow = tmp_path / "path-without-bwrap"
    shadow.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name != "bwrap" and not os.path.lexists(shadow / name):
                (shadow / name).symlink_to(Path(folder) / name)
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), str(shadow)]))
    assert shutil.which("bwrap") is None
    return shadow


def run_course(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `course` in the course at ``root`` with the current environment (PATH included)."""
    return subprocess.run([sys.executable, "-m", "course_tools.cli", *args], cwd=root, text=True, capture_output=True,
                          env={**os.environ, "COURSE_ROOT": str(root), "HF_HUB_OFFLINE": "1", **(env or {})},
                          timeout=900)


def outputs(root: Path, student: str, notebook: str) -> str:
    """Return the text outputs of a student's autograded notebook."""
    nb = nbformat.read(root / "autograded" / student / tc.ASSIGNMENT / f"{notebook}.ipynb", as_version=4)
    return "\n".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def snooping_course(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny course with a reference submission and one that tries to read and write the course; its marker."""
    root = tc.build_course(tmp_path / "course")
    marker = Path("/tmp") / f"course-ran-{secrets.token_hex(4)}"  # a place any uid may write (not the course)
    tc.submit(root, "alice", tc.FULL)
    tc.submit(root, "snoop", {**tc.FULL, "two": {"square": SNOOP.format(root=str(root), marker=str(marker))}})
    return root, marker


def auto_scores(root: Path, student: str) -> dict:
    """Return {grade cell: auto score} of a student."""
    return {r[2]: r[3] for r in grade.gradebook_rows(root, tc.ASSIGNMENT) if r[0] == student}


@pytest.mark.slow
def test_demo_grading_step_passes_without_bubblewrap(tmp_path, capsys, no_bwrap):
    """`make demo`'s grading loop (release, collect, grade --workers 2, feedback, export) with no bwrap on PATH."""
    assert not sandbox.probe()["isolation"]
    demo.grading_demo(clone(tmp_path / "tiny"))
    out = capsys.readouterr().out
    table = out[out.index("assignment  student"):].splitlines()
    rows = {line.split()[1]: line.split(None, 4) for line in table[2:] if line.startswith(tc.ASSIGNMENT)}
    assert {s: (r[2], r[3]) for s, r in rows.items()} == {"blank": ("0", "10"), "partial": ("5", "10"),
                                                           "reference": ("9", "10")}
    assert "course feedback tiny: 6 HTML pages" in out


@pytest.mark.slow
@AS_ROOT
def test_limits_only_kernels_run_unprivileged_and_without_the_course(tmp_path, no_bwrap):
    """Without bwrap, as root: the kernel runs as a uid of its own and reads or writes nothing of the course
    (source/ with the hidden tests, the gradebook, another submission); the reference keeps every point."""
    root, marker = snooping_course(tmp_path)
    out = run_course(root, "grade", "tiny", "--workers", "2", "--no-prepare")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "limits only" in out.stderr and "never root" in out.stderr and "hidden from them" in out.stderr
    text = outputs(root, "snoop", "two")
    assert int(text.split("uid ")[1].split()[0]) >= sandbox.UID_BASE, text
    assert "READ" not in text and "WROTE" not in text and text.count("blocked") == 6, text
    assert auto_scores(root, "alice") == auto_scores(root, "snoop") == \
        {"test_double": 2, "test_reverse": 3, "test_square": 4, "why": None}
    assert marker.read_text() == "ran"
    marker.unlink()


@pytest.mark.slow
@AS_ROOT
def test_sandbox_off_never_runs_student_code_as_root(tmp_path):
    """`--sandbox off` as root: an unprivileged uid (it writes nothing of the course), and it says what it gives up."""
    root, marker = snooping_course(tmp_path)
    out = run_course(root, "grade", "tiny", "--workers", "2", "--no-prepare", "--sandbox", "off")
    assert out.returncode == 0, out.stdout + out.stderr
    text = outputs(root, "snoop", "two")
    assert int(text.split("uid ")[1].split()[0]) >= sandbox.UID_BASE, text
    assert "WROTE" not in text and text.count("write blocked") == 3, text
    assert "--sandbox off: no isolation, no cgroups, no limits" in out.stderr and "never root" in out.stderr
    assert "source/ with the hidden tests" in out.stderr  # what the kernels may still read
    assert auto_scores(root, "snoop")["test_square"] == 4 and marker.read_text() == "ran"
    marker.unlink()


@pytest.mark.slow
@AS_ROOT
def test_no_way_to_reach_the_interpreter_is_an_error_that_says_what_to_install(tmp_path, no_bwrap):
    """Where the kernel's uid cannot reach Python and no mount namespace can be made (a container without
    CAP_SYS_ADMIN, simulated), nothing runs: each submission is `error` with the fix in its note."""
    root, marker = snooping_course(tmp_path)
    out = run_course(root, "grade", "tiny", "--workers", "2", "--no-prepare", env={sandbox.INJECT_ENV: "mount"})
    uid = sandbox.UID_BASE + 1
    blocked = sandbox_launch.blocked_folders(os.path.realpath(sys.executable), uid, uid)
    if not blocked:  # Python is readable by every user here: grading works, the course root is not hidden
        assert out.returncode == 0 and "NOT hidden" in out.stderr, out.stdout + out.stderr
        return
    assert out.returncode == 1 and not marker.exists(), out.stdout + out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith(("alice", "snoop"))]
    assert len(rows) == 2 and all(" error " in line and "apt-get install bubblewrap" in line for line in rows), rows
    assert f"{blocked[0]} is mode" in rows[0]
    assert not (root / "autograded" / "alice" / tc.ASSIGNMENT).exists()
