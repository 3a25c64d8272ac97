"""Colab support: the "Open in Colab" badge and the bootstrap cell, derived from one repository URL.

Every notebook (lecture, source and release) carries a markdown cell tagged ``colab-badge`` and
a code cell tagged ``colab-bootstrap``; :func:`stamp_notebook` rewrites both from
``[project.urls] Repository`` in pyproject.toml, so moving the repository is a one-line change.
"""

from __future__ import annotations

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


def models_requirements(root: Path = ROOT) -> list[str]:
    """Return the embedded-model packages (pinned) from models.txt."""
    lines = (root / "models.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def badge_source(relative_path: str, root: Path = ROOT) -> str:
    """Return the markdown of the "Open in Colab" badge for the notebook at ``relative_path``."""
    slug = repository_url(root).removeprefix("https://github.com/")
    url = f"https://colab.research.google.com/github/{slug}/blob/main/{relative_path}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def bootstrap_source(root: Path = ROOT) -> str:
    """Return the first code cell: on Colab only, install the course helpers and offline models."""
    models = ", ".join(repr(m) for m in models_requirements(root))
    return (
        "# Colab bootstrap: on Google Colab, install the course helpers and the offline models.\n"
        "# Elsewhere (JupyterLab with the course environment) this cell does nothing.\n"
        "import subprocess, sys\n"
        "if 'google.colab' in sys.modules:\n"
        "    pip = [sys.executable, '-m', 'pip', 'install', '-q']\n"
        f"    subprocess.check_call(pip + ['llm-course @ git+{repository_url(root)}'])\n"
        f"    subprocess.check_call(pip + ['--no-deps', {models}])"
    )


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
