"""What deciding hidden checks outside the kernel costs: grading time per submission, before and after.

Two scratch copies of the course hold ``transformer_internals``: one with the hidden tests as they were
before this mechanism (in-kernel asserts, taken from git at BEFORE), one as it is now (answers handed to
the grader, compared by ``OutsideChecks``). The same reference submissions are graded in each with plain
``nbgrader autograde`` (one process, sequential), alternating which copy goes first, and the table gives
the mean time per submission.

    python benchmarks/bench_checks.py [--students 6] [--rounds 2] [--before 92f883b]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import nbformat  # noqa: E402

import submissions as sub  # noqa: E402
from course_tools import demo  # noqa: E402

ASSIGNMENT = "transformer_internals"


def build(base: Path, label: str, before: str | None) -> Path:
    """Return a released scratch course; with ``before``, its sources are those of that git revision."""
    root = demo.scratch_course(ROOT, base / label, [ASSIGNMENT])
    if before:
        for path in sorted((root / "source" / ASSIGNMENT).glob("*.ipynb")):
            rel = path.relative_to(root).as_posix()
            old = subprocess.run(["git", "show", f"{before}:{rel}"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout
            path.write_text(old)
        for path in (root / "expected").rglob("*.json"):
            path.unlink()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COURSE_ROOT": str(root),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}  # alembic
    # the old sources hand no answers to the grader: release them with nbgrader itself (nothing to record)
    cmd = (["-m", "nbgrader", "generate_assignment", ASSIGNMENT, "--create", "--force"] if before else
           ["-m", "course_tools.cli", "release", ASSIGNMENT])
    subprocess.run([sys.executable, *cmd], cwd=root, env=env, check=True, capture_output=True)
    return root


def submit(root: Path, students: int) -> list[str]:
    """Hand in ``students`` reference submissions; return their ids."""
    answers = sub.reference_answers(root / "source" / ASSIGNMENT)
    names = [f"ref{i}" for i in range(students)]
    for name in names:
        nbs = sub.load_release(root / "release" / ASSIGNMENT)
        sub.solve(nbs, answers)
        sub.submit(root, name, nbs, assignment=ASSIGNMENT)
    return names


def grade(root: Path, outside: bool) -> float:
    """Grade every submission once (sequential nbgrader); return the wall time."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force",
                    *([] if outside else ["--OutsideChecks.enabled=False"])], cwd=root, env=env,
                   check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default="92f883b", help="git revision with the in-kernel hidden tests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        courses = {"in-kernel asserts (before)": build(Path(tmp), "before", args.before),
                   "outside checks (now)": build(Path(tmp), "now", None)}
        for root in courses.values():
            submit(root, args.students)
        times: dict[str, list[float]] = {label: [] for label in courses}
        for r in range(args.rounds):
            order = list(courses) if r % 2 == 0 else list(reversed(courses))
            for label in order:
                times[label].append(grade(courses[label], outside=label.endswith("(now)")) / args.students)
    base = statistics.mean(times["in-kernel asserts (before)"])
    print(f"{ASSIGNMENT}: {args.students} reference submissions x {args.rounds} rounds, sequential nbgrader autograde")
    print(f"{'hidden tests':<30} {'s / submission':>15} {'vs before':>10}")
    for label, values in times.items():
        mean = statistics.mean(values)
        print(f"{label:<30} {mean:>15.2f} {100 * (mean / base - 1):>+9.1f}%")


if __name__ == "__main__":
    main()
