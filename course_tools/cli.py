"""`course`: the instructor's command line for the whole nbgrader loop of this course.

The loop, run from anywhere (every path derives from the course root, where nbgrader_config.py is):

  1. course release                  source/<a>/ -> release/<a>/ (nbgrader generate_assignment) for
                                     every assignment, Colab badge and bootstrap cells stamped.
                                     Students open release/ notebooks in JupyterLab or on Colab.
  2. course collect <a> <zip>        an LMS/Colab download of notebooks -> submitted/<student>/<a>/
                                     (student ids from file names; see `course collect --help`).
  3. course grade <a> --workers N    nbgrader autograde, N submissions at a time (or on a Dask
                                     cluster: --scheduler tcp://host:port), each kernel sandboxed
                                     and limited; results in the nbgrader gradebook.
     (manual grading: nbgrader formgrader / JupyterLab's Formgrader, unchanged)
  4. course feedback <a>             nbgrader generate_feedback -> feedback/<student>/<a>/*.html
  5. course export [--to grades.csv] nbgrader export: one row per student and assignment.

`course stamp` rewrites the Colab cells of every lecture and source notebook.
Everything else (formgrader, db student import, validate) is plain nbgrader in the course root.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from .colab import ROOT, stamp_notebook
from .environment import nbgrader_env

GRADE_HELP = """\
Autograde every submission of ASSIGNMENT under submitted/ with nbgrader's own autograde, several at a
time: each submission is one `python -m nbgrader autograde ASSIGNMENT --student ID` process in the
course root, writing to the shared sqlite gradebook exactly what a sequential `nbgrader autograde`
writes (retried if SQLite says "database is locked"). One failing, hanging or crashing submission
becomes a recorded result (failed / timeout) and the batch goes on. Already autograded submissions
are skipped unless --force (a failed one is retried). A progress bar goes to stderr, a summary table
(student, score, max, status, seconds) to stdout; results and per-student nbgrader logs are kept in
autograded/.course-grade/ASSIGNMENT/.

--scheduler tcp://host:port sends the submissions to the workers of a running Dask scheduler
(`dask scheduler`, then `dask worker tcp://host:port --nthreads 1` on each machine). ASSUMES A SHARED
FILE SYSTEM: every worker must see the course root at the same path, and the same Python
environment (this package included); the sqlite gradebook must be on a file system with working
locks (not most NFS mounts).

Sandbox (--sandbox auto, the default): the kernel that runs student code is wrapped by
`python -m course_tools.sandbox` (a kernelspec written for this run). ENFORCED when running as root
on Linux (`course grade --probe` tells): a private mount namespace where the course root (source/,
release/, other students, the gradebook, hidden tests), the home directory and /tmp are empty; the
working directory holds only this submission's own files (never the autograded copies that carry
the hidden tests); Python, helpers and the model caches are read-only; no network at all (private
network namespace; nbgrader talks to the kernel over Unix sockets); a per-submission unprivileged
uid with no_new_privs (cannot write instructor files, cannot signal or trace other kernels);
credential-like environment variables removed; the course's model cache (~/.cache/llm-course) is
made world-readable for the kernels (root-only files elsewhere, e.g. a Hugging Face token, stay
unreadable). ALWAYS: memory (address space, --memory), CPU time
(--cpu), largest written file, process count, wall time per submission (--timeout, the whole
nbgrader process), output size (nbgrader's LimitOutput, set in nbgrader_config.py).
NOT ENFORCED: without root, only the limits apply (a warning says so; --sandbox strict refuses to
grade instead); /proc still lists other processes; files outside the course root, home and /tmp
stay readable where their permissions allow; and, as in any nbgrader setup, code in a submission runs
in the same kernel as the tests, so it can tamper with its own test results (not anyone else's):
review suspicious submissions in formgrader.
"""


def assignments(root: Path = ROOT) -> list[str]:
    """Return the assignment names found under source/."""
    return sorted(p.name for p in (root / "source").iterdir() if p.is_dir() and not p.name.startswith("."))


def nbgrader(*args: str, root: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader subcommand in the course root (so nbgrader_config.py applies)."""
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, check=check, env=nbgrader_env())


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


def collect(root: Path, assignment: str, zip_path: Path, roster: Path | None, pattern: str | None,
            dry_run: bool) -> int:
    """Collect a zip of notebooks into submitted/; return 0, or 2 when files were left unmatched."""
    from . import collect as col

    ids = col.read_roster(roster) if roster else None
    found = col.scan(zip_path, col.notebook_names(root, assignment), ids, pattern)
    if not dry_run:
        if roster:
            nbgrader("db", "student", "import", str(roster.resolve()), root=root, check=False)
        for path in col.write(zip_path, root, assignment, found):
            print(f"collected {path.relative_to(root)}")
    print(col.report(found), file=sys.stderr if found.unmatched else sys.stdout)
    return 2 if found.unmatched else 0


def grade(root: Path, args: argparse.Namespace) -> int:
    """Run `course grade`: probe the sandbox, warm the model cache, grade, print the summary."""
    from . import grade as g
    from . import sandbox

    report = sandbox.probe()
    if args.probe:
        print(report)
        return 0
    if args.sandbox != "off" and not report.get("isolation"):
        why = "; ".join(report.get("errors", [])) or "needs root on Linux"
        if args.sandbox == "strict":
            print(f"course grade: kernel isolation unavailable here ({why}); refusing (--sandbox strict)",
                  file=sys.stderr)
            return 3
        print(f"course grade: WARNING kernel isolation unavailable ({why}): limits only", file=sys.stderr)

    if args.prepare and (root / "helpers" / "embedded.py").is_file():
        # The sandbox mounts the model cache read-only: convert the embedded model once, here.
        subprocess.run([sys.executable, "-m", "helpers.embedded"], cwd=root, env=nbgrader_env(),
                       stdout=subprocess.DEVNULL, check=False)
    if args.sandbox != "off" and report.get("uid_drop"):
        # Kernels run as an unprivileged uid: the course's own model cache must be world-readable
        # (save_pretrained writes model.safetensors 0600). Only this cache, never ~/.cache/huggingface.
        cache = Path(os.environ.get("LLM_COURSE_CACHE_DIR") or Path.home() / ".cache" / "llm-course")
        if g.share_readable(cache):
            print(f"course grade: made {cache} readable by the sandboxed kernels", file=sys.stderr)
    opts = g.GradeOptions(force=args.force, timeout=args.timeout, sandbox=args.sandbox,
                          memory=sandbox.parse_size(args.memory), cpu=args.cpu, kernel_threads=args.kernel_threads,
                          network=args.network, hide=args.hide, expose=args.expose)
    os.environ.update(PATH=nbgrader_env()["PATH"])
    results = g.grade_all(root, args.assignment, opts, workers=args.workers, scheduler=args.scheduler,
                          only=args.student or None)
    print(g.summary_table(results))
    return 0 if all(r.status in ("ok", "skipped") for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `course` and its subcommands."""
    parser = argparse.ArgumentParser(prog="course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("release", help="generate release/ from source/ (all assignments, or those named)")
    p.add_argument("assignment", nargs="*")
    sub.add_parser("stamp", help="rewrite every notebook's Colab badge and bootstrap cell")

    from . import collect as col

    p = sub.add_parser("collect", help="unpack an LMS/Colab zip of notebooks into submitted/",
                       description=col.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("assignment")
    p.add_argument("zip", type=Path, help="the zip downloaded from the LMS (or made from Colab downloads)")
    p.add_argument("--roster", type=Path, help="CSV with an `id` column (also imported into the gradebook)")
    p.add_argument("--pattern", help="regex with named groups `student` and `notebook` for other LMS names")
    p.add_argument("--dry-run", action="store_true", help="only report how files would be mapped")

    p = sub.add_parser("grade", help="autograde submissions in parallel, sandboxed (local or Dask)",
                       description=GRADE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("assignment")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="submissions graded at once on this machine (default: CPU count)")
    where.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (shared FS!)")
    p.add_argument("--student", action="append", default=[], help="grade only this student (repeatable)")
    p.add_argument("--force", action="store_true", help="regrade submissions that are already autograded")
    p.add_argument("--timeout", type=float, default=1800, help="wall-time limit per submission, seconds")
    p.add_argument("--memory", default="6G", help="address-space limit of each kernel (e.g. 6G)")
    p.add_argument("--cpu", type=int, default=1800, help="CPU-time limit of each kernel, seconds")
    p.add_argument("--kernel-threads", type=int, help="OMP/MKL threads per kernel (default: CPUs / workers)")
    p.add_argument("--sandbox", choices=["auto", "strict", "off"], default="auto",
                   help="auto: isolate where possible; strict: refuse to grade without isolation; off")
    p.add_argument("--network", action="store_true", help="let kernels use the network (default: none)")
    p.add_argument("--hide", action="append", default=[], help="another path kernels must not see")
    p.add_argument("--expose", action="append", default=[], help="another path kernels may read")
    p.add_argument("--no-prepare", dest="prepare", action="store_false",
                   help="skip converting the embedded model into its cache before grading")
    p.add_argument("--probe", action="store_true", help="only print what the sandbox can enforce here")

    p = sub.add_parser("feedback", help="nbgrader generate_feedback for an assignment")
    p.add_argument("assignment")
    p.add_argument("--force", action="store_true")
    p = sub.add_parser("export", help="nbgrader export of the gradebook to CSV")
    p.add_argument("--to", default="grades.csv", help="CSV file to write (default: grades.csv)")
    return parser


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Parse the command line and run one subcommand."""
    args = build_parser().parse_args(argv)
    root = Path(root or os.environ.get("COURSE_ROOT") or ROOT).resolve()
    if args.command == "release":
        release(root, names=args.assignment or None)
    elif args.command == "stamp":
        stamp(root)
    elif args.command == "collect":
        return collect(root, args.assignment, args.zip, args.roster, args.pattern, args.dry_run)
    elif args.command == "grade":
        return grade(root, args)
    elif args.command == "feedback":
        return nbgrader("generate_feedback", args.assignment, *(["--force"] if args.force else []),
                        root=root, check=False).returncode
    elif args.command == "export":
        return nbgrader("export", "--to", str(Path(args.to).resolve()), root=root, check=False).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
