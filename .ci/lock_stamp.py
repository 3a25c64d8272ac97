"""The stamp that ties requirements.lock to the ranges it was compiled from.

`make lock` appends `# pyproject-dependencies-sha256: <digest>` to the lock; tests/test_packaging.py
recomputes the digest and fails with "run `make lock`" when a range in pyproject.toml changed since.
Only the dependency lists count, so editing the description or a tool setting does not stale the lock.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path

PREFIX = "# pyproject-dependencies-sha256: "


def digest(pyproject_text: str) -> str:
    """Return the sha256 of pyproject's dependency lists (main and optional), order-insensitive."""
    project = tomllib.loads(pyproject_text)["project"]
    lists = {"main": sorted(project["dependencies"])}
    lists |= {name: sorted(reqs) for name, reqs in project.get("optional-dependencies", {}).items()}
    return hashlib.sha256(json.dumps(lists, sort_keys=True).encode()).hexdigest()


def stamp(lock: Path, pyproject: Path) -> None:
    """Replace (or add) the stamp line at the end of ``lock``."""
    lines = [line for line in lock.read_text().splitlines() if not line.startswith(PREFIX)]
    lines.append(PREFIX + digest(pyproject.read_text()))
    lock.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    stamp(Path(sys.argv[1]), root / "pyproject.toml")
