"""Kernel sandbox: run a kernel (the process that executes student code) with isolation and limits.

Used as the argv prefix of a kernelspec::

    python -m course_tools.sandbox --root COURSE [options] -- python -m ipykernel_launcher -f {connection_file}

Before it ``exec``s the kernel it applies, as far as the platform allows (``--probe`` prints what):

* resource limits (always): address space (``RLIMIT_AS``), CPU seconds (``RLIMIT_CPU``), size of any
  file written (``RLIMIT_FSIZE``), processes/threads (``RLIMIT_NPROC``), open files, no core dumps;
* a private mount namespace (needs root): the course root, the home directory, ``/tmp``, ``/var/tmp``
  and ``/dev/shm`` are covered by empty tmpfs mounts; only the Python installation, the packages on
  ``sys.path`` (``helpers`` but not ``course_tools``), the model caches and ``--expose`` paths are bound
  back read-only, and the working directory becomes a private tmpfs holding a copy of the
  submission's own files (its non-notebook files and the notebooks as the student submitted them,
  never the autograded copies that carry hidden tests);
* a private network namespace (needs root): no interface but a down loopback, so no connection
  to anything, 127.0.0.1 included. The kernel must then talk to nbgrader over ``ipc`` (Unix
  sockets): ``--KernelManager.transport=ipc`` (``course grade`` sets it);
* an unprivileged, per-kernel user id (needs root) with ``no_new_privs``, so the kernel can't undo
  the mounts, can't write files owned by the instructor and can't signal or trace other kernels;
* ``PR_SET_PDEATHSIG``: the kernel dies with the process that started it.

Environment variables whose names look like credentials are removed from the kernel's environment.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import re
import resource
import signal
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
MARKER = ".course-sandbox-runtime"  # a runtime directory that the launcher may hand to the kernel's uid
UID_BASE = 2_000_000  # kernel uid = UID_BASE + launcher pid: unique among running kernels
SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|^AWS_|^GH_|^GITHUB_")
KERNEL_NAME = "course-sandbox"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


@dataclass
class Limits:
    """Per-kernel resource limits (bytes, seconds, counts); 0 means unlimited."""

    memory: int = 6 * 2**30
    cpu: int = 1800
    fsize: int = 256 * 2**20
    nproc: int = 512
    nofile: int = 1024
    workdir_size: int = 256 * 2**20


@dataclass
class Policy:
    """What the launcher does: limits, which paths to hide and expose, and which layers to use."""

    root: Path | None = None
    limits: Limits = field(default_factory=Limits)
    hide: list[Path] = field(default_factory=list)
    expose: list[Path] = field(default_factory=list)
    copy: list[Path] = field(default_factory=list)
    isolate: bool = True
    network: bool = False
    strict: bool = False


def _check(rc: int, what: str) -> None:
    """Raise OSError with errno if a libc call returned -1."""
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """Call mount(2)."""
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def unshare(flags: int) -> None:
    """Call unshare(2)."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def prctl(option: int, arg: int) -> None:
    """Call prctl(2) with one argument."""
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl {option}")


def parse_size(text: str | int) -> int:
    """Parse a size such as 4G, 512M, 100k or a plain number of bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)i?[bB]?\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 4G, 512M)")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def _under(path: Path, parent: Path) -> bool:
    """Return whether ``path`` is ``parent`` or inside it."""
    return path == parent or parent in path.parents


def default_hidden(root: Path | None) -> list[Path]:
    """Return the directories covered by an empty tmpfs: course root, home, temporary directories."""
    paths = [Path.home(), Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")]
    if root is not None:
        paths.insert(0, root)
    paths += _package_dirs(["course_tools"])  # the instructor's tools, never the students'
    return [p.resolve() for p in paths if p.exists()]


def _package_dirs(names: list[str]) -> list[Path]:
    """Return the directories of importable top-level packages without importing them."""
    import importlib.util

    found = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            found.append(Path(location))
    return found


def default_exposed(root: Path | None) -> list[Path]:
    """Return what the kernel may read: Python, sys.path, course packages and settings, model caches."""
    home = Path.home()
    paths = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).parent]
    paths += [Path(p) for p in sys.path if p]
    paths += _package_dirs(["helpers"])
    paths += [home / ".cache" / "llm-course", home / ".cache" / "huggingface", home / ".cache" / "torch"]
    for var in ("HF_HOME", "HF_HUB_CACHE", "TRANSFORMERS_CACHE", "LLM_COURSE_CACHE_DIR", "LLM_COURSE_CONFIG"):
        if os.environ.get(var):
            paths.append(Path(os.environ[var]))
    if root is not None:
        paths.append(root / "course.toml")
    return paths


def default_copied() -> list[Path]:
    """Return small directories the kernel gets a private writable copy of (matplotlib's caches)."""
    home = Path.home()
    return [home / ".cache" / "matplotlib", home / ".config" / "matplotlib"]


def _copy_tree_from_fd(src_fd: int, dest: Path, skip_notebooks: bool, uid: int) -> None:
    """Copy the directory open as ``src_fd`` into ``dest`` (optionally without *.ipynb), owned by ``uid``."""
    for dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=src_fd):
        dirnames[:] = [d for d in dirnames if d not in (".ipynb_checkpoints",)]
        target = dest / dirpath
        target.mkdir(parents=True, exist_ok=True)
        os.chown(target, uid, uid)
        for name in filenames:
            if skip_notebooks and name.endswith(".ipynb"):
                continue
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                continue
            fd = os.open(name, os.O_RDONLY, dir_fd=dirfd)
            with os.fdopen(fd, "rb") as src, open(target / name, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            os.chown(target / name, uid, uid)


def _submitted_counterpart(cwd: Path, root: Path | None) -> Path | None:
    """Map ``<root>/autograded/<student>/<assignment>`` to ``<root>/submitted/<student>/<assignment>``."""
    if root is None or not _under(cwd, root / "autograded"):
        return None
    rel = cwd.relative_to(root / "autograded")
    candidate = root / "submitted" / rel
    return candidate if len(rel.parts) == 2 and candidate.is_dir() else None


def _mountpoint(target: Path, is_dir: bool) -> None:
    """Create an empty directory or file at ``target`` (and its parents) to mount onto."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        target.mkdir(exist_ok=True)
    elif not target.exists():
        target.touch()


def _closed_ancestors(paths: list[Path]) -> set[Path]:
    """Return the highest directory above each path that other users cannot traverse (e.g. /root)."""
    closed = set()
    for path in paths:
        for parent in reversed(path.parents):
            if parent != Path("/") and not parent.stat().st_mode & 0o001:
                closed.add(parent)
                break
    return closed


def isolate(policy: Policy, uid: int, cwd: Path, writable: list[Path]) -> list[str]:
    """Enter private mount and network namespaces and build the kernel's view; return what was done."""
    done = []
    exposed = [p.resolve() for p in policy.expose if p.exists()]
    # An exposed path under a directory the kernel's uid cannot enter (Python under /root when HOME
    # is elsewhere) would be unreachable: hide that directory too, so the path is bound back into a
    # traversable tmpfs like every other exposed path.
    hidden = {p.resolve() for p in policy.hide if p.exists()} | _closed_ancestors(exposed)
    hide = sorted(hidden, key=lambda p: len(p.parts))
    hide = [p for i, p in enumerate(hide) if not any(_under(p, q) for q in hide[:i])]
    # Exposed paths: resolved, existing, not containing a hidden path, not nested in one another.
    wanted = {p.resolve() for p in [*policy.expose, *writable] if p.exists()}
    wanted = {p for p in wanted if not any(_under(h, p) for h in hide) and not _under(p, cwd)}
    wanted = sorted(wanted, key=lambda p: len(p.parts))
    wanted = [p for i, p in enumerate(wanted) if not any(_under(p, q) for q in wanted[:i])]
    wanted = [p for p in wanted if any(_under(p, h) for h in hide)]  # only those that need a bind
    writable = {p.resolve() for p in writable}
    copies = {p.resolve(): os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in policy.copy if p.is_dir()}
    submitted = _submitted_counterpart(cwd, policy.root)
    cwd_fd = os.open(cwd, os.O_RDONLY | os.O_DIRECTORY)
    sub_fd = os.open(submitted, os.O_RDONLY | os.O_DIRECTORY) if submitted else None

    unshare(CLONE_NEWNS | (0 if policy.network else CLONE_NEWNET))
    done.append("mount namespace")
    if not policy.network:
        done.append("network namespace (no network)")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Open what is bound back now: a bind source must be a mount of this (new) namespace.
    fds = {p: os.open(p, os.O_PATH) for p in wanted}
    home = Path.home().resolve()
    for path in hide:
        owner_writable = path in (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))
        mode = "1777" if owner_writable else "755"
        mount("tmpfs", str(path), "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size=64m")
        if path == home:
            os.chown(path, uid, uid)
        done.append(f"hid {path}")
    for path in wanted:
        is_dir = stat.S_ISDIR(os.stat(f"/proc/self/fd/{fds[path]}").st_mode)
        _mountpoint(path, is_dir)
        mount(f"/proc/self/fd/{fds[path]}", str(path), None, MS_BIND | MS_REC)
        if path not in writable:
            mount(None, str(path), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fds[path])
    for path, fd in copies.items():  # small writable state (matplotlib's font cache): private copies
        if any(_under(path, h) for h in hide):
            _copy_tree_from_fd(fd, path, skip_notebooks=False, uid=uid)
        os.close(fd)
    # Skeleton directories in the home tmpfs belong to the kernel's uid (tools create ~/.config etc.).
    if home in hide:
        for dirpath, dirnames, _ in os.walk(home):
            dirnames[:] = [d for d in dirnames if not os.path.ismount(os.path.join(dirpath, d))]
            os.chown(dirpath, uid, uid)
    # The working directory: a private tmpfs with the submission's own files only.
    _mountpoint(cwd, True)
    size = policy.limits.workdir_size or 256 * 2**20
    mount("tmpfs", str(cwd), "tmpfs", MS_NOSUID | MS_NODEV, f"mode=755,size={size}")
    os.chown(cwd, uid, uid)
    _copy_tree_from_fd(cwd_fd, cwd, skip_notebooks=True, uid=uid)
    if sub_fd is not None:
        for name in os.listdir(sub_fd):
            if name.endswith(".ipynb"):
                fd = os.open(name, os.O_RDONLY, dir_fd=sub_fd)
                with os.fdopen(fd, "rb") as src:
                    (cwd / name).write_bytes(src.read())
                os.chown(cwd / name, uid, uid)
        os.close(sub_fd)
    os.close(cwd_fd)
    done.append("private working directory (submission files only)")
    # The tmpfs over the course root holds only mount points: make it read-only.
    for path in hide:
        if policy.root is not None and path == policy.root.resolve():
            mount(None, str(path), None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return done


def set_limits(limits: Limits) -> list[str]:
    """Apply the resource limits to this process (inherited by the kernel); return what was set."""
    done = []
    table = [(resource.RLIMIT_AS, limits.memory, "memory"), (resource.RLIMIT_CPU, limits.cpu, "cpu"),
             (resource.RLIMIT_FSIZE, limits.fsize, "file size"), (resource.RLIMIT_NPROC, limits.nproc, "processes"),
             (resource.RLIMIT_NOFILE, limits.nofile, "open files"), (resource.RLIMIT_CORE, 0, "core")]
    for which, value, name in table:
        if value or which == resource.RLIMIT_CORE:
            soft, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            hard_value = value + 5 if which == resource.RLIMIT_CPU else value  # SIGXCPU, then SIGKILL
            if hard != resource.RLIM_INFINITY:
                hard_value = min(hard_value, hard)
            resource.setrlimit(which, (value, hard_value))
            done.append(f"{name}={value}")
    return done


def drop_privileges(uid: int) -> None:
    """Become ``uid`` with no groups, no capabilities and no way to regain them."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def clean_environment(env: dict[str, str]) -> dict[str, str]:
    """Return the environment without variables whose names look like credentials."""
    clean = {k: v for k, v in env.items() if not SECRET_ENV.search(k.upper())}
    clean.update(USER="student", LOGNAME="student")
    return clean


def _connection_arg(command: list[str]) -> tuple[int, Path] | None:
    """Return the index and path of the connection file in the kernel command line (``-f PATH``)."""
    for i, arg in enumerate(command):
        if arg == "-f" and i + 1 < len(command):
            return i + 1, Path(command[i + 1])
        if arg.startswith("--f="):
            return i, Path(arg.split("=", 1)[1])
    return None


def _read_nofollow(path: Path) -> bytes:
    """Read a file, refusing to follow a symbolic link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def socket_directory(info: dict, uid: int) -> Path:
    """Return the directory of the kernel's ipc sockets, handed to ``uid`` if it is a marked one."""
    sock_dir = Path(info["ip"]).parent
    if not sock_dir.is_absolute():
        raise RuntimeError("ipc transport needs an absolute KernelManager.ip (course grade sets one)")
    fd = os.open(sock_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if os.fstat(fd).st_uid != uid:
            if not (sock_dir / MARKER).exists():
                raise RuntimeError(f"ipc socket directory {sock_dir} is not owned by uid {uid} and lacks {MARKER}:"
                                   " run kernels through `course grade`, which prepares one.")
            os.fchown(fd, uid, uid)
    finally:
        os.close(fd)
    return sock_dir


def launch(policy: Policy, command: list[str], uid: int | None = None) -> None:
    """Apply the policy to this process and replace it with ``command``."""
    notes = []
    env = clean_environment(dict(os.environ))
    can_isolate = policy.isolate and os.geteuid() == 0 and sys.platform.startswith("linux")
    if policy.isolate and not can_isolate:
        if policy.strict:
            raise SystemExit("course-sandbox: isolation needs root on Linux; refusing (strict mode)")
        notes.append("no isolation (needs root on Linux)")
    if can_isolate:
        uid = uid or UID_BASE + os.getpid()
        cwd = Path.cwd().resolve()
        try:
            found = _connection_arg(command)
            content = _read_nofollow(found[1]) if found else None
            info = json.loads(content) if content else {}
            writable = []
            if info.get("transport") == "ipc":
                writable.append(socket_directory(info, uid))
            elif found and not policy.network:
                notes.append("network left on: the kernel talks TCP (set KernelManager.transport=ipc)")
                policy.network = True
            notes += isolate(policy, uid, cwd, writable)
            if found:  # the kernel reads a private copy; the original stays the instructor's
                private = Path(tempfile_dir()) / "kernel-connection.json"
                private.write_bytes(content)
                os.chown(private, uid, uid)
                os.chmod(private, 0o600)
                index, _ = found
                command = [*command[:index], str(private) if command[index] != f"--f={found[1]}" else
                           f"--f={private}", *command[index + 1:]]
            os.chdir(cwd)  # enter the private working directory mounted over the old one
            drop_privileges(uid)
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            notes.append(f"uid {uid}")
        except (OSError, RuntimeError) as err:
            if policy.strict or isinstance(err, RuntimeError):
                raise SystemExit(f"course-sandbox: {err}")
            notes.append(f"isolation failed: {err}")
    notes += set_limits(policy.limits)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        raise SystemExit("course-sandbox: parent exited")
    if os.environ.get("COURSE_SANDBOX_DEBUG"):
        print("course-sandbox: " + "; ".join(notes), file=sys.stderr, flush=True)
    os.execvpe(command[0], command, env)


def tempfile_dir() -> str:
    """Return the directory for the kernel's private files: /tmp (a private tmpfs once isolated)."""
    return "/tmp" if Path("/tmp").is_dir() else str(Path.cwd())


def processes_of(uid: int, include_zombies: bool = False) -> list[int]:
    """Return the pids of the processes owned by ``uid`` (exited-but-unreaped zombies left out)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if include_zombies or state != "Z":
            pids.append(int(entry.name))
    return pids


def kill_uid(uid: int, wait: float = 5.0) -> int:
    """Kill (SIGKILL) every process owned by ``uid`` and wait until none runs; return how many were signalled."""
    signalled: set[int] = set()
    deadline = time.monotonic() + wait
    while (live := processes_of(uid)) and time.monotonic() < deadline:
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
                signalled.add(pid)
            except (ProcessLookupError, PermissionError):
                continue
        time.sleep(0.05)
    return len(signalled)


def _probe_child(policy: Policy, write) -> None:
    """In a forked child: try every layer and write a JSON report."""
    report = {"root": os.geteuid() == 0, "rlimits": True, "mount_namespace": False, "network_namespace": False,
              "uid_drop": False, "errors": []}
    try:
        unshare(CLONE_NEWNS | CLONE_NEWNET)
        report["network_namespace"] = True
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
        report["mount_namespace"] = True
        drop_privileges(UID_BASE + os.getpid())
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        report["uid_drop"] = True
    except OSError as err:
        report["errors"].append(str(err))
    write(json.dumps(report).encode())


def probe() -> dict:
    """Return which protections this machine lets the launcher enforce (tried in a child process)."""
    if not sys.platform.startswith("linux"):
        return {"root": False, "rlimits": True, "mount_namespace": False, "network_namespace": False,
                "uid_drop": False, "errors": ["not Linux"]}
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            _probe_child(Policy(), lambda data: os.write(write_end, data))
        finally:
            os._exit(0)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    report = json.loads(data or b"{}")
    report["isolation"] = all(report.get(k) for k in ("mount_namespace", "network_namespace", "uid_drop"))
    return report


def kernel_argv(policy: Policy, uid: int | None = None, python: str = sys.executable) -> list[str]:
    """Return a kernelspec argv that runs ipykernel under this launcher with ``policy``."""
    lim = policy.limits
    argv = [python, "-m", "course_tools.sandbox", *(["--uid", str(uid)] if uid else []), "--memory", str(lim.memory), "--cpu", str(lim.cpu),
            "--fsize", str(lim.fsize), "--nproc", str(lim.nproc), "--workdir-size", str(lim.workdir_size)]
    if policy.root is not None:
        argv += ["--root", str(policy.root)]
    for path in policy.hide:
        argv += ["--hide", str(path)]
    for path in policy.expose:
        argv += ["--expose", str(path)]
    argv += [f for f, on in (("--no-isolation", not policy.isolate), ("--network", policy.network),
                             ("--strict", policy.strict)) if on]
    return argv + ["--", python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def write_kernelspec(directory: Path, policy: Policy, uid: int | None = None, name: str = KERNEL_NAME) -> Path:
    """Write ``<directory>/kernels/<name>/kernel.json`` (use ``directory`` in JUPYTER_PATH); return it."""
    spec_dir = directory / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": kernel_argv(policy, uid), "display_name": "Python 3 (course sandbox)", "language": "python",
            "interrupt_mode": "signal", "metadata": {"debugger": False}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir / "kernel.json"


def parse_args(argv: list[str]) -> tuple[Policy, list[str], bool, int | None]:
    """Parse the launcher's options; return the policy, kernel command, whether to probe, and the uid."""
    if "--" in argv:
        i = argv.index("--")
        own, command = argv[:i], argv[i + 1:]
    else:
        own, command = argv, []
    p = argparse.ArgumentParser(prog="python -m course_tools.sandbox", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, help="course root to hide (the kernel never sees it)")
    p.add_argument("--memory", default="6G", help="address-space limit (RLIMIT_AS), e.g. 6G; 0 = none")
    p.add_argument("--cpu", type=int, default=1800, help="CPU seconds (RLIMIT_CPU); 0 = none")
    p.add_argument("--fsize", default="256M", help="largest file the kernel may write (RLIMIT_FSIZE)")
    p.add_argument("--nproc", type=int, default=512, help="processes+threads of the kernel's uid")
    p.add_argument("--workdir-size", default="256M", help="size of the private working directory (tmpfs)")
    p.add_argument("--hide", action="append", type=Path, default=[], help="another directory to hide")
    p.add_argument("--expose", action="append", type=Path, default=[], help="another path to bind read-only")
    p.add_argument("--uid", type=int, help="run the kernel as this uid (default: 2000000 + launcher pid)")
    p.add_argument("--no-isolation", action="store_true", help="limits only: no namespaces, same uid")
    p.add_argument("--network", action="store_true", help="keep the network (no network namespace)")
    p.add_argument("--strict", action="store_true", help="fail instead of running without isolation")
    p.add_argument("--probe", action="store_true", help="print what this machine can enforce, as JSON")
    a = p.parse_args(own)
    root = a.root.resolve() if a.root else None
    limits = Limits(parse_size(a.memory), a.cpu, parse_size(a.fsize), a.nproc, 1024, parse_size(a.workdir_size))
    policy = Policy(root, limits, default_hidden(root) + a.hide, default_exposed(root) + a.expose,
                    default_copied(), not a.no_isolation, a.network, a.strict)
    if not command and not a.probe:
        p.error("give the kernel command after --")
    return policy, command, a.probe, a.uid


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m course_tools.sandbox``."""
    policy, command, want_probe, uid = parse_args(sys.argv[1:] if argv is None else argv)
    if want_probe:
        print(json.dumps(probe(), indent=1))
        return 0
    launch(policy, command, uid)
    return 1  # not reached: launch() execs


if __name__ == "__main__":
    sys.exit(main())
