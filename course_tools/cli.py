"""`course`: the instructor's command line. Run `course --help` for the manual."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .colab import ROOT, stamp_notebook


def assignments(root: Path = ROOT) -> list[str]:
    """Return the assignment names found under source/."""
    return sorted(p.name for p in (root / "source").iterdir() if p.is_dir() and not p.name.startswith("."))


def nbgrader(*args: str, root: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader subcommand in the course root (so nbgrader_config.py applies)."""
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, check=check)


def release(root: Path = ROOT, names: list[str] | None = None) -> None:
    """Generate release/<assignment>/ from source/ for each assignment and stamp its Colab cells."""
    for name in names or assignments(root):
        nbgrader("generate_assignment", name, "--force", "--create", root=root)
        for path in sorted((root / "release" / name).glob("*.ipynb")):
            stamp_notebook(path, relative_to=root)
        print(f"released {name} -> {root / 'release' / name}")


def stamp(root: Path = ROOT) -> None:
    """Rewrite the Colab badge and bootstrap cells of every lecture and source notebook."""
    for path in sorted([*root.glob("notebooks/*.ipynb"), *root.glob("source/*/*.ipynb")]):
        print(("stamped    " if stamp_notebook(path, relative_to=root) else "up to date ") +
              str(path.relative_to(root)))


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one subcommand."""
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="generate release/ from source/ (all assignments, or those named)")
    p.add_argument("assignment", nargs="*")
    sub.add_parser("stamp", help="rewrite every notebook's Colab badge and bootstrap cell")
    args = parser.parse_args(argv)
    if args.command == "release":
        release(names=args.assignment or None)
    elif args.command == "stamp":
        stamp()
    return 0


if __name__ == "__main__":
    sys.exit(main())
