"""Execution time of every notebook, top to bottom, offline, as a student's kernel runs it.

    python benchmarks/bench_notebooks.py [--threads N] [PATTERN ...]

Executes the instructor version of every notebook with nbclient, one at a time, and prints a
table with a total per assignment: source/lectures/ (the lecture notebooks, whose student copies
are notebooks/) and the graded assignments under source/, solutions and hidden tests included (a
student copy stops at its first unanswered exercise, so it is not what a student's run costs).
PATTERN (e.g. "lectures/0[1-4]*") keeps only the matching source/ paths. The models are the
embedded defaults (HF_HUB_OFFLINE=1); the first conversion is done beforehand.

The goals (on 2 quiet cores): each notebook and each graded assignment under a minute, the whole
collection under 5 minutes. What misses one is marked in the table; with --check the script exits 1.
(The test suite checks that notebooks run and what they show, not how long they take.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_GOAL = ASSIGNMENT_GOAL = 60.0  # seconds, each notebook and each graded assignment
COLLECTION_GOAL = 300.0  # seconds, every notebook of the course
PRACTICE = "lectures"  # the lecture notebooks: each has the notebook goal, together no assignment goal


def run(path: Path) -> tuple[float, str]:
    """Execute one notebook and return (seconds, "ok" or the error's first line)."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        status = "ok"
    except Exception as err:  # the table reports it; the other notebooks still run
        status = f"error: {str(err).strip().splitlines()[-1][:80]}"
    return time.perf_counter() - start, status


def main() -> None:
    """Time every notebook and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, help="OMP/MKL threads per kernel (default: torch's choice)")
    parser.add_argument("patterns", nargs="*", help="glob patterns under source/ (default: */*.ipynb)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    import helpers

    helpers.prepare_embedded_models()
    rows = []
    paths = sorted({p for pattern in args.patterns or ["*/*.ipynb"] for p in (ROOT / "source").glob(pattern)
                    if p.suffix == ".ipynb"})
    for path in paths:
        seconds, status = run(path)
        rows.append((path.relative_to(ROOT).as_posix(), seconds, status))
        print(f"{rows[-1][0]}: {seconds:.1f} s {status}", file=sys.stderr, flush=True)
    print(f"{os.cpu_count()} CPUs, threads per kernel: {args.threads or 'default'}\n")
    missed = []

    def goal(seconds: float, limit: float, what: str) -> str:
        """Return the goal note of a row (and remember a missed goal)."""
        if seconds <= limit:
            return ""
        missed.append(what)
        return f" (goal: under {limit:.0f} s)"

    print("| notebook | seconds | status |\n|---|---|---|")
    for name, seconds, status in rows:
        print(f"| `{name}` | {seconds:.1f} | {status}{goal(seconds, NOTEBOOK_GOAL, name)} |")
    for assignment in sorted({n.split("/")[1] for n, _, _ in rows}):
        total = sum(s for n, s, _ in rows if n.split("/")[1] == assignment)
        note = "" if assignment == PRACTICE else goal(total, ASSIGNMENT_GOAL, assignment).strip()
        print(f"| `{assignment}`, all notebooks | {total:.1f} | {note} |")
    if not args.patterns:
        total = sum(s for _, s, _ in rows)
        print(f"| the whole collection | {total:.1f} | {goal(total, COLLECTION_GOAL, 'collection').strip()} |")
    if args.check and missed:
        sys.exit(f"goals missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
