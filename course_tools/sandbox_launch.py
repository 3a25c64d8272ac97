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

Without isolation (no bubblewrap here, or ``course grade --sandbox off``) see ``plain_start``: the
kernel gets the per-process limits, a private home, temporary and working folder, and as root the
policy's unprivileged uid (never root); a kernel that cannot be started that way is not started.
"""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import shutil
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
    if policy.get("_report_fd") is not None:  # opened before the uid change (the report is the grader's)
        os.write(policy["_report_fd"], (line + "\n").encode())
    elif policy.get("report"):
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


# ------------------------------------------------------------------- without bubblewrap (limits only)
# Where bwrap is missing (or under `course grade --sandbox off`) the kernel still never runs as root:
# the wrapper drops to the policy's uid itself. That uid must reach the interpreter and the packages,
# which often live under a private home (a pyenv build in /root, mode 0700); it must not see the
# course root (policy "hide"). Both are done the way bwrap does them, with one mount namespace: each
# folder to hide or that the uid cannot pass becomes an empty tmpfs into which exactly the needed
# paths are bound back (read-only, the socket folder read-write). Host permissions stay as they are.

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
SETUP_HINT = "apt-get install bubblewrap, or use a Python every user may read (e.g. a venv from /usr/bin/python3)"


def _libc_call(name: str, *args) -> None:
    """Call a libc function that returns 0 on success; raise OSError with errno otherwise."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _inside(path: str, folder: str) -> bool:
    """Return whether ``path`` is ``folder`` or below it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def can_pass(st: os.stat_result, uid: int, gid: int) -> bool:
    """Return whether a process of ``uid``/``gid`` (no other groups) may traverse a folder with this stat."""
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid == gid:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def blocked_folders(path: str, uid: int, gid: int) -> list[str]:
    """Return the ancestors of ``path`` that ``uid`` cannot pass through, outermost first."""
    found = []
    for parent in ["/", *_parents(path)]:
        try:
            if not can_pass(os.stat(parent), uid, gid):
                found.append(parent)
        except OSError:
            break
    return found


def private_mounts(needed: dict[str, bool], hide: list[str], uid: int, gid: int,
                   inject: str | None = None) -> list[str]:
    """Cover ``hide`` and every folder ``uid`` cannot pass on the way to a needed path with an empty tmpfs,
    in a new mount namespace, and bind the needed paths (path -> writable) back; return the covered folders.

    Nothing is mounted when nothing needs covering. Raises OSError when no mount namespace can be made.
    """
    covers = set(hide)
    for path in needed:
        covers.update(blocked_folders(path, uid, gid))
    outer = sorted(c for c in covers if os.path.isdir(c) and not any(o != c and _inside(c, o) for o in covers)
                   and not any(_inside(c, p) for p in needed))
    if not outer:
        return []
    if inject == "mount":
        raise OSError(1, "unshare: Operation not permitted (injected)")
    _libc_call("unshare", CLONE_NEWNS)
    _libc_call("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)  # nothing propagates back to the host
    old_umask = os.umask(0o022)
    try:
        for cover in outer:
            inside = sorted(p for p in needed if _inside(p, cover) and os.path.exists(p))
            inside = [p for p in inside if not any(q != p and _inside(p, q) for q in inside)]
            fds = {p: os.open(p, os.O_PATH) for p in inside}  # opened before the tmpfs hides them
            try:
                _libc_call("mount", b"tmpfs", cover.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                           b"mode=0755,size=1m")
                for path, fd in fds.items():
                    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                    if stat.S_ISDIR(os.fstat(fd).st_mode):
                        os.mkdir(path, 0o755)
                    else:
                        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                    _libc_call("mount", f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None)
                    if not needed[path]:
                        keep = os.statvfs(path).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
                        _libc_call("mount", None, path.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, None)
            finally:
                for fd in fds.values():
                    os.close(fd)
    finally:
        os.umask(old_umask)
    return outer


def _private_dir(parent: str, name: str) -> str:
    """Make a fresh folder of this (unprivileged) process under ``parent``; return its path."""
    path = os.path.join(parent, f"{name}-{os.urandom(6).hex()}")
    os.mkdir(path, 0o700)
    return path


def _write_new(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to a file that must not exist yet (never through a planted link)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def plain_start(policy: dict, command: list[str]) -> None:
    """Start the kernel without bwrap: as root, in the uid of the policy, never root; replace this process.

    As root: the needed paths are made reachable (and the course root hidden) in a private mount
    namespace, then the uid, gid and no groups are taken, with ``no_new_privs``. In every case the
    kernel gets a private home, temporary folder and working directory (a copy of the files the
    sandbox would hold) inside the grader's socket folder, and its own copy of the connection file.
    """
    root = os.geteuid() == 0
    uid, gid = policy.get("uid"), policy.get("gid")
    if root and uid in (None, 0):
        raise SandboxError("refusing to run student code as root: the policy names no unprivileged uid")
    sock = policy.get("socket_dir")
    # Everything root must read is read now: the connection file, the font cache, the working files.
    found = connection_argument(command)
    connection = read_nofollow(found[1]) if found else None
    home_files = []
    for src, rel in policy.get("home_files", []):
        try:
            home_files.append((rel, read_nofollow(src)))
        except OSError:
            continue
    work = workdir_files(Path(os.getcwd()), policy.get("submitted_dir")) if sock else []
    interpreter = os.path.realpath(shutil.which(command[0]) or command[0])
    if root:
        needed = {src: False for src, _ in policy.get("ro_binds", [])}
        needed[os.path.dirname(interpreter)] = False
        if sock:
            needed[sock] = True
        blocked = sorted({b for p in needed for b in blocked_folders(p, uid, gid)})
        try:
            private_mounts(needed, policy.get("hide", []), uid, gid, policy.get("inject_failure"))
        except OSError as err:
            if blocked:
                raise SandboxError(f"uid {uid} cannot reach {interpreter} ({blocked[0]} is mode "
                                   f"{stat.S_IMODE(os.stat(blocked[0]).st_mode):04o}; no mount namespace: "
                                   f"{err.strerror or err}): {SETUP_HINT}") from err
            print(f"course-sandbox: the course root is not hidden from the kernel: {err}", file=sys.stderr, flush=True)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        _libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if not os.access(interpreter, os.X_OK):
            raise SandboxError(f"uid {uid} cannot execute {interpreter}: {SETUP_HINT}")
    env = kernel_env(policy, dict(os.environ))
    if sock:
        if not os.access(sock, os.W_OK | os.X_OK):
            raise SandboxError(f"uid {os.getuid()} cannot write the socket folder {sock}")
        home = _private_dir(sock, "home")
        for rel, data in home_files:
            os.makedirs(os.path.dirname(os.path.join(home, rel)), mode=0o700, exist_ok=True)
            _write_new(os.path.join(home, rel), data)
        tmp = _private_dir(sock, "tmp")
        env.update(HOME=home, TMPDIR=tmp)
        if "MPLCONFIGDIR" in env:
            rel = os.path.relpath(env["MPLCONFIGDIR"], policy.get("home", "/home/student"))
            env["MPLCONFIGDIR"] = os.path.join(home, rel)
        cwd = _private_dir(sock, "work")
        for rel, fd in work:
            os.makedirs(os.path.dirname(os.path.join(cwd, rel)), mode=0o700, exist_ok=True)
            with os.fdopen(fd, "rb") as src:
                _write_new(os.path.join(cwd, rel), src.read(), 0o644)
        os.chdir(cwd)
        if connection is not None:
            private = os.path.join(_private_dir(sock, "run"), "connection.json")
            _write_new(private, connection)
            index, path = found
            command = [*command[:index], private if command[index] == path else f"--f={private}", *command[index + 1:]]
    set_rlimits(policy.get("limits", {}))
    if root:
        die_with_parent()  # set after the uid change, which clears it; kept across exec
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
        if not policy.get("isolate"):
            stage = "unprivileged start"
            if policy.get("report"):
                policy["_report_fd"] = os.open(policy["report"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            plain_start(policy, command)  # returns only by raising
        stage = "limits"
        set_rlimits(policy.get("limits", {}))
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
