"""One course root, one set of settings: `course` acts on the course around the current directory,
settings come from that course's course.toml, and `make demo` grades a scratch copy with the
unchanged nbgrader_config.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

from course_tools import cli, demo
from helpers.config import CourseRootNotFound, course_config, find_course_root

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import tiny_course as tc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def clone(base: Path) -> Path:
    """Return a course at ``base``: this course's nbgrader_config.py and the tiny assignment (Colab cells added)."""
    base.mkdir(parents=True)
    (base / "nbgrader_config.py").write_bytes((ROOT / "nbgrader_config.py").read_bytes())
    src = base / "source" / tc.ASSIGNMENT
    src.mkdir(parents=True)
    for name, nb in tc.notebooks().items():
        badge = nbformat.v4.new_markdown_cell("badge", metadata={"tags": ["colab-badge"]})
        boot = nbformat.v4.new_code_cell("# bootstrap", metadata={"tags": ["colab-bootstrap"]})
        nb.cells[:0] = [badge, boot]
        nbformat.write(nb, src / f"{name}.ipynb")
    return base


def snapshot(root: Path) -> dict[str, str]:
    """Return {relative path: sha256} of every file under ``root``."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def no_course_env(monkeypatch):
    """Clear COURSE_ROOT and the settings variables (restored afterwards)."""
    for name in [n for n in os.environ if n == "COURSE_ROOT" or n.startswith("LLM_COURSE_")]:
        monkeypatch.delenv(name)
    return monkeypatch


# ------------------------------------------------------------------------------------ discovery

def test_root_found_upward_from_a_subdirectory(tmp_path, no_course_env):
    """From any folder inside a course, the course root is the nearest folder with nbgrader_config.py."""
    a = clone(tmp_path / "a")
    no_course_env.chdir(a / "source" / tc.ASSIGNMENT)
    assert find_course_root() == a.resolve()
    no_course_env.setenv("COURSE_ROOT", str(clone(tmp_path / "b")))
    assert find_course_root() == a.resolve()  # the current directory wins, as with nbgrader


def test_course_root_variable_outside_a_course(tmp_path, no_course_env):
    """Outside any course, COURSE_ROOT names it; one that is not a course is an error that says so."""
    a = clone(tmp_path / "a")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    no_course_env.chdir(elsewhere)
    no_course_env.setenv("COURSE_ROOT", str(a))
    assert find_course_root() == a.resolve()
    no_course_env.setenv("COURSE_ROOT", str(elsewhere))
    with pytest.raises(CourseRootNotFound, match="has no nbgrader_config.py"):
        find_course_root()


def test_error_outside_a_course(tmp_path, no_course_env, capsys):
    """`course` outside any course and without COURSE_ROOT stops with a clear message and exit code 2."""
    no_course_env.chdir(tmp_path)
    assert find_course_root(required=False) is None
    assert cli.main(["release"]) == 2
    err = capsys.readouterr().err
    assert "nbgrader_config.py" in err and "COURSE_ROOT" in err and str(tmp_path) in err


@pytest.mark.slow
def test_second_clone_is_untouched(tmp_path):
    """`course release` inside clone A writes A's release/ only, even with COURSE_ROOT naming clone B."""
    a, b = clone(tmp_path / "a"), clone(tmp_path / "b")
    before = snapshot(b)
    env = {**tc.env(), "COURSE_ROOT": str(b)}
    done = subprocess.run([sys.executable, "-m", "course_tools.cli", "release", tc.ASSIGNMENT],
                          cwd=a / "source", env=env, text=True, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in (a / "release" / tc.ASSIGNMENT).glob("*.ipynb")) == ["one.ipynb", "two.ipynb"]
    assert (a / "gradebook.db").is_file()
    assert snapshot(b) == before and not (b / "release").exists() and not (b / "gradebook.db").exists()


# ------------------------------------------------------------------------------------- settings

def test_settings_come_from_the_course_found(tmp_path, no_course_env):
    """course.toml of the course around the current directory applies; the environment overrides it."""
    a, b = clone(tmp_path / "a"), clone(tmp_path / "b")
    (a / "course.toml").write_text(f'cache_dir = "{tmp_path / "cache-a"}"\ngrade_timeout = 60\n'
                                   'grade_memory = "3G"\ncollect_max_notebook = "5M"\n')
    (b / "course.toml").write_text('grade_timeout = 999\n')
    no_course_env.chdir(a / "source")
    config = course_config()
    assert config.cache_dir == str(tmp_path / "cache-a") and config.grade_timeout == 60.0
    assert config.grade_memory == "3G" and config.collect_max_notebook == "5M" and config.grade_cpu == 1800
    assert course_config(b).grade_timeout == 999.0
    no_course_env.setenv("LLM_COURSE_GRADE_TIMEOUT", "30")
    no_course_env.setenv("LLM_COURSE_CACHE_DIR", "~/elsewhere")
    config = course_config()
    assert config.grade_timeout == 30.0 and config.cache_dir == str(Path.home() / "elsewhere")
    no_course_env.delenv("LLM_COURSE_GRADE_TIMEOUT")
    no_course_env.chdir(tmp_path)  # outside any course: defaults only
    assert course_config().grade_timeout == 1800.0


def test_invalid_settings_fail_early(tmp_path, no_course_env):
    """A size or number that does not parse is an error naming the setting."""
    a = clone(tmp_path / "a")
    (a / "course.toml").write_text('grade_memory = "lots"\n')
    with pytest.raises(ValueError, match="grade_memory"):
        course_config(a)
    (a / "course.toml").write_text('grade_workers = "two"\n')
    with pytest.raises(ValueError, match="grade_workers"):
        course_config(a)


def test_grading_path_honours_cache_dir_and_limits(tmp_path, no_course_env, capsys):
    """`course grade` shares the configured cache_dir with the sandboxed kernels and takes its limits
    from course.toml unless a flag overrides them."""
    from course_tools import grade, sandbox

    a = clone(tmp_path / "a")
    cache = tmp_path / "model-cache"
    cache.mkdir()
    (a / "course.toml").write_text(f'cache_dir = "{cache}"\ngrade_timeout = 77\ngrade_memory = "3G"\n'
                                   'grade_cpu = 99\ngrade_workers = 3\n')
    seen: dict = {}
    no_course_env.setattr(sandbox, "probe", lambda *a, **k: {"isolation": True, "uid_drop": True})
    no_course_env.setattr(grade, "share_readable", lambda path: seen.setdefault("shared", path) and 0)
    no_course_env.setattr(grade, "grade_all", lambda root, name, opts, workers=1, **kw:
                          seen.update(root=root, opts=opts, workers=workers) or [])
    no_course_env.setattr(grade, "summary_table", lambda results: "")
    no_course_env.setattr(grade, "preconditions", lambda root, name: None)  # an unreleased scratch course
    no_course_env.setenv("COURSE_ROOT", "")
    no_course_env.chdir(a)
    assert cli.main(["grade", tc.ASSIGNMENT, "--no-prepare"]) == 0
    assert seen["shared"] == cache and seen["root"] == a.resolve() and seen["workers"] == 3
    assert (seen["opts"].timeout, seen["opts"].memory, seen["opts"].cpu) == (77.0, 3 * 2**30, 99)
    assert cli.main(["grade", tc.ASSIGNMENT, "--no-prepare", "--timeout", "5", "--workers", "1"]) == 0
    assert seen["opts"].timeout == 5.0 and seen["workers"] == 1


# ----------------------------------------------------------------------------------------- demo

@pytest.mark.slow
def test_demo_scratch_course_keeps_the_config_unchanged(tmp_path):
    """The demo's scratch course has this course's nbgrader_config.py byte for byte, and it loads
    without errors with every path pointing into the scratch course."""
    names = demo.graded_assignments(ROOT)
    assert "language_models" in names and "lectures" not in names
    scratch = demo.scratch_course(ROOT, tmp_path / "scratch", names)
    assert (scratch / "nbgrader_config.py").read_bytes() == (ROOT / "nbgrader_config.py").read_bytes()
    config = PyFileConfigLoader("nbgrader_config.py", path=str(scratch)).load_config()  # raises on any error
    original = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert config.CourseDirectory.root == str(scratch.resolve())
    assert config.Exchange.root == str(scratch.resolve() / ".exchange")
    assert config.Execute.timeout == original.Execute.timeout
    assert config.LimitOutput.max_lines == original.LimitOutput.max_lines
    # nbgrader itself (traitlets logs a failing config file and goes on with defaults: look at the log).
    done = subprocess.run([sys.executable, "-m", "nbgrader", "db", "student", "list", "--log-level=DEBUG"],
                          cwd=scratch, env=tc.env(), text=True, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    log = done.stdout + done.stderr
    assert f"Loaded config file: {scratch / 'nbgrader_config.py'}" in log
    assert "Exception while loading config" not in log and "Traceback" not in log


@pytest.mark.slow
def test_demo_grading_loop(tmp_path, capsys):
    """The demo's grading loop, on the tiny course: release, collect, grade, feedback, export, the table."""
    demo.grading_demo(clone(tmp_path / "tiny"))
    out = capsys.readouterr().out
    table = out[out.index("assignment  student"):].splitlines()
    rows = {line.split()[1]: line.split(None, 4) for line in table[2:] if line.startswith(tc.ASSIGNMENT)}
    assert {s: (r[2], r[3]) for s, r in rows.items()} == {"blank": ("0", "10"), "partial": ("5", "10"),
                                                           "reference": ("9", "10")}
    assert rows["reference"][4] == rows["partial"][4] == "1 point in 1 answer (why)" and rows["blank"][4] == "-"
    assert "course feedback tiny: 6 HTML pages" in out and "collected 6 notebook(s) of 3 student(s)" in out
