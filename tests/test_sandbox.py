"""The grading sandbox against hostile submissions: `course grade` on a tiny course, then look at the host.

Every test here needs what CI has (root, bubblewrap, cgroups); elsewhere they are skipped with the
reason. Submissions are tiny notebooks (tests/fixtures/tiny_course.py); the tests that grade them
are marked slow.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import pytest

from course_tools import grade, sandbox
from support.cli import course as run_course
from support.grading import auto_scores, outputs, results

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import tiny_course as tc  # noqa: E402

TOKEN = secrets.token_hex(6)  # marks everything the hostile submissions start or write
SECRETS = {"DATABASE_URL": "postgres://u:p@db/x", "MYSQL_PWD": "hunter2", "KAGGLE_KEY": "k",
           "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountKey=x",
           "AWS_SECRET_ACCESS_KEY": "s", "SOME_PLAIN_SETTING": "not allow-listed either"}
SHM_KEY_HOST = 0x5EC0 + os.getpid() % 1000  # a SysV segment the host makes
SHM_KEY_SUB = 0x7EC0 + os.getpid() % 1000  # a SysV segment one submission makes
IPC_CREAT, IPC_RMID = 0o1000, 0


@lru_cache(maxsize=1)
def probe() -> dict:
    """Return this machine's sandbox probe (once per session)."""
    return sandbox.probe()


def need_isolation() -> None:
    """Skip, saying why, where the machine cannot isolate kernels."""
    if os.geteuid() != 0 or not probe()["isolation"]:
        pytest.skip("the sandbox tests need root and bubblewrap (apt-get install bubblewrap): "
                    + "; ".join(probe()["errors"]))


def need_cgroups() -> None:
    """Skip, saying why, where per-submission cgroups are unavailable."""
    need_isolation()
    if not probe()["cgroups"]:
        pytest.skip("needs root and writable cgroups (memory, pids, cpu): " + "; ".join(probe()["errors"]))


def answer(code: str) -> dict:
    """Return a full submission whose `double` cell first runs ``code``."""
    return {**tc.FULL, "one": {**tc.FULL["one"], "double": code + "\ndef double(x):\n    return 2 * x"}}


FULL_SCORES = {"test_double": 2, "test_reverse": 3, "test_square": 4, "why": None}

# Four ways to outlive a kernel, each started with TOKEN in its command line.
ESCAPES = {
    "zombie_leader": "import ctypes, threading, time\n"
                     "def spin():\n    while True:\n        time.sleep(0.05)\n"
                     "threading.Thread(target=spin).start()\nctypes.CDLL(None).pthread_exit(None)",
    "double_fork": "import os, signal, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                   "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n        while True:\n"
                   "            time.sleep(0.05)\n    os._exit(0)\nos._exit(0)",
    "pid_hopping": "import os, time\nwhile True:\n    if os.fork():\n        os._exit(0)\n    time.sleep(0.02)",
    "sigterm_ignorer": "import signal, time\nfor s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n"
                       "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.05)",
}

TRICKS = f'''import ctypes, json, os, socket, subprocess, sys, time
TOKEN = {TOKEN!r}
started = [subprocess.Popen([sys.executable, "-c", code, TOKEN], start_new_session=True)
           for code in {list(ESCAPES.values())!r}]
time.sleep(1.5)
alive = 0
for p in started:
    try:
        os.kill(p.pid, 0)
        alive += 1
    except ProcessLookupError:
        pass
alive += sum(1 for d in os.listdir("/proc") if d.isdigit() and os.path.exists(f"/proc/{{d}}/task")
             and any(TOKEN in open(f"/proc/{{d}}/task/{{t}}/cmdline").read() for t in os.listdir(f"/proc/{{d}}/task")))
print("STARTED", len(started), "SEEN", alive)
for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", os.path.expanduser("~"), "."):
    try:
        open(os.path.join(d, "left-" + TOKEN), "w").write("x")
    except OSError as err:
        print("cannot write", d, err)
libc = ctypes.CDLL(None, use_errno=True)
print("SHM_OWN", libc.shmget({SHM_KEY_SUB}, 4096, {IPC_CREAT} | 0o666) >= 0)
print("SHM_HOST", libc.shmget({SHM_KEY_HOST}, 0, 0) >= 0)
listener = socket.socket(socket.AF_UNIX)
listener.bind("\\0course-sub-" + TOKEN)
listener.listen()
for name, address in (("ABSTRACT_HOST", "\\0course-host-" + TOKEN), ("FILE_HOST", "/tmp/course-host-" + TOKEN)):
    try:
        socket.socket(socket.AF_UNIX).connect(address)
        print(name, "REACHED")
    except OSError:
        print(name, "unreachable")
fds = {{fd: os.readlink(f"/proc/self/fd/{{fd}}") for fd in os.listdir("/proc/self/fd")
        if os.path.exists(f"/proc/self/fd/{{fd}}")}}
print("FDS", json.dumps(fds))
print("ENV", json.dumps(sorted(os.environ)))
print("UID", os.getuid())
time.sleep(6)  # stay up while the peer looks for these'''

PEER = f'''import ctypes, socket, time
TOKEN = {TOKEN!r}
libc = ctypes.CDLL(None, use_errno=True)
seen = set()
for _ in range(20):
    if libc.shmget({SHM_KEY_SUB}, 0, 0) >= 0:
        seen.add("SHM")
    try:
        socket.socket(socket.AF_UNIX).connect("\\0course-sub-" + TOKEN)
        seen.add("ABSTRACT")
    except OSError:
        pass
    time.sleep(0.4)
print("PEER_SAW", sorted(seen))'''

MEMHOG = '''import subprocess, sys
hog = "b = bytearray(b'x') * (250 * 2**20)\\nimport time\\ntime.sleep(4)\\nprint('survived')"
procs = [subprocess.Popen([sys.executable, "-c", hog], stdout=subprocess.PIPE) for _ in range(4)]
codes = [p.wait() for p in procs]
print("CODES", codes, "KILLED", sum(c == -9 for c in codes))'''


def _host_shm(key: int, create: bool) -> int:
    """Create (or look up) a SysV shared-memory segment on the host; return its id or -1."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.shmget(key, 4096 if create else 0, (IPC_CREAT | 0o600) if create else 0)


def _token_processes() -> list[str]:
    """Return the /proc tasks (threads included) whose command line carries TOKEN."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                if TOKEN.encode() in Path(f"/proc/{pid}/task/{tid}/cmdline").read_bytes():
                    found.append(f"{pid}/{tid}")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A tiny course with a reference, a trickster, its peer and a memory hog, graded with --workers 2."""
    need_cgroups()
    root = tc.build_course(tmp_path_factory.mktemp("sandbox") / "course")
    tc.submit(root, "ref", tc.FULL)
    tc.submit(root, "tricks", answer(TRICKS))
    tc.submit(root, "peer", answer(PEER))
    tc.submit(root, "memhog", answer(MEMHOG))
    shm = _host_shm(SHM_KEY_HOST, create=True)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0course-host-" + TOKEN)
    abstract.listen()
    file_sock = socket.socket(socket.AF_UNIX)
    file_sock.bind(f"/tmp/course-host-{TOKEN}")
    os.chmod(f"/tmp/course-host-{TOKEN}", 0o777)
    file_sock.listen()
    try:
        out = run_course(root, "grade", "tiny", "--workers", "2", "--no-prepare", "--memory", "700M",
                         env=SECRETS)
        right_after = _token_processes()
    finally:
        abstract.close()
        file_sock.close()
        os.unlink(f"/tmp/course-host-{TOKEN}")
        ctypes.CDLL(None).shmctl(shm, IPC_RMID, None)
    return root, out, right_after


@pytest.mark.slow
def test_reference_is_graded_normally(hostile):
    """Next to hostile neighbours, the reference submission gets its full score and status ok."""
    root, out, _ = hostile
    assert results(root)["ref"]["status"] == "ok", out.stdout + out.stderr
    assert auto_scores(root, "ref") == FULL_SCORES


@pytest.mark.slow
def test_no_process_outlives_grading(hostile):
    """A zombie leader with a live thread, a double fork, a PID-hopping chain and a SIGTERM ignorer: all gone."""
    root, _, right_after = hostile
    text = outputs(root, "tricks")
    assert "STARTED 4 SEEN" in text and int(text.split("SEEN ")[1].split()[0]) >= 4, text  # they did run
    assert right_after == []
    time.sleep(0.5)
    assert _token_processes() == []


@pytest.mark.slow
def test_nothing_persists_in_host_temporary_directories(hostile):
    """Files written to /tmp, /var/tmp, /dev/shm, /run/lock (and home, cwd) never reach the host."""
    root, _, _ = hostile
    assert "cannot write" not in outputs(root, "tricks")  # the writes succeeded, in private directories
    for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", str(Path.home())):
        assert not Path(d, f"left-{TOKEN}").exists(), d
    assert not list(root.rglob(f"left-{TOKEN}"))


@pytest.mark.slow
def test_sysv_ipc_and_unix_sockets_are_private(hostile):
    """SysV shared memory and abstract/file UNIX sockets are shared neither with the host nor a neighbour."""
    root, _, _ = hostile
    text = outputs(root, "tricks")
    assert "SHM_OWN True" in text and "SHM_HOST False" in text
    assert "ABSTRACT_HOST unreachable" in text and "FILE_HOST unreachable" in text
    assert "PEER_SAW []" in outputs(root, "peer")
    assert _host_shm(SHM_KEY_SUB, create=False) == -1  # the submission's segment is not in the host's IPC
    probe_sock = socket.socket(socket.AF_UNIX)
    with pytest.raises(OSError):
        probe_sock.connect("\0course-sub-" + TOKEN)


@pytest.mark.slow
def test_no_grader_descriptor_in_the_kernel(hostile):
    """The kernel holds no descriptor of the grader: not its log, not the gradebook, nothing of the course."""
    root, _, _ = hostile
    text = outputs(root, "tricks")
    fds = json.loads(text.split("FDS ")[1].splitlines()[0])
    for fd, target in fds.items():
        assert ".course-grade" not in target and "gradebook" not in target and not target.startswith(str(root)), \
            (fd, target)
    assert not any(t.endswith(".log") for t in fds.values())


@pytest.mark.slow
def test_only_allow_listed_variables_reach_the_kernel(hostile):
    """Credentials and connection strings in the grader's environment never reach student code."""
    root, _, _ = hostile
    text = outputs(root, "tricks")
    names = set(json.loads(text.split("ENV ")[1].splitlines()[0]))
    assert not names & set(SECRETS)
    # Of the grader's variables only allow-listed ones may appear (the kernel sets a few of its own).
    grader = set(tc.env()) | set(SECRETS)
    allowed = set(sandbox.ENV_PASS) | {"PATH", "HOME", "USER", "LOGNAME", "PWD", "HF_HUB_CACHE", "TERM"}
    unexpected = {n for n in (names & grader) - allowed if not n.startswith(tuple(sandbox.ENV_PASS_PREFIXES))}
    assert not unexpected, unexpected
    assert "UID 0" not in text and int(text.split("UID ")[1].split()[0]) >= sandbox.UID_BASE


@pytest.mark.slow
def test_memory_hog_across_processes_is_stopped(hostile):
    """Four children of 250 MB each under a 700 MB submission limit: some are killed, the kernel goes on."""
    root, _, _ = hostile
    text = outputs(root, "memhog")
    killed = int(text.split("KILLED ")[1].split()[0])
    assert 1 <= killed <= 4, text
    scores = auto_scores(root, "memhog")
    assert scores["test_reverse"] == 3 and scores["test_square"] == 4  # the rest of the submission was graded


CPU_HOG = '''import os, time
for _ in range(150):
    if os.fork() == 0:
        while True:
            pass
time.sleep(3)'''


@pytest.mark.slow
def test_cpu_hogging_neighbour_does_not_change_the_reference(tmp_path):
    """150 spinning processes in one submission leave the reference next to it (--workers 2) unchanged."""
    need_cgroups()
    root = tc.build_course(tmp_path / "course")
    tc.submit(root, "hog", answer(CPU_HOG))
    tc.submit(root, "ref", tc.FULL)
    out = run_course(root, "grade", "tiny", "--workers", "2", "--no-prepare")
    got = results(root)
    assert got["ref"]["status"] == "ok", out.stdout + out.stderr
    assert auto_scores(root, "ref") == FULL_SCORES
    assert got["hog"]["seconds"] > 3  # the neighbour did spin while the reference was graded


ROOTED = '''import os
open("/tmp/ran-as-{uid}-" + {token!r}, "w").write(str(os.getuid()))'''


@pytest.mark.slow
@pytest.mark.parametrize("mode, failure", [("strict", "bind"), ("auto", "cgroup")])
def test_broken_isolation_step_fails_closed(tmp_path, mode, failure):
    """A failing sandbox step (strict, or auto after the probe said yes) runs nothing: status error, reason given."""
    need_cgroups()
    token = secrets.token_hex(4)
    root = tc.build_course(tmp_path / "course")
    tc.submit(root, "victim", answer(ROOTED.format(uid="x", token=token)))
    out = run_course(root, "grade", "tiny", "--workers", "1", "--no-prepare", "--sandbox", mode,
                     env={sandbox.INJECT_ENV: failure})
    got = results(root)["victim"]
    assert got["status"] == grade.INFRA and "sandbox" in got["message"], out.stdout + out.stderr
    assert failure in got["message"] or "nonexistent" in got["message"]
    assert not list(Path("/tmp").glob(f"ran-as-*-{token}"))  # the student's code never ran, as root or not
    assert not (root / "autograded" / "victim" / "tiny").exists()
    assert out.returncode == 1 and "error" in out.stdout


def test_probe_lists_each_guarantee(tmp_path):
    """`course grade --probe` needs no assignment or course and reports every guarantee it checked."""
    out = subprocess.run([sys.executable, "-m", "course_tools.cli", "grade", "--probe"], cwd=tmp_path,
                         env={k: v for k, v in tc.env().items() if k != "COURSE_ROOT"}, text=True,
                         capture_output=True, timeout=300)
    for name in ("bubblewrap", "user namespaces", "cgroups", "mount namespace", "PID namespace", "IPC namespace",
                 "UTS namespace", "network namespace", "file descriptors", "environment",
                 "host temporary directories", "unprivileged kernel"):
        assert name in out.stdout, (name, out.stdout, out.stderr)
    assert out.returncode == (0 if probe()["isolation"] else 1)


@pytest.mark.slow
def test_policy_lists_only_what_a_kernel_needs(tmp_path):
    """The policy binds Python, helpers and the model caches read-only, and never the course root."""
    root = tc.build_course(tmp_path / "course")
    policy = sandbox.make_policy(root, sandbox.Limits(), uid=None, socket_dir=None, submitted_dir=None, report=None,
                                 isolate=True)
    binds = [Path(src) for src, _ in policy.ro_binds]
    assert all(not (root == b or root.is_relative_to(b) or b.is_relative_to(root)) for b in binds), binds
    assert any(Path(sys.prefix).resolve() == b for b in binds)
    import helpers

    assert any(Path(helpers.__file__).resolve().is_relative_to(b) for b in binds)
    assert policy.env["LLM_COURSE_CACHE_DIR"] and "DATABASE_URL" not in policy.env_pass
    with pytest.raises(sandbox.SandboxError):
        sandbox.make_policy(root, sandbox.Limits(), uid=None, socket_dir=None, submitted_dir=None, report=None,
                            isolate=True, expose=[root.parent])


def test_limits_come_from_the_course_settings(tmp_path, monkeypatch):
    """Limits.from_settings reads grade_memory/grade_cpu/grade_pids; a given flag wins."""
    root = tmp_path / "course"
    root.mkdir()
    (root / "nbgrader_config.py").write_text("")
    (root / "course.toml").write_text('grade_memory = "3G"\ngrade_pids = 99\n')
    monkeypatch.delenv("LLM_COURSE_CONFIG", raising=False)
    limits = sandbox.Limits.from_settings(root)
    assert limits.memory == 3 * 2**30 and limits.pids == 99
    assert sandbox.Limits.from_settings(root, memory="1G", pids=None).memory == 2**30


def test_gpu_device_nodes_are_found(tmp_path):
    """gpu_devices lists the NVIDIA driver nodes (and nvidia-caps/*), nothing else, none on a bare /dev."""
    dev = tmp_path / "dev"
    (dev / "nvidia-caps").mkdir(parents=True)
    for name in ("nvidia0", "nvidiactl", "nvidia-uvm", "nvidia-caps/nvidia-cap1", "null", "sda"):
        (dev / name).touch()
    found = [Path(p).relative_to(dev).as_posix() for p in sandbox.gpu_devices(dev)]
    assert found == ["nvidia-caps/nvidia-cap1", "nvidia-uvm", "nvidia0", "nvidiactl"]
    assert sandbox.gpu_devices(tmp_path / "empty") == []


def test_gpu_device_nodes_reach_the_sandboxed_kernel(tmp_path):
    """A device node in the policy is a usable character device inside the sandbox; without it, absent.

    No GPU here: a stand-in node with /dev/null's numbers plays /dev/nvidia0 (made with mknod, as root).
    """
    need_isolation()
    node = tmp_path / "nodes" / "nvidia0"
    node.parent.mkdir()
    os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))  # S_IFCHR
    os.chmod(node, 0o666)
    code = ("import os, stat, sys; p = sys.argv[1]; ok = os.path.exists(p) and stat.S_ISCHR(os.stat(p).st_mode)\n"
            "if ok: open(p, 'w').write('x')\n"
            "open(sys.argv[2], 'w').write('char' if ok else 'absent')")
    uid = sandbox.UID_BASE + 998_000 + os.getpid() % 1000
    seen = {}
    for devices in ([str(node)], []):
        work, out = tmp_path / f"work{len(devices)}", tmp_path / f"out{len(devices)}"
        work.mkdir()
        out.mkdir(mode=0o700)
        os.chown(out, uid, uid)
        policy = sandbox.make_policy(None, sandbox.Limits(memory=2 * 2**30), uid=uid, socket_dir=out,
                                     submitted_dir=None, report=tmp_path / "report.jsonl", isolate=True, gpu=False)
        assert policy.devices == []  # gpu=False: none, whatever this machine has
        policy.devices = devices
        path = policy.write(tmp_path / f"policy{len(devices)}.json")
        done = subprocess.run(sandbox.launcher_argv(path, [sys.executable, "-c", code, str(node), str(out / "r")]),
                              cwd=work, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (done.stderr, sandbox.read_failures(tmp_path / "report.jsonl"))
        seen[len(devices)] = (out / "r").read_text()
    assert seen == {1: "char", 0: "absent"}


def test_font_cache_is_copied_into_the_private_home(tmp_path):
    """The grader's matplotlib font list reaches each kernel's home as a writable copy; the host's is untouched."""
    need_isolation()
    cache = sandbox.font_cache(tmp_path / "cache", build=True)
    assert cache is not None and cache.name.startswith("fontlist-v")
    uid = sandbox.UID_BASE + 997_000 + os.getpid() % 1000
    out, work = tmp_path / "out", tmp_path / "work"
    work.mkdir()
    out.mkdir(mode=0o700)
    os.chown(out, uid, uid)
    policy = sandbox.make_policy(None, sandbox.Limits(memory=2 * 2**30), uid=uid, socket_dir=out, submitted_dir=None,
                                 report=tmp_path / "report.jsonl", isolate=True, gpu=False)
    policy.home_files = [[str(cache), f"{sandbox.MPL_HOME}/{cache.name}"]]
    code = ("import hashlib, os, sys; d = os.environ['MPLCONFIGDIR']; p = os.path.join(d, sys.argv[2])\n"
            "same = hashlib.sha256(open(p, 'rb').read()).hexdigest() == sys.argv[3]\n"
            "open(p, 'a').write(' ')\n"
            "open(sys.argv[1], 'w').write(f'{same} {os.access(d, os.W_OK)} {os.path.exists(sys.argv[4])}')")
    before = cache.read_bytes()
    argv = [sys.executable, "-c", code, str(out / "r"), cache.name, hashlib.sha256(before).hexdigest(), str(cache)]
    done = subprocess.run(sandbox.launcher_argv(policy.write(tmp_path / "policy.json"), argv),
                          cwd=work, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stderr, sandbox.read_failures(tmp_path / "report.jsonl"))
    assert (out / "r").read_text() == "True True False"  # the same bytes, in a writable home; the host's file unseen
    assert cache.read_bytes() == before  # the kernel's write went to its own copy
