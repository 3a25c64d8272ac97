"""Grading benchmark: sequential `nbgrader autograde` vs `course grade --workers N` on scripted submissions.

    python benchmarks/bench_grading.py [--count 40] [--workers 2] [--assignment language_models] [--keep DIR]

Builds a throw-away copy of the course (nbgrader_config.py + source/<assignment>), generates the
release with nbgrader, and scripts ``--count`` submissions from the source and release notebooks,
cycling through four kinds: full (every solution), partial (a seeded half of the solution cells),
blank (the release untouched) and broken (syntax errors, exceptions, empty prose). The same
submissions are graded twice, in two copies of that course: sequentially by one plain
``nbgrader autograde <assignment>`` and by ``course grade <assignment> --workers N`` (sandboxed
kernels). Prints a table (seconds in all, seconds per submission, speed-up) and whether every
gradebook row (score per cell per student) is identical.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from course_tools import grade  # noqa: E402
from course_tools.environment import nbgrader_env  # noqa: E402

KINDS = ["full", "partial", "blank", "broken"]
MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def env() -> dict[str, str]:
    """Return os.environ with this Python's bin/ first on PATH, offline."""
    return nbgrader_env(HF_HUB_OFFLINE="1")


def build(root: Path, assignment: str) -> Path:
    """Copy the course config and source into ``root`` and generate the release with nbgrader."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(REPO / "source" / assignment, root / "source" / assignment)
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--create", "--force"],
                   cwd=root, env=env(), check=True, capture_output=True)
    return root


def solution_text(source: str) -> str:
    """Return a solution cell's text with the BEGIN/END SOLUTION marker lines removed."""
    return "\n".join(line for line in source.splitlines() if not MARKER.match(line))


def broken_text(cell) -> str:
    """Return a wrong answer for a solution cell: a syntax error, an exception or empty prose."""
    if cell.cell_type == "markdown":
        return "I don't know."
    return random.choice(["def oops(:\n    pass", "raise RuntimeError('not finished')", "x = undefined_name + 1"])


def submissions(root: Path, assignment: str, count: int, seed: int = 0) -> dict[str, str]:
    """Write ``count`` scripted submissions under submitted/; return {student: kind}."""
    random.seed(seed)
    release = sorted((root / "release" / assignment).glob("*.ipynb"))
    sources = {p.name: nbformat.read(root / "source" / assignment / p.name, as_version=4) for p in release}
    kinds = {}
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        student = f"s{i:03d}_{kind}"
        kinds[student] = kind
        dest = root / "submitted" / student / assignment
        dest.mkdir(parents=True)
        for path in release:
            nb = nbformat.read(path, as_version=4)
            answers = {c.metadata["nbgrader"]["grade_id"]: c for c in sources[path.name].cells
                       if c.metadata.get("nbgrader", {}).get("solution")}
            for cell in nb.cells:
                gid = cell.metadata.get("nbgrader", {}).get("grade_id")
                if gid not in answers:
                    continue
                if kind == "full" or (kind == "partial" and random.random() < 0.5):
                    cell.source = solution_text(answers[gid].source)
                elif kind == "broken":
                    cell.source = broken_text(cell)
            nbformat.write(nb, dest / path.name)
        (dest / "timestamp.txt").write_text("2026-01-15 12:00:00.000000 UTC\n")
    return kinds


def timed(cmd: list[str], root: Path, extra_env: dict[str, str] | None = None) -> tuple[float, int]:
    """Run ``cmd`` in ``root``; return (seconds, return code)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env={**env(), **(extra_env or {})}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, proc.returncode


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=40, help="number of submissions (default 40)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--assignment", default="language_models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, help="build the courses here and keep them (default: a temp dir)")
    a = p.parse_args(argv)
    tmp = a.keep or Path(tempfile.mkdtemp(prefix="bench-grading-"))
    base = build(tmp / "base", a.assignment)
    kinds = submissions(base, a.assignment, a.count, a.seed)
    seq, par = tmp / "sequential", tmp / "parallel"
    shutil.copytree(base, seq)
    shutil.copytree(base, par)
    # Warm the model cache and the OS file cache once, outside both timings.
    subprocess.run([sys.executable, "-m", "helpers.embedded"], cwd=REPO, env=env(), capture_output=True)
    t_seq, rc_seq = timed([sys.executable, "-m", "nbgrader", "autograde", a.assignment], seq)
    t_par, rc_par = timed([sys.executable, "-m", "course_tools.cli", "grade", a.assignment,
                           "--workers", str(a.workers)], par, {"COURSE_ROOT": str(par)})
    rows_seq, rows_par = grade.gradebook_rows(seq, a.assignment), grade.gradebook_rows(par, a.assignment)
    identical = rows_seq == rows_par and len(rows_seq) > 0
    totals = {}
    for rows, name in ((rows_seq, "seq"), (rows_par, "par")):
        for r in rows:
            totals.setdefault(name, {}).setdefault(r[0], 0.0)
            totals[name][r[0]] += r[3] or 0.0
    n = a.count
    print(f"Grading benchmark: {n} submissions of {a.assignment} ({', '.join(f'{sum(v == k for v in kinds.values())} {k}' for k in KINDS)}), "
          f"{os.cpu_count()} CPUs")
    print()
    print("| mode | submissions | seconds | s / submission | speed-up | exit code |")
    print("|---|---|---|---|---|---|")
    print(f"| sequential `nbgrader autograde` | {n} | {t_seq:.1f} | {t_seq / n:.2f} | 1.00x | {rc_seq} |")
    print(f"| `course grade --workers {a.workers}` | {n} | {t_par:.1f} | {t_par / n:.2f} | {t_seq / t_par:.2f}x | {rc_par} |")
    print()
    by_kind = {}
    for student, kind in kinds.items():
        by_kind.setdefault(kind, []).append(totals.get("seq", {}).get(student, 0.0))
    print("auto score by kind (sequential): " + ", ".join(
        f"{k} {min(v):g}-{max(v):g}" for k, v in by_kind.items()))
    print(f"gradebook rows identical: {identical} ({len(rows_seq)} rows; "
          f"per-student totals equal: {totals.get('seq') == totals.get('par')})")
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
