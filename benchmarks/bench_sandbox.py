"""Sandbox overhead: a kernel started plainly vs through the grading sandbox, and one tiny submission graded both ways.

    python benchmarks/bench_sandbox.py [--reps 5]

Two measurements, each repeated ``--reps`` times, alternating the modes so that load on the
machine hits both alike:

* kernel start: jupyter_client starts an ipykernel (over ipc), waits until it answers, runs one
  statement and shuts it down; ``plain`` is the ordinary python3 kernel, ``sandbox`` the kernelspec
  that `course grade` writes (bubblewrap, cgroup, unprivileged uid);
* autograde: `course_tools.grade.grade_one` on one submission of the tiny test course (two
  notebooks, so two kernels), with ``--sandbox off`` and with the sandbox.

Prints median, min and max seconds per mode and the median difference (the per-kernel and
per-submission overhead).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from course_tools import grade, sandbox  # noqa: E402
from course_tools.environment import nbgrader_env  # noqa: E402


def kernel_round_trip(sandboxed: bool) -> float:
    """Start a kernel, execute one statement, shut it down; return the seconds it took."""
    import os

    from jupyter_client import KernelManager

    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmpdir:
        tmp = Path(tmpdir)
        opts = grade.GradeOptions(sandbox="auto" if sandboxed else "off")
        box = grade.sandbox_setup(tmp, tmp, opts) if sandboxed else grade.SandboxRun()
        old = os.environ.get("JUPYTER_PATH")
        os.environ.update(box.env)
        try:
            sock = tmp / "sock" if sandboxed else tmp
            start = time.perf_counter()
            km = KernelManager(kernel_name=sandbox.KERNEL_NAME if sandboxed else "python3", transport="ipc",
                               ip=str(sock / "kernel"), connection_file=str(tmp / "kernel.json"))
            work = tmp / "work"  # the kernel's working directory (the sandbox mounts a private one there)
            work.mkdir()
            km.start_kernel(cwd=str(work))
            client = km.client()
            client.start_channels()
            client.wait_for_ready(timeout=120)
            client.execute_interactive("x = 1 + 1", timeout=60)
            client.stop_channels()
            km.shutdown_kernel(now=False)
            took = time.perf_counter() - start
        finally:
            box.end()
            if box.cgroup is not None:
                box.cgroup.remove()
            if old is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old
    return took


def autograde(root: Path, sandboxed: bool) -> float:
    """Grade the tiny course's one submission; return the seconds it took."""
    opts = grade.GradeOptions(force=True, sandbox="auto" if sandboxed else "off", timeout=600)
    result = grade.grade_one(root, "tiny", "alice", opts)
    if result.status != "ok":
        raise SystemExit(f"grading failed ({'sandbox' if sandboxed else 'plain'}): {result.message} ({result.log})")
    return result.seconds


def row(name: str, times: list[float]) -> str:
    """Return one table row: median, min, max."""
    return f"{name:<22} {statistics.median(times):7.2f} {min(times):7.2f} {max(times):7.2f}"


def main() -> int:
    """Run both measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    import os

    import tiny_course as tc

    os.environ.update(PATH=nbgrader_env()["PATH"], HF_HUB_OFFLINE="1")
    report = sandbox.probe()
    if not report["isolation"]:
        print("warning: the sandbox is not isolating here:", "; ".join(report["errors"]), file=sys.stderr)
    times: dict[str, list[float]] = {k: [] for k in ("kernel plain", "kernel sandbox", "autograde plain",
                                                     "autograde sandbox")}
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-course-") as tmpdir:
        root = tc.build_course(Path(tmpdir) / "course")
        tc.submit(root, "alice", tc.FULL)
        autograde(root, False)  # warm-up: caches, the gradebook's first write
        for _ in range(args.reps):
            for sandboxed in (False, True):
                name = "sandbox" if sandboxed else "plain"
                times[f"kernel {name}"].append(kernel_round_trip(sandboxed))
                times[f"autograde {name}"].append(autograde(root, sandboxed))
    print(f"{'seconds (' + str(args.reps) + ' runs)':<22} {'median':>7} {'min':>7} {'max':>7}")
    for name, values in times.items():
        print(row(name, values))
    for what in ("kernel", "autograde"):
        extra = statistics.median(times[f"{what} sandbox"]) - statistics.median(times[f"{what} plain"])
        print(f"sandbox overhead, {what}: {extra:+.2f} s (median difference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
