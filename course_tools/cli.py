"""`course`: the instructor's command line for the whole nbgrader loop of this course.

The loop, run inside the course (the course root is the first folder holding nbgrader_config.py
upward from the current directory, else $COURSE_ROOT; every path derives from it):

  1. course release                  source/<a>/ -> release/<a>/ (nbgrader generate_assignment) for
                                     every assignment, Colab badge and bootstrap cells stamped.
                                     Students open release/ notebooks in JupyterLab or on Colab.
                                     The practice assignment `lectures` (source/lectures/) is
                                     released into notebooks/ instead (course_tools/release.py).
  2. course collect <a> <zip>        an LMS/Colab download of notebooks -> submitted/<student>/<a>/
                                     (student ids from file names; see `course collect --help`).
  3. course grade <a> --workers N    nbgrader autograde, N submissions at a time (or on a Dask
                                     cluster: --scheduler tcp://host:port), each kernel sandboxed
                                     and limited; results in the nbgrader gradebook.
     (manual grading: nbgrader formgrader / JupyterLab's Formgrader, unchanged)
  4. course feedback <a>             nbgrader generate_feedback -> feedback/<student>/<a>/*.html
                                     (hidden tests replaced by a placeholder, scripts removed)
  5. course export [--to grades.csv] one row per student and assignment: score, max, status
                                     (ok / needs attention / failed / missing), what grading
                                     repaired, and a weighted total (see `course export --help`).

`course stamp` rewrites the Colab cells of every lecture and source notebook.
`course publish DEST` writes the public student repository (student notebooks and helpers, never
source/); keep this instructor repository private.
Everything else (formgrader, db student import, validate) is plain nbgrader in the course root.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from helpers.config import CourseRootNotFound, course_config, find_course_root, parse_size

from . import release as lecture_release
from .colab import stamp_notebook, stamp_readme
from .environment import nbgrader_env

GRADE_HELP = """\
Autograde every submission of ASSIGNMENT under submitted/ with nbgrader's own autograde, several at a
time: each submission is one `python -m nbgrader autograde ASSIGNMENT --student ID` process in the
course root, writing to the shared sqlite gradebook exactly what a sequential `nbgrader autograde`
writes (retried if SQLite says "database is locked"). A notebook that crashes, hangs past --timeout
or is killed scores 0 for its cells and is reported ("needs attention"); the submission's other
notebooks are then graded one by one, each within --timeout. A submission of which nothing could be
graded is a recorded result (failed / timeout), and the batch goes on. Before any worker starts, the
gradebook must exist at nbgrader's schema, the assignment be released into it and source/ unchanged
since: otherwise one line says which command to run (exit code 2). Already autograded submissions
are skipped unless --force (a failed one is retried). A progress bar goes to stderr, a summary table
(student, score, max, status, seconds) to stdout; results and per-student nbgrader logs are kept in
autograded/.course-grade/ASSIGNMENT/.

--scheduler tcp://host:port sends the submissions to the workers of a running Dask scheduler
(`dask scheduler`, then `dask worker tcp://host:port --nthreads 1` on each machine). ASSUMES A SHARED
FILE SYSTEM: every worker must see the course root at the same path, and the same Python
environment (this package included); the sqlite gradebook must be on a file system with working
locks (not most NFS mounts).

Sandbox (--sandbox auto, the default): each kernel that runs student code is started by
`python -m course_tools.sandbox_launch POLICY.json` (one policy file per submission, next to the
kernelspec written for this run), which builds its world with bubblewrap. `course grade --probe`
(no assignment needed) checks every point below on this machine and names what is missing.
ISOLATED (when the probe passes): an empty root holding only read-only binds of /usr, the Python
environment, the helpers package, the model caches (cache_dir in course.toml, the Hugging Face hub
cache, the model packages), the course settings file and each --expose path; a private, size-limited
working directory holding only this submission's own notebooks (never the autograded copies that
carry the hidden tests) and the assignment's data files; private /tmp, /var/tmp, /dev/shm, /run and
home, all gone when the kernel ends; new PID, IPC, UTS, network (no network at all; nbgrader talks to
the kernel over Unix sockets) and cgroup namespaces; as root, an unprivileged uid per submission
with no capabilities and no_new_privs (without root, a user namespace); only allow-listed
environment variables; none of the grader's file descriptors. LIMITS: a cgroup per submission
(memory and swap for all its processes together, --memory; processes, grade_pids in course.toml;
a CPU share and a quota of CPUs / workers, so a neighbour cannot starve it); per process: address
space (--memory), CPU time (--cpu), largest written file; wall time per submission (--timeout);
output size (nbgrader's LimitOutput in nbgrader_config.py). When the submission ends, every process
it started is killed (its PID namespace and its cgroup). FAIL CLOSED: once the probe has passed (or
with --sandbox strict), a submission whose sandbox cannot be built is not run and is recorded with
status "error" and the reason. NOT ENFORCED: where the probe fails, --sandbox auto warns and applies
the per-process limits only (--sandbox strict refuses to grade): no namespaces, but as root each
kernel still runs as a uid of its own (never root), with the course root hidden where a mount
namespace can be made; where that uid cannot reach the Python interpreter (a private home such as
/root), every submission is an "error" whose note says what to install. --sandbox off drops the
limits and cgroups too (as root, still never root); without root it runs kernels as you. Without
cgroups (the probe says so) the memory, process and CPU limits are per process; and, as in any
nbgrader setup, code in a
submission runs in the same kernel as its tests, so it can tamper with its own results (not anyone
else's): review suspicious submissions in formgrader.
"""


def assignments(root: Path) -> list[str]:
    """Return the assignment names found under source/."""
    return sorted(p.name for p in (root / "source").iterdir() if p.is_dir() and not p.name.startswith("."))


def nbgrader(*args: str, root: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader subcommand in the course root (so nbgrader_config.py applies)."""
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, check=check, env=nbgrader_env())


def record(root: Path, names: list[str] | None = None, force: bool = False) -> int:
    """Record the hidden checks' answers of the reference solutions (stale notebooks only, unless ``force``)."""
    from . import checks

    for name in names or assignments(root):
        try:
            written = checks.record_stale(root, name, force=force)
        except checks.RecordError as err:
            print(f"course record: {err}", file=sys.stderr)
            return 1
        state = f"recorded {len(written)} notebook(s)" if written else "answers up to date"
        print(f"{name}: {state} in {root / checks.EXPECTED_DIR / name}")
    return 0


def release(root: Path, names: list[str] | None = None) -> None:
    """Generate release/<assignment>/ from source/ for each assignment and stamp its Colab cells."""
    for name in names or assignments(root):
        if record(root, [name]):  # the grader compares with these answers: a stale one fails closed
            raise SystemExit(1)
        if name == lecture_release.LECTURES:  # the lectures' release is notebooks/, not release/lectures/
            lecture_release.release_lectures(root)
            print(f"released {name} -> {root / lecture_release.STUDENT_DIR}")
            continue
        nbgrader("generate_assignment", name, "--force", "--create", root=root)
        for path in sorted((root / "release" / name).glob("*.ipynb")):
            stamp_notebook(path, relative_to=root)
        print(f"released {name} -> {root / 'release' / name}")


def stamp(root: Path) -> None:
    """Rewrite the Colab badge and bootstrap cells of every lecture and source notebook."""
    for path in sorted([*root.glob("notebooks/*.ipynb"), *root.glob("source/*/*.ipynb")]):
        lecture = path.parent == root / "source" / lecture_release.LECTURES  # badge opens notebooks/<name>
        changed = (lecture_release.stamp_as(path, lecture_release.published_path(path), root) if lecture
                   else stamp_notebook(path, relative_to=root))
        print(("stamped    " if changed else "up to date ") +
              str(path.relative_to(root)))
    for path in sorted(root.glob("source/*/README.md")):  # the hand-in section, copied into the release
        print(("stamped    " if stamp_readme(path) else "up to date ") + str(path.relative_to(root)))


def publish(root: Path, args: argparse.Namespace) -> int:
    """Run `course publish`: refuse in one line (nothing written), or publish and print what was done."""
    from . import publish as pub
    from .colab import STUDENT_KEY, set_repository_url, student_repository_url

    try:
        if args.repository:
            if not pub.has_host(args.repository):
                raise ValueError(f"--repository {args.repository}: give the public URL, e.g. "
                                 "https://github.com/OWNER/NAME")
            student_repository_url(root)  # the line to update must exist before anything is written
        result = pub.publish(root, args.dest, url=args.repository)
    except (pub.PublishRefused, ValueError) as err:
        print(f"course publish: refused: {err}", file=sys.stderr)
        return 2
    if args.repository and set_repository_url(args.repository, root, key=STUDENT_KEY):
        print(f"pyproject.toml: [project.urls] {STUDENT_KEY} = {args.repository}")
    print(pub.summary(result))
    return 0


def collect(root: Path, args: argparse.Namespace) -> int:
    """Collect a zip of notebooks into submitted/; return 0, or 2 when files were unmatched or rejected."""
    import csv
    import re
    import tempfile
    import zipfile

    from . import collect as col

    settings = course_config(root)
    refused: list[str] = []
    try:
        roster = col.read_roster(args.roster) if args.roster else None
        if roster is not None:  # its ids reach the gradebook: the same check as the download's ids
            roster, refused = col.check_roster(roster)
        found = col.collect(args.zip, col.notebook_names(root, args.assignment),
                            root=None if args.dry_run else root, assignment=args.assignment, roster=roster,
                            lms=args.lms, pattern=args.pattern,
                            max_notebook=parse_size(args.max_notebook or settings.collect_max_notebook),
                            max_total=parse_size(args.max_total or settings.collect_max_total))
    except (OSError, ValueError, re.error, zipfile.BadZipFile) as err:  # unusable download or options: nothing done
        print(f"course collect: {err}", file=sys.stderr)
        return 2
    if roster and not args.dry_run:
        # nbgrader's own import, from a CSV with a header whatever the roster's shape was.
        columns = ["id", *sorted({k for row in roster for k in row} - {"id"})]
        with tempfile.NamedTemporaryFile("w", suffix=".csv", newline="", delete=False) as tmp:
            csv.DictWriter(tmp, columns, restval="").writeheader()
            csv.DictWriter(tmp, columns, restval="").writerows(roster)
        done = subprocess.run([sys.executable, "-m", "nbgrader", "db", "student", "import", tmp.name], cwd=root,
                              env=nbgrader_env(), capture_output=True, text=True)
        Path(tmp.name).unlink()
        print(f"roster: {len(roster)} student(s) imported into the gradebook" if done.returncode == 0 else
              f"course collect: WARNING the roster was not imported into the gradebook:\n{done.stderr[-2000:]}",
              file=sys.stdout if done.returncode == 0 else sys.stderr)
    print(col.report(found))
    if args.dry_run:
        print("(dry run: nothing written)")
    if found.problems:
        print(f"course collect: {len(found.unmatched)} unmatched and {len(found.rejected)} rejected file(s) "
              "not collected (listed above)", file=sys.stderr)
    for line in refused:
        print(f"course collect: {line} (not imported into the gradebook)", file=sys.stderr)
    return 2 if found.problems or refused else 0


def grade(root: Path, args: argparse.Namespace) -> int:
    """Run `course grade`: probe the sandbox, warm the model cache, grade, print the summary."""
    from . import grade as g
    from . import sandbox

    settings = course_config(root)
    problem = g.preconditions(root, args.assignment)  # before any probe or worker: one line, the command to run
    if problem:
        print(f"course grade: {problem}", file=sys.stderr)
        return 2
    if args.sandbox == "off":
        print("course grade: WARNING --sandbox off: no isolation, no cgroups, no limits; " +
              ("each kernel still runs as an unprivileged uid of its own, never root" if os.geteuid() == 0 else
               f"kernels run as you (uid {os.getuid()}) and may read and change what you may: source/ with "
               "the hidden tests, the gradebook, other submissions"), file=sys.stderr)
    report = sandbox.probe(root) if args.sandbox != "off" else {}
    if args.sandbox != "off" and not report.get("isolation"):
        why = "; ".join(report.get("errors", [])) or "see course grade --probe"
        if args.sandbox == "strict":
            print(f"course grade: kernel isolation unavailable here ({why}); refusing (--sandbox strict)",
                  file=sys.stderr)
            return 3
        print(f"course grade: WARNING kernel isolation unavailable ({why}): limits only", file=sys.stderr)
    if args.sandbox != "off" and not report.get("cgroups"):
        print("course grade: WARNING no per-submission cgroups (see course grade --probe): memory, process and "
              "CPU limits are per process only", file=sys.stderr)

    if args.prepare:
        # The sandbox mounts the model cache read-only: convert the embedded model once, here (the
        # installed helpers, whether or not the course root is the checkout they came from).
        subprocess.run([sys.executable, "-m", "helpers.embedded"], cwd=root, env=nbgrader_env(),
                       stdout=subprocess.DEVNULL, check=False)
    if os.geteuid() == 0:
        # Kernels run as an unprivileged uid (in every mode): the course's own model cache must be world-readable
        # (save_pretrained writes model.safetensors 0600). Only this cache, never ~/.cache/huggingface.
        cache = settings.cache_path
        if g.share_readable(cache):
            print(f"course grade: made {cache} readable by the sandboxed kernels", file=sys.stderr)
    # A flag given on the command line wins; otherwise the course's settings (course.toml, LLM_COURSE_*).
    timeout = args.timeout if args.timeout is not None else settings.grade_timeout
    memory = args.memory if args.memory is not None else settings.grade_memory
    cpu = args.cpu if args.cpu is not None else settings.grade_cpu
    workers = args.workers or settings.grade_workers or os.cpu_count() or 1
    opts = g.GradeOptions(force=args.force, timeout=timeout, sandbox=args.sandbox,
                          memory=sandbox.parse_size(memory), cpu=cpu, kernel_threads=args.kernel_threads,
                          network=args.network, gpu=args.gpu, expose=args.expose, pids=getattr(settings, "grade_pids", 256),
                          isolate=bool(report.get("isolation")) or args.sandbox == "strict",
                          cgroups=bool(report.get("cgroups")))
    os.environ.update(PATH=nbgrader_env()["PATH"])
    results = g.grade_all(root, args.assignment, opts, workers=workers, scheduler=args.scheduler,
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
    p = sub.add_parser("record", help="record the reference solutions' answers to the hidden checks "
                       "(expected/, instructor-only; `release` does it for changed notebooks)")
    p.add_argument("assignment", nargs="*")
    p.add_argument("--force", action="store_true", help="record every notebook, not only the changed ones")
    p = sub.add_parser("stamp", help="rewrite every notebook's Colab badge and bootstrap cell")
    p.add_argument("--repository", metavar="URL",
                   help="first set [project.urls] Repository in pyproject.toml to URL (the repository "
                        "students' Colab installs the course from), then stamp")
    from . import publish as pub

    p = sub.add_parser("publish", help="write or update the student repository DEST (git commit; never source/)",
                       description=pub.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dest", type=Path, help="the student repository: a new or empty folder, or its clean clone")
    p.add_argument("--repository", metavar="URL",
                   help="the student repository's public URL: set as [project.urls] Student-Repository in "
                        "pyproject.toml, then published notebooks name it")

    from . import collect as col

    p = sub.add_parser("collect", help="unpack an LMS/Colab zip of notebooks into submitted/",
                       description=col.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("assignment")
    p.add_argument("zip", type=Path, help="the zip downloaded from the LMS (or made from Colab downloads)")
    p.add_argument("--roster", type=Path, help="nbgrader's student CSV (`id`, first_name, last_name, email, "
                   "lms_user_id) or one id per line; also imported into the gradebook")
    p.add_argument("--lms", choices=["auto", *col.LAYOUTS], default="auto",
                   help="how the download names students (default: detected, and the report says which)")
    p.add_argument("--pattern", help="regex with named groups `student` and `notebook`, searched in each path")
    p.add_argument("--max-notebook", help="largest notebook unpacked, e.g. 20M (default: collect_max_notebook "
                   "in course.toml, 20M)")
    p.add_argument("--max-total", help="most bytes unpacked from one download (default: collect_max_total, 2G)")
    p.add_argument("--dry-run", action="store_true", help="only report how files would be mapped and checked")

    p = sub.add_parser("grade", help="autograde submissions in parallel, sandboxed (local or Dask)",
                       description=GRADE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("assignment", nargs="?", help="the assignment to grade (not needed with --probe)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int,
                       help="submissions graded at once on this machine (default: grade_workers in "
                            "course.toml, else the CPU count)")
    where.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (shared FS!)")
    p.add_argument("--student", action="append", default=[], help="grade only this student (repeatable)")
    p.add_argument("--force", action="store_true", help="regrade submissions that are already autograded")
    p.add_argument("--timeout", type=float, help="wall-time limit per submission, seconds "
                   "(default: grade_timeout in course.toml, 1800)")
    p.add_argument("--memory", help="address-space limit of each kernel, e.g. 6G (default: grade_memory, 6G)")
    p.add_argument("--cpu", type=int, help="CPU-time limit of each kernel, seconds (default: grade_cpu, 1800)")
    p.add_argument("--kernel-threads", type=int, help="OMP/MKL threads per kernel (default: CPUs / workers)")
    p.add_argument("--sandbox", choices=["auto", "strict", "off"], default="auto",
                   help="auto: isolate where possible; strict: refuse to grade without isolation; off: no "
                        "sandbox or limits (as root, kernels still run as an unprivileged uid)")
    p.add_argument("--network", action="store_true", help="let kernels use the network (default: none)")
    p.add_argument("--no-gpu", dest="gpu", action="store_false",
                   help="hide this machine's GPUs from sandboxed kernels (default: kernels see them)")
    p.add_argument("--expose", action="append", default=[], help="another path kernels may read (read-only)")
    p.add_argument("--no-prepare", dest="prepare", action="store_false",
                   help="skip converting the embedded model into its cache before grading")
    p.add_argument("--probe", action="store_true",
                   help="only check and print what the sandbox enforces on this machine (no ASSIGNMENT needed)")

    p = sub.add_parser("feedback", help="nbgrader generate_feedback for an assignment")
    p.add_argument("assignment")
    p.add_argument("--force", action="store_true")
    from . import export as exp

    p = sub.add_parser("export", help="grades, status and events per student and assignment to CSV",
                       description=exp.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--to", default="grades.csv", help="CSV file to write (default: grades.csv)")
    return parser


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Parse the command line and run one subcommand."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "grade" and args.probe:  # a property of this machine: no course or assignment needed
        from . import sandbox

        report = sandbox.probe(Path(root) if root else find_course_root(required=False))
        print(sandbox.format_probe(report))
        return 0 if report["isolation"] else 1
    if args.command == "grade" and not args.assignment:
        parser.error("course grade: give the ASSIGNMENT to grade (or --probe)")
    try:  # the course around the current directory, never the checkout this package came from
        root = Path(root).resolve() if root else find_course_root()
    except CourseRootNotFound as err:
        print(f"course: {err}", file=sys.stderr)
        return 2
    # Child processes (nbgrader, its kernels, helpers.course_config) then see the same course.
    os.environ["COURSE_ROOT"] = str(root)
    if args.command == "release":
        release(root, names=args.assignment or None)
    elif args.command == "record":
        return record(root, args.assignment or None, force=args.force)
    elif args.command == "stamp":
        if args.repository:
            from .colab import set_repository_url

            set_repository_url(args.repository, root)
            print(f"pyproject.toml: [project.urls] Repository = {args.repository}")
        stamp(root)
    elif args.command == "publish":
        return publish(root, args)
    elif args.command == "collect":
        return collect(root, args)
    elif args.command == "grade":
        return grade(root, args)
    elif args.command == "feedback":
        return nbgrader("generate_feedback", args.assignment, *(["--force"] if args.force else []),
                        root=root, check=False).returncode
    elif args.command == "export":
        from . import export as exp

        data = exp.export(root, Path(args.to).resolve())
        print(f"wrote {len(data)} rows to {Path(args.to).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
