"""The environment nbgrader subprocesses need."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def nbgrader_env(**extra: str) -> dict[str, str]:
    """Return os.environ plus ``extra``, with this Python's bin/ first on PATH (nbgrader runs `alembic`)."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, **extra, "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}
