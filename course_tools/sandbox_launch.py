"""The kernel wrapper: start one Jupyter kernel inside a bubblewrap sandbox described by a policy file.

A kernelspec written by ``course_tools.sandbox`` runs, as the kernel's command::

    python -m course_tools.sandbox_launch POLICY.json -- python -m ipykernel_launcher -f {connection_file}

This program only reads the policy (JSON, written by the grader next to the kernelspec) and carries
it out; it decides nothing. It imports nothing but the standard library, so the grading code and
the kernel wrapper stay separate. In order:

1. join the submission's cgroups (made by the grader: memory, pids and CPU limits for every
   process of the submission) and set per-process resource limits;
2. read the connection file (as the grader) and hand the kernel a private read-only copy;
3. run ``bwrap`` with an empty root and exactly the read-only binds the policy lists, a private
   size-limited working directory holding only the files this submission may see, private
   ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run`` and home, new PID, IPC, UTS, network and cgroup
   namespaces (a user namespace when not root), ``--die-with-parent``, ``--new-session``,
   ``--clearenv`` and the policy's allow-listed variables; as root the kernel itself runs as the
   policy's unprivileged uid (``setpriv``, no capabilities, ``no_new_privs``);
4. wait for the sandbox, with the kernel's stdout/stderr kept away from the grader's log.

If isolation was promised (``"isolate": true``) and any step fails, the kernel is not started:
the reason is appended to the policy's report file (the grader records the submission as an
infrastructure error) and this program exits with status 70.
"""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

INFRA_EXIT = 70  # EX_SOFTWARE: the sandbox could not be built; no student code ran
CONNECTION = "/run/kernel/connection.json"  # where the kernel reads its private copy
MAX_FILES = 400  # files copied into the private working directory (each one is an open descriptor)
SETUP_TIMEOUT = 60.0  # seconds bwrap may take to build the sandbox


class SandboxError(RuntimeError):
    """A step of building the sandbox failed; the message says which and why."""


def report_failure(policy: dict, stage: str, reason: str) -> None:
    """Append a failure record to the policy's report file and say it on stderr (the grader's log)."""
    line = json.dumps({"stage": stage, "reason": reason, "time": time.time()})
    print(f"course-sandbox: {stage} failed: {reason}; the kernel was not started", file=sys.stderr, flush=True)
    if policy.get("report"):
        with open(policy["report"], "a") as out:
            out.write(line + "\n")


def join_cgroups(policy: dict) -> None:
    """Move this process into the submission's cgroups (children inherit them)."""
    # The grader made the cgroups; joining is one write per hierarchy. No library needed.
    for procs in policy.get("cgroup_procs", []):
        with open(procs, "w") as fh:
            fh.write(str(os.getpid()))


def set_rlimits(limits: dict) -> None:
    """Apply the per-process limits (address space, CPU seconds, file size, open files, no core)."""
    table = [(resource.RLIMIT_AS, limits.get("memory", 0)), (resource.RLIMIT_CPU, limits.get("cpu_seconds", 0)),
             (resource.RLIMIT_FSIZE, limits.get("fsize", 0)), (resource.RLIMIT_NOFILE, limits.get("nofile", 0)),
             (resource.RLIMIT_CORE, 0)]
    for which, value in table:
        if not value and which != resource.RLIMIT_CORE:
            continue
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL a few seconds later at the hard one.
        top = value + 5 if which == resource.RLIMIT_CPU else value
        resource.setrlimit(which, (value, top if hard == resource.RLIM_INFINITY else min(top, hard)))


def connection_argument(command: list[str]) -> tuple[int, str] | None:
    """Return the index and path of the kernel's connection file (``-f PATH`` or ``--f=PATH``)."""
    for i, arg in enumerate(command):
        if arg == "-f" and i + 1 < len(command):
            return i + 1, command[i + 1]
        if arg.startswith("--f="):
            return i, arg.split("=", 1)[1]
    return None


def read_nofollow(path: str) -> bytes:
    """Return a file's bytes, refusing a symbolic link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def data_fd(data: bytes) -> int:
    """Return the read end of a pipe that holds ``data`` (bwrap copies it into the sandbox)."""
    read, write = os.pipe()
    os.write(write, data)  # small (a connection file, /etc/passwd): fits in the pipe buffer
    os.close(write)
    return read


def workdir_files(cwd: Path, submitted: str | None) -> list[tuple[str, int]]:
    """Open the files the kernel's working directory gets; return (relative path, descriptor) pairs.

    Non-notebook files come from the working directory nbgrader prepared (the student's files and
    the instructor's data files); notebooks only from the submitted folder, never the autograded
    copies, which carry the hidden tests. Symbolic links and special files are skipped.
    """
    chosen: dict[str, tuple[Path, int]] = {}

    def walk(top: Path, want) -> None:
        """Open every regular file under ``top`` that ``want(name)`` accepts."""
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            dirnames[:] = [d for d in dirnames if d != ".ipynb_checkpoints" and not d.startswith(".course-")]
            for name in filenames:
                path = Path(dirpath) / name
                if not want(name) or not stat.S_ISREG(path.lstat().st_mode):
                    continue
                rel = path.relative_to(top).as_posix()
                if rel in chosen:
                    os.close(chosen[rel][1])
                if len(chosen) >= MAX_FILES:
                    raise SandboxError(f"more than {MAX_FILES} files in {top}")
                chosen[rel] = (path, os.open(path, os.O_RDONLY | os.O_NOFOLLOW))

    if submitted:
        walk(cwd, lambda name: not name.endswith(".ipynb"))
        walk(Path(submitted), lambda name: name.endswith(".ipynb"))
    else:
        walk(cwd, lambda name: True)
    return [(rel, fd) for rel, (_, fd) in sorted(chosen.items())]


def _parents(path: str) -> list[str]:
    """Return the ancestors of an absolute path, outermost first, without ``/``."""
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def bwrap_argv(policy: dict, command: list[str], cwd: str, fds: list[int], connection: int | None = None) -> list[str]:
    """Return the bwrap command line for ``policy``; descriptors it reads are appended to ``fds``."""
    root = os.geteuid() == 0
    limits = policy.get("limits", {})
    tmp_size = str(limits.get("tmp_size") or 256 * 2**20)
    args = [policy["bwrap"], "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--hostname", policy.get("hostname", "sandbox"), "--clearenv"]
    if not policy.get("network"):
        args.append("--unshare-net")
    if root:
        # Root builds the mounts, then the kernel becomes the policy's uid (setpriv below). bwrap keeps
        # only the two capabilities setpriv needs for that; setpriv gives them up.
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                 "--cap-add", "CAP_SETPCAP"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    made: set[str] = {"/"}

    def dirs_for(dest: str, perms: str = "0755") -> None:
        """Create the missing ancestors of ``dest`` as directories with ``perms`` (default: traversable)."""
        for parent in _parents(dest):
            if parent not in made:
                args.extend(["--perms", perms, "--dir", parent])
                made.add(parent)

    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):  # merged-/usr systems: symlinks
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    made.update({"/usr", "/etc", "/proc", "/dev", "/tmp", "/var", "/run"})
    args += ["--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", tmp_size, "--tmpfs", "/tmp",
             "--perms", "1777", "--size", tmp_size, "--tmpfs", "/dev/shm",
             "--perms", "0755", "--dir", "/var", "--perms", "1777", "--size", tmp_size, "--tmpfs", "/var/tmp",
             "--perms", "0755", "--size", str(2**20), "--tmpfs", "/run", "--perms", "1777", "--dir", "/run/lock",
             "--perms", "0755", "--dir", "/run/kernel", "--perms", "0755", "--dir", "/etc"]
    if connection is not None:
        fds.append(connection)
        args += ["--perms", "0444", "--ro-bind-data", str(connection), CONNECTION]
    for name in policy.get("etc", []):  # the dynamic loader's cache and a few harmless files
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    uid, gid = policy.get("uid"), policy.get("gid")
    shown_uid = uid if root else os.getuid()
    shown_gid = gid if root else os.getgid()
    home = policy.get("home", "/home/student")
    passwd = f"root:x:0:0::/root:/bin/false\nstudent:x:{shown_uid}:{shown_gid}::{home}:/bin/false\n"
    group = f"root:x:0:\nstudent:x:{shown_gid}:\n"
    for name, text in (("passwd", passwd), ("group", group)):
        fd = data_fd(text.encode())
        fds.append(fd)
        args += ["--perms", "0444", "--ro-bind-data", str(fd), f"/etc/{name}"]
    dirs_for(home)
    args += ["--perms", "0700" if not root else "1777", "--size", tmp_size, "--tmpfs", home]
    made.add(home)
    # GPUs: the driver's device nodes, at their own paths (CUDA opens /dev/nvidiactl, /dev/nvidia0,
    # /dev/nvidia-uvm, ...); the driver's libraries are already there under /usr.
    for node in policy.get("devices", []):
        dirs_for(node)  # e.g. /dev/nvidia-caps: bwrap would make a missing parent 0700, closed to the kernel
        args += ["--dev-bind-try", node, node]
        made.add(node)
    for src, rel in policy.get("home_files", []):  # caches worth keeping (matplotlib's font list): copies
        dest = f"{home}/{rel}"
        try:
            fd = data_fd(read_nofollow(src))
        except OSError:
            continue  # a cache only: without it the kernel rebuilds it
        fds.append(fd)
        dirs_for(dest, "0777")  # the kernel writes there (matplotlib updates its cache)
        args += ["--perms", "0666", "--file", str(fd), dest]
    for src, dest in policy.get("ro_binds", []):
        dirs_for(dest)
        args += ["--ro-bind", src, dest]
        made.add(dest)
    sock = policy.get("socket_dir")
    if sock:
        dirs_for(sock)
        args += ["--bind", sock, sock]
        made.add(sock)
    # The private working directory, at the path nbgrader chose, holding only what the kernel may see.
    dirs_for(cwd)
    args += ["--perms", "1777", "--size", str(limits.get("workdir_size") or 256 * 2**20), "--tmpfs", cwd]
    for rel, fd in workdir_files(Path(cwd), policy.get("submitted_dir")):
        fds.append(fd)
        dest = f"{cwd}/{rel}"
        for parent in _parents(dest):
            if parent not in made and parent.startswith(cwd + "/"):
                args += ["--perms", "1777", "--dir", parent]
                made.add(parent)
        args += ["--perms", "0666", "--file", str(fd), dest]
    for name, value in sorted(kernel_env(policy, dict(os.environ)).items()):
        args += ["--setenv", name, value]
    args += ["--chdir", cwd]
    if root:
        args += [policy["setpriv"], f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs",
                 "--inh-caps=-all", "--bounding-set=-all", "--"]
    return args + command


def kernel_env(policy: dict, environ: dict[str, str]) -> dict[str, str]:
    """Return the kernel's environment: the policy's fixed values plus allow-listed variables."""
    env = {}
    allowed = set(policy.get("env_pass", []))
    prefixes = tuple(policy.get("env_pass_prefixes", []))
    for name, value in environ.items():
        if name in allowed or (prefixes and name.startswith(prefixes)):
            env[name] = value
    env.update(policy.get("env", {}))
    return env


def die_with_parent() -> None:
    """Get SIGTERM (then take the sandbox down) when the process that started this wrapper dies."""
    # Python has no prctl(); this one call through ctypes is all that is needed. Without it a killed
    # nbgrader would leave this wrapper, and so the sandbox (bwrap --die-with-parent), running.
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() == 1:  # the parent died before the call above
        raise SandboxError("the grader exited before the kernel started")


def run_sandbox(policy: dict, argv: list[str], fds: list[int]) -> int:
    """Start bwrap, check that it built the sandbox, then wait for it; return its exit status."""
    status_read, status_write = os.pipe()
    argv = [argv[0], "--json-status-fd", str(status_write), *argv[1:]]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            pass_fds=[*fds, status_write], close_fds=True)
    os.close(status_write)
    for fd in fds:
        os.close(fd)

    def stop(signum, frame) -> None:
        """Take the sandbox down with this wrapper (jupyter_client sends SIGTERM on shutdown)."""
        proc.kill()
        proc.wait()
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop)
    sel = selectors.DefaultSelector()
    sel.register(status_read, selectors.EVENT_READ, "status")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    status, errors = b"", b""
    init_pid, started = None, False
    deadline = time.monotonic() + SETUP_TIMEOUT
    # bwrap reports its first child's pid at once, before it builds the sandbox; that child forks the
    # command only once every mount and namespace is in place. So the sandbox counts as built when
    # that child has a child of its own. Both pipes are read to the end: closing the status pipe
    # early would kill bwrap (SIGPIPE); what arrives on stderr after the start is the student's,
    # dropped and never written to the grader's log.
    while sel.get_map():
        for key, _ in sel.select(timeout=0.02 if not started else 1.0):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
            elif key.data == "status":
                status += chunk
                found = re.search(rb'"child-pid"\s*:\s*(\d+)', status)
                init_pid = int(found.group(1)) if found else None
            elif not started:
                errors += chunk[: 4096 - len(errors)]
        if not started and init_pid is not None:
            started = has_children(init_pid)
        if not started and time.monotonic() > deadline:
            proc.kill()
            errors += b"\nbwrap did not start the kernel within %d s" % SETUP_TIMEOUT
            break
    sel.close()
    rc = proc.wait()
    if not started and rc != 0:
        reason = errors.decode(errors="replace").strip() or f"bwrap exited with {rc} before starting the kernel"
        raise SandboxError(reason.splitlines()[-1])
    return rc


def has_children(pid: int) -> bool:
    """Return whether process ``pid`` has a child (read from /proc)."""
    try:
        return bool(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return False


def plain_start(policy: dict, command: list[str]) -> None:
    """Without isolation: as root, become the policy's uid; then replace this process by the kernel."""
    if os.geteuid() == 0 and policy.get("uid") is not None:
        os.setgroups([])
        os.setresgid(policy["gid"], policy["gid"], policy["gid"])
        os.setresuid(policy["uid"], policy["uid"], policy["uid"])
    env = kernel_env(policy, dict(os.environ))
    os.execvpe(command[0], command, env)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m course_tools.sandbox_launch POLICY.json -- COMMAND...``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m course_tools.sandbox_launch POLICY.json -- COMMAND...", file=sys.stderr)
        return 2
    policy = json.loads(Path(argv[0]).read_text())
    command = argv[2:]
    stage = "policy"
    try:
        if policy.get("inject_failure") == "cgroup":  # for the fail-closed tests
            policy["cgroup_procs"] = [*policy.get("cgroup_procs", []), "/nonexistent/course-sandbox/cgroup.procs"]
        if policy.get("inject_failure") == "bind":
            policy["ro_binds"] = [*policy.get("ro_binds", []), ["/nonexistent/course-sandbox", "/mnt/injected"]]
        stage = "cgroup"
        join_cgroups(policy)
        stage = "limits"
        set_rlimits(policy.get("limits", {}))
        if not policy.get("isolate"):
            plain_start(policy, command)
        die_with_parent()
        stage = "connection file"
        found = connection_argument(command)
        fds: list[int] = []
        connection = None
        if found is not None:
            index, path = found
            connection = data_fd(read_nofollow(path))
            command = [*command[:index], CONNECTION if command[index] == path else f"--f={CONNECTION}",
                       *command[index + 1:]]
        stage = "bwrap"
        args = bwrap_argv(policy, command, os.getcwd(), fds, connection)
        return run_sandbox(policy, args, fds)
    except (OSError, SandboxError, KeyError, ValueError, subprocess.SubprocessError) as err:
        report_failure(policy, stage, f"{type(err).__name__}: {err}" if not isinstance(err, SandboxError) else str(err))
        return INFRA_EXIT


if __name__ == "__main__":
    sys.exit(main())
