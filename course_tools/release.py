"""The lecture notebooks as one nbgrader practice assignment, `lectures`, released into notebooks/.

The instructor's source, with solutions and hidden tests, is ``source/lectures/NN_name.ipynb``.
What students open is ``notebooks/NN_name.ipynb``: nbgrader's own ``generate_assignment`` output
for ``lectures``, written to a temporary release directory and moved to ``notebooks/`` (so there is
no second copy under ``release/lectures/``). Both copies carry a Colab badge that opens the
student copy, and grading a lecture submission is the ordinary ``course grade lectures``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from .colab import BADGE_TAG, BOOTSTRAP_TAG, badge_source, bootstrap_source
from .colab import ROOT as COLAB_ROOT
from .environment import nbgrader_env

LECTURES = "lectures"
STUDENT_DIR = "notebooks"


def repository_root(root: Path | None) -> Path:
    """Return the folder whose pyproject.toml names the repository: the course's own, else this package's."""
    return root if root is not None and (root / "pyproject.toml").is_file() else COLAB_ROOT


def published_path(path: Path) -> str:
    """Return the repository path students open for a lecture notebook (its copy under notebooks/)."""
    return f"{STUDENT_DIR}/{path.name}"


def stamp_as(path: Path, published: str, root: Path | None = None) -> bool:
    """Rewrite the Colab cells of ``path`` so the badge opens ``published``; return whether it changed."""
    nb = nbformat.read(path, as_version=4)
    origin = repository_root(root)
    wanted = {BADGE_TAG: badge_source(published, origin), BOOTSTRAP_TAG: bootstrap_source(origin)}
    missing = [t for t in wanted if not any(t in c.metadata.get("tags", []) for c in nb.cells)]
    if missing:
        raise ValueError(f"{path}: no cell tagged {missing}; add them before stamping.")
    changed = False
    for cell in nb.cells:
        for tag, source in wanted.items():
            if tag in cell.metadata.get("tags", []) and cell.source != source:
                cell.source = source
                changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def stamp_sources(root: Path) -> list[Path]:
    """Stamp every source/lectures notebook with the badge of its student copy; return those changed."""
    return [p for p in sorted((root / "source" / LECTURES).glob("*.ipynb")) if stamp_as(p, published_path(p), root)]


def release_lectures(root: Path) -> list[Path]:
    """Generate the `lectures` assignment with nbgrader and make notebooks/ exactly that release.

    Returns the student notebooks written. Notebooks under notebooks/ that have no source any more
    are removed; other files there are left alone.
    """
    source = root / "source" / LECTURES
    if not any(source.glob("*.ipynb")):
        raise FileNotFoundError(f"no lecture notebooks under {source}")
    stamp_sources(root)
    target = root / STUDENT_DIR
    target.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="course-release-") as tmp:
        # nbgrader joins the course root with the release directory; an absolute path wins.
        subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", LECTURES, "--force", "--create",
                        f"--CourseDirectory.release_directory={tmp}"], cwd=root, check=True, env=nbgrader_env())
        fresh = Path(tmp) / LECTURES
        written = []
        for path in sorted(fresh.iterdir()):
            destination = target / path.name
            if path.is_dir():
                shutil.rmtree(destination, ignore_errors=True)
                shutil.copytree(path, destination)
                continue
            shutil.copyfile(path, destination)
            if path.suffix == ".ipynb":
                stamp_as(destination, published_path(destination), root)
                written.append(destination)
    names = {p.name for p in written}
    for stale in target.glob("*.ipynb"):
        if stale.name not in names:
            stale.unlink()
    return written
