"""One way to run the course's commands from a test: `course ...` and `nbgrader ...` as child processes.

Each runs in a course root with that course named in COURSE_ROOT, offline, and this Python's bin/ first
on PATH (nbgrader runs `alembic`); the output is captured.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from course_tools.environment import nbgrader_env


def env_for(root: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment of a command run in the course at ``root`` (``base``: os.environ by default)."""
    found = nbgrader_env(COURSE_ROOT=str(root), HF_HUB_OFFLINE="1")
    if base is not None:
        found = {**base, "COURSE_ROOT": str(root), "HF_HUB_OFFLINE": "1", "PATH": found["PATH"]}
    return found


def run(root: Path, module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 900,
        check: bool = False, base: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m module args...`` in ``root`` (environment: env_for(root, base) and ``env``);
    with ``check``, fail the test on a non-zero exit."""
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=root, env={**env_for(root, base), **(env or {})},
                          text=True, capture_output=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{module} {' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def course(root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run the `course` command (course_tools.cli) in the course at ``root``."""
    return run(root, "course_tools.cli", *args, **kwargs)


def nbgrader(root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run an `nbgrader` subcommand in the course at ``root``."""
    return run(root, "nbgrader", *args, **kwargs)


def parallel(root: Path, commands: list[list[str]], module: str = "nbgrader",
             env: dict[str, str] | None = None) -> list[str]:
    """Run several commands of ``module`` at once in ``root``; return their outputs, failing on any error."""
    procs = [subprocess.Popen([sys.executable, "-m", module, *args], cwd=root, env={**env_for(root), **(env or {})},
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for args in commands]
    outputs = [proc.communicate()[0] for proc in procs]
    for args, proc, out in zip(commands, procs, outputs):
        assert proc.returncode == 0, f"{module} {' '.join(args)} failed ({proc.returncode}):\n{out[-3000:]}"
    return outputs
