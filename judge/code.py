"""Ground-truth judge for Python code: run a candidate against tests in an OS sandbox.

The wall is the operating system, not Python. Each run starts under bubblewrap (`bwrap`):

- fresh user, mount, PID, network, IPC, UTS and cgroup namespaces; the candidate runs as
  uid/gid 65534 with every capability dropped and `no_new_privs` set;
- when the judge runs as root, bwrap itself is started as the unprivileged outer user 65534,
  so the sandbox's uid maps to kernel uid 65534, not 0. This matters: as kernel uid 0 a
  process without capabilities still owns every root-owned file, and bwrap's own /proc cover
  check is fooled by it (we measured /proc/sys and /proc/sysrq-trigger writable from inside).
  An interpreter that `nobody` cannot reach (pyenv under /root, mode 700) is bound into a
  private mount namespace of the starting process first, so bwrap can see it;
- the file system is a read-only view of the system directories (/usr and the /bin, /lib
  links), /etc/ld.so.cache and the interpreter's prefixes, nothing else: no /root, /home,
  project tree, host /tmp, /sys or /run. The cwd, HOME and TMPDIR are a private tmpfs of
  `Limits.disk_bytes`; / is remounted read-only; /proc is the sandbox's own;
- an empty environment, a new session (no terminal), `--die-with-parent`;
- caps that hold for root too: RLIMIT_AS/CPU/FSIZE/CORE per process, RLIMIT_NPROC set
  inside the sandbox (enforced because the kernel uid is not 0, counted per user namespace
  on Linux >= 5.14), and when the cgroup file system is writable a per-run pids cgroup
  (`max_processes` for the whole tree) and memory cgroup (`memory_bytes + disk_bytes` for
  all processes and the tmpfs together);
- after the verdict the sandbox's PID-1 is SIGKILLed through a pidfd, which makes the kernel
  kill every process of the PID namespace (daemons included), and the cgroup, when there is
  one, is emptied and removed.

When bwrap is missing or cannot create namespaces, the judges raise `SandboxUnavailable`
instead of running with less. `unsafe_no_sandbox=True` (CLI `--unsafe-no-sandbox`, stage key
`unsafe_no_sandbox`) runs the old plain-subprocess runner (rlimits, a temp folder, `unshare
-n` and user `nobody` where possible) and marks the result "unsafe-no-sandbox".

Verdicts come from a harness, never from the exit status. The harness reads the candidate,
the tests and a per-run nonce from a file descriptor that it closes before any candidate code
runs, parses and compiles the tests first, runs the candidate as a module (`solution` for
assert tests, so `if __name__ == "__main__":` blocks do not run; `__main__` for stdin/stdout
programs), then runs each top-level test statement and writes one line per outcome, prefixed
with the nonce, to a pipe. A test counts as passed only when that line says so and the
harness then reported completion. `sys.exit(0)`, `os._exit(0)`, `atexit` and `__del__`
tricks therefore end in "failed": the harness never says "ok" for tests that did not run.
For stdin/stdout programs, `sys.exit(0)`/`sys.exit(None)` counts as finishing (a correct
program may exit that way; the output comparison outside the sandbox is the verdict), while
`os._exit` does not (the harness cannot tell it from a crash).

Residual risk, said plainly: the harness and the candidate share one interpreter, so a
candidate that walks interpreter memory (frames, `gc`, /proc/self/mem) can find the nonce and
forge "ok" lines; a candidate can also return objects whose `__eq__` is always true. The OS
sandbox still contains such a candidate; only its own verdict is at stake. The in-process
audit hook stays as defence in depth; it is not a wall.

`RunResult.isolation` names the layers that were in force.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Status = Literal[
    "passed",
    "failed",
    "error",
    "timeout",
    "cpu_limit",
    "memory",
    "output_limit",
    "process_limit",
    "disk_limit",
    "blocked",
]

NOBODY = 65534
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`, Fedora: "
    "`dnf install bubblewrap`), or pass --unsafe-no-sandbox (stage key "
    "unsafe_no_sandbox = true) to run candidates without isolation"
)
# Read-only inside the sandbox; a merged-/usr system has /bin, /lib... as links into /usr.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")
SANDBOX_HOME = "/tmp"
REPORT_LIMIT = 1024 * 1024


class SandboxUnavailable(RuntimeError):
    """No OS isolation can be set up here; the message says what is missing and how to fix it."""


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1024 * 1024 * 1024
    max_processes: int = 64
    file_bytes: int = 10 * 1024 * 1024
    output_bytes: int = 1024 * 1024
    disk_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class RunResult:
    status: Status
    reason: str
    stdout: str
    stderr: str
    returncode: int | None
    seconds: float
    isolation: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class IOCase:
    stdin: str
    expected_stdout: str


@dataclass(frozen=True)
class CodeVerdict:
    passed: bool
    reason: str
    runs: list[RunResult]


# ---------------------------------------------------------------------------- the harness

# Run with `python -I -B -c HARNESS JOB_FD REPORT_FD`. Everything the harness needs after the
# candidate starts (os.write, exec, str methods) is bound to locals first, so a candidate
# that monkeypatches modules cannot rewrite or read the harness's report lines. The audit
# hook keeps its state in module globals on purpose: it is a speed bump, and the attack
# tests switch it off to show that the OS layer holds on its own.
_HARNESS = r"""
import os, sys

_ROOT = "/"
_BLOCK_FORK = False
_BLOCKED = frozenset({
    "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto",
    "socket.gethostbyname", "socket.gethostbyaddr", "subprocess.Popen", "os.system",
    "os.exec", "os.posix_spawn", "os.spawn", "ctypes.dlopen",
})
_PATH_EVENTS = frozenset({
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink",
    "os.link", "os.truncate", "os.utime", "shutil.rmtree",
})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _inside(path):
    try:
        real = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return real == _ROOT or real.startswith(_ROOT.rstrip("/") + "/")


def _audit_hook(event, args):
    if event in _BLOCKED or (_BLOCK_FORK and event in ("os.fork", "os.forkpty")):
        raise PermissionError("sandbox: " + event + " is not allowed")
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        mode = args[1] if len(args) > 1 else "r"
        flags = args[2] if len(args) > 2 else 0
        writes = isinstance(mode, str) and any(c in mode for c in "wax+")
        writes = writes or (isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writes and not _inside(args[0]):
            raise PermissionError("sandbox: writing outside the sandbox: " + str(args[0]))
    elif event in _PATH_EVENTS and args:
        for path in args[:2]:
            if isinstance(path, (str, bytes)) and not _inside(path):
                raise PermissionError("sandbox: " + event + " outside the sandbox")


def _describe(exc):
    try:
        text = type(exc).__name__ + ": " + str(exc)
    except BaseException:
        text = "an exception that cannot be printed"
    text = text.replace("\n", " ").replace("\r", " ").strip()
    return text[:500].rstrip(":")


def _print_traceback(exc):
    try:
        import traceback
        traceback.print_exception(exc)
    except BaseException:
        pass


def _read_job(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    import json
    return json.loads(b"".join(chunks))


def _compile_tests(source):
    import ast
    tree = ast.parse(source, "tests.py")
    return [compile(ast.Module([node], []), "tests.py", "exec") for node in tree.body]


def _main():
    job = _read_job(int(sys.argv[1]))
    report, nonce = int(sys.argv[2]), job.pop("nonce")
    write, run, exit_now, join = os.write, exec, os._exit, " ".join

    def emit(*fields):
        line = join([nonce] + [str(f).replace("\n", " ") for f in fields]) + "\n"
        try:
            write(report, line.encode("utf-8", "replace"))
        except BaseException:
            pass

    sys.path.extend(job["site_dirs"])
    if job["nproc"]:
        import resource
        resource.setrlimit(resource.RLIMIT_NPROC, (job["nproc"], job["nproc"]))
    global _ROOT, _BLOCK_FORK
    _ROOT, _BLOCK_FORK = os.path.realpath(job["root"]), job["block_fork"]
    units = None
    if job["tests"] is not None:
        try:
            units = _compile_tests(job["tests"])
        except BaseException as exc:
            emit("tests", "invalid", _describe(exc))
            emit("done")
            exit_now(0)
    import types
    name = "solution" if units is not None else "__main__"
    path = os.path.join(_ROOT, "solution.py")
    source = job["candidate"]
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = sys.modules["__main__"] = module
    sys.argv = [path]
    del job
    try:
        code = compile(source, path, "exec")
    except BaseException as exc:
        _print_traceback(exc)
        emit("module", "error", _describe(exc))
        emit("done")
        exit_now(0)
    sys.addaudithook(_audit_hook)
    outcome = "ok"
    try:
        run(code, module.__dict__)
    except SystemExit as exc:
        status = exc.code
        if status is None or status == 0:
            outcome = "exit"
        else:
            _print_traceback(exc)
            outcome = "error"
            emit("module", "error", _describe(exc))
    except BaseException as exc:
        _print_traceback(exc)
        outcome = "error"
        emit("module", "error", _describe(exc))
    if outcome != "error":
        emit("module", outcome)
    if units is not None and outcome != "error":
        for i, unit in enumerate(units):
            try:
                run(unit, module.__dict__)
            except BaseException as exc:
                _print_traceback(exc)
                emit("test", i, "fail", _describe(exc))
                break
            emit("test", i, "ok")
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass
    emit("done", -1 if units is None else len(units))
    exit_now(0)


_main()
"""


@dataclass
class _Report:
    """What the harness said over the report pipe, keeping only lines with the nonce."""

    module: str | None = None
    module_detail: str = ""
    tests_ok: set[int] = field(default_factory=set)
    failure: tuple[int, str] | None = None
    invalid_tests: str | None = None
    done: int | None = None
    forged: int = 0

    @classmethod
    def parse(cls, data: bytes, nonce: str) -> _Report:
        report = cls()
        for raw in data.decode("utf-8", "replace").splitlines():
            head, _, rest = raw.partition(" ")
            if head != nonce:
                report.forged += 1
                continue
            report._add(rest.split(" "))
        return report

    def _add(self, fields: list[str]) -> None:
        kind = fields[0]
        if kind == "module" and self.module is None:
            self.module, self.module_detail = fields[1], " ".join(fields[2:])
        elif kind == "test" and fields[2] == "ok":
            self.tests_ok.add(int(fields[1]))
        elif kind == "test" and self.failure is None:
            self.failure = (int(fields[1]), " ".join(fields[3:]))
        elif kind == "tests":
            self.invalid_tests = " ".join(fields[2:])
        elif kind == "done":
            self.done = int(fields[1]) if len(fields) > 1 else 0


# ------------------------------------------------------------------------ the OS sandbox


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner can traverse every folder down to `path`."""
    path = path.resolve()
    return all(part.stat().st_mode & 0o001 for part in [*reversed(path.parents), path])


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


@functools.cache
def _interpreter_dirs(interpreter: str) -> tuple[str, ...]:
    """The folders (outside the system ones) that the interpreter needs, read-only."""
    if Path(interpreter).resolve() == Path(sys.executable).resolve():
        found = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    else:
        probe = "import sys, json; print(json.dumps([sys.prefix, sys.base_prefix]))"
        out = subprocess.run(
            [interpreter, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=30
        )
        found = json.loads(out.stdout)
    found += [str(Path(interpreter).parent), str(Path(interpreter).resolve().parent)]
    dirs: list[str] = []
    for path in sorted({os.path.realpath(p) for p in found} | {os.path.abspath(p) for p in found}):
        if path == "/" or any(_under(path, d) for d in (*SYSTEM_DIRS, *dirs)):
            continue
        dirs.append(path)
    return tuple(dirs)


@functools.cache
def _site_dirs(interpreter: str) -> tuple[str, ...]:
    """The interpreter's site-packages folders (added to sys.path without running .pth files)."""
    probe = "import site, json; print(json.dumps(site.getsitepackages()))"
    if Path(interpreter).resolve() == Path(sys.executable).resolve():
        import site

        return tuple(site.getsitepackages())
    out = subprocess.run(
        [interpreter, "-I", "-c", probe], capture_output=True, text=True, timeout=30
    )
    return tuple(json.loads(out.stdout or "[]"))


def _system_binds() -> list[str]:
    args: list[str] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in SYSTEM_FILES:
        args += ["--ro-bind-try", path, path]
    return args


def _bwrap_args(bwrap: str, interpreter: str, limits: Limits) -> list[str]:
    args = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns"]
    args += ["--uid", str(NOBODY), "--gid", str(NOBODY), "--hostname", "sandbox"]
    args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv"]
    for key, value in _sandbox_env(SANDBOX_HOME).items():
        args += ["--setenv", key, value]
    args += _system_binds()
    for path in _interpreter_dirs(interpreter):
        args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(limits.disk_bytes), "--tmpfs", SANDBOX_HOME]
    # /dev/shm (POSIX semaphores) would otherwise be a sizeless folder on /dev's tmpfs.
    args += ["--size", str(1024 * 1024), "--tmpfs", "/dev/shm"]
    args += ["--remount-ro", "/", "--chdir", SANDBOX_HOME]
    return args


def _sandbox_env(home: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


_libc = None


def _check(rc: int) -> None:
    if rc != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _expose_to_nobody(paths: list[str]) -> None:
    """In the (forked) child: a private mount namespace where each of `paths` can be reached
    by user nobody. The first folder nobody cannot traverse (e.g. /root) gets an empty
    tmpfs, and each path is bound back onto the same place inside it."""
    global _libc
    _libc = _libc or ctypes.CDLL(None, use_errno=True)
    ms_bind, ms_rec, ms_private = 4096, 16384, 1 << 18
    _check(_libc.unshare(0x00020000))  # CLONE_NEWNS
    _check(_libc.mount(None, b"/", None, ms_rec | ms_private, None))
    # Opened after unshare: a bind source must be a mount of this namespace.
    fds = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in paths}
    covered: set[str] = set()
    for path in paths:
        top = next(
            str(p)
            for p in [*reversed(Path(path).parents), Path(path)]
            if not p.stat().st_mode & 0o001
        )
        if top not in covered:
            _check(_libc.mount(b"tmpfs", top.encode(), b"tmpfs", 0, b"mode=755,size=1m"))
            covered.add(top)
        os.makedirs(path, exist_ok=True)
        source = f"/proc/self/fd/{fds[path]}".encode()
        _check(_libc.mount(source, path.encode(), None, ms_bind | ms_rec, None))
    for fd in fds.values():
        os.close(fd)


def _set_rlimits(limits: Limits, nproc: bool) -> None:
    memory = (limits.memory_bytes, limits.memory_bytes)
    resource.setrlimit(resource.RLIMIT_AS, memory)
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if nproc:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))


class _Cgroup:
    """A per-run cgroup for the pids and memory controllers (v1 or delegated v2), or none."""

    def __init__(self, dirs: dict[str, Path], version: int) -> None:
        self.dirs, self.version = dirs, version

    @classmethod
    def create(cls, limits: Limits) -> _Cgroup:
        name = f"hs-sandbox-{os.getpid()}-{secrets.token_hex(4)}"
        dirs, version = _make_cgroups(name)
        group = cls(dirs, version)
        try:
            group._limit(limits)
        except OSError:
            group.remove()
            return cls({}, 0)
        return group

    def _limit(self, limits: Limits) -> None:
        if "pids" in self.dirs:
            # bwrap's outer process and the sandbox's PID-1 count too.
            (self.dirs["pids"] / "pids.max").write_text(str(limits.max_processes + 2))
        if "memory" in self.dirs:
            total = str(limits.memory_bytes + limits.disk_bytes)
            names = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
            if self.version == 2:
                names = ["memory.max", "memory.swap.max"]
            for i, limit_name in enumerate(names):
                path = self.dirs["memory"] / limit_name
                if path.exists():
                    path.write_text(total if i == 0 or self.version == 1 else "0")

    def layers(self) -> tuple[str, ...]:
        return tuple(f"{c}-cgroup-v{self.version}" for c in ("pids", "memory") if c in self.dirs)

    def procs_files(self) -> list[str]:
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def hit(self, controller: str) -> bool:
        """Whether the controller refused a fork or OOM-killed a process during the run."""
        folder = self.dirs.get(controller)
        if folder is None:
            return False
        if controller == "pids":
            events = folder / "pids.events"
            key = "max"
        else:
            events = folder / ("memory.events" if self.version == 2 else "memory.oom_control")
            key = "oom_kill"
        with contextlib.suppress(OSError):
            for line in events.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key and int(value) > 0:
                    return True
        return False

    def kill(self, grace: float = 3.0) -> bool:
        """SIGKILL every process in the cgroup until it is empty; False if it never empties."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            pids = self._pids()
            if not pids:
                return True
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)
        return not self._pids()

    def _pids(self) -> set[int]:
        pids: set[int] = set()
        for procs in self.procs_files():
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in Path(procs).read_text().split())
        return pids

    def remove(self) -> None:
        for folder in {*self.dirs.values()}:
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


def _make_cgroups(name: str) -> tuple[dict[str, Path], int]:
    own = _own_cgroups()
    root = Path("/sys/fs/cgroup")
    dirs: dict[str, Path] = {}
    for controller in ("pids", "memory"):
        if controller in own:  # v1 hierarchy
            folder = root / controller / own[controller].lstrip("/") / name
            with contextlib.suppress(OSError):
                folder.mkdir()
                dirs[controller] = folder
    if dirs:
        return dirs, 1
    if "" in own and (root / "cgroup.controllers").exists():
        parent = root / own[""].lstrip("/")
        with contextlib.suppress(OSError):
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            wanted = [c for c in ("pids", "memory") if c in enabled]
            if wanted:
                (parent / name).mkdir()
                return {c: parent / name for c in wanted}, 2
    return {}, 0


def _preexec_isolated(limits: Limits, procs_files: list[str], hidden: list[str]):
    as_root = os.geteuid() == 0

    def apply() -> None:
        for procs in procs_files:  # join the run's cgroups while still root
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        if as_root:
            if hidden:
                _expose_to_nobody(hidden)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        # RLIMIT_NPROC is set inside the sandbox by the harness: set here it would count
        # every process of the outer uid on the host.
        _set_rlimits(limits, nproc=False)

    return apply


def _probe_failure(command: list[str], preexec) -> str | None:
    try:
        probe = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=30,
            preexec_fn=preexec,
            cwd="/",
            env=_sandbox_env("/"),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if probe.returncode == 0 and probe.stdout.strip() == "ok":
        return None
    return (probe.stderr.strip() or f"exit status {probe.returncode}")[-500:]


@functools.cache
def _sandbox_ready(interpreter: str) -> tuple[str, ...]:
    """The bwrap command prefix for this interpreter, once it has been seen to work."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(
            "the code judge runs candidates under bubblewrap (bwrap), which is not installed; "
            + INSTALL_HINT
        )
    args = _bwrap_args(bwrap, interpreter, Limits())
    hidden = _hidden_dirs(interpreter)
    command = [*args, interpreter, "-I", "-S", "-c", "print('ok')"]
    failure = _probe_failure(command, _preexec_isolated(Limits(), [], hidden))
    if failure is not None:
        user = "user nobody (the judge runs as root)" if os.geteuid() == 0 else "this user"
        raise SandboxUnavailable(
            f"bubblewrap could not start a sandbox as {user}: {failure}. User namespaces may "
            "be disabled (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces"
            ", or an AppArmor userns restriction); " + INSTALL_HINT
        )
    return tuple(args)


def _hidden_dirs(interpreter: str) -> list[str]:
    """Interpreter folders that user nobody cannot reach (only matters as root)."""
    if os.geteuid() != 0:
        return []
    return [d for d in _interpreter_dirs(interpreter) if not _reachable_by_others(Path(d))]


def sandbox_available(interpreter: str | None = None) -> str | None:
    """None when the OS sandbox works here, else the reason it does not."""
    try:
        _sandbox_ready(interpreter or sys.executable)
    except SandboxUnavailable as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------- running


def _unsafe_prefix(interpreter: str) -> tuple[list[str], tuple[str, ...]]:
    """The old runner's command prefix and layers: `unshare -n` and user nobody when root."""
    layers: tuple[str, ...] = ("unsafe-no-sandbox", "rlimits", "process-group-kill")
    layers = (*layers, "temp-cwd", "audit-hook", "harness-verdict")
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or not unshare:
        return [], layers
    prefix = [unshare, "-n"]
    layers = (*layers, "net-namespace")
    if _reachable_by_others(Path(interpreter)) and not _hidden_dirs(interpreter):
        prefix += ["-S", str(NOBODY), "-G", str(NOBODY)]
        layers = (*layers, "uid-nobody")
    else:
        # Root ignores RLIMIT_NPROC, so the audit hook has to stop forks instead.
        layers = (*layers, "fork-blocked-by-hook")
    return [*prefix, "--"], layers


@dataclass
class _Launch:
    command: list[str]
    preexec: object
    cwd: str
    env: dict[str, str]
    layers: tuple[str, ...]
    root: str  # the candidate's writable folder, as the harness sees it
    isolated: bool
    nproc: int
    block_fork: bool
    cgroup: _Cgroup | None = None
    temp: Path | None = None
    info_fd: int | None = None


def _isolated_launch(interpreter: str, limits: Limits) -> _Launch:
    args = list(_sandbox_ready(interpreter))
    # The probe used default limits; put this run's tmpfs size in.
    args[args.index("--size") + 1] = str(limits.disk_bytes)
    cgroup = _Cgroup.create(limits)
    layers = ("bwrap", "user-ns", "mount-ns", "pid-ns", "net-ns", "ipc-ns", "uts-ns")
    layers += ("ro-system-view", "tmpfs-home", "clearenv", "cap-drop-all", "no-new-privs")
    layers += (f"uid-{NOBODY}", "rlimits", "rlimit-nproc", *cgroup.layers())
    if "memory" not in cgroup.dirs:
        layers += ("memory-rlimit-as-only",)
    layers += ("pidns-kill", "audit-hook", "harness-verdict")
    preexec = _preexec_isolated(limits, cgroup.procs_files(), _hidden_dirs(interpreter))
    return _Launch(
        command=args,
        preexec=preexec,
        cwd="/",
        env=_sandbox_env("/"),
        layers=layers,
        root=SANDBOX_HOME,
        isolated=True,
        nproc=limits.max_processes,
        block_fork=False,
        cgroup=cgroup,
    )


def _unsafe_launch(interpreter: str, limits: Limits) -> _Launch:
    prefix, layers = _unsafe_prefix(interpreter)
    temp = Path(tempfile.mkdtemp(prefix="hs-sandbox-"))
    if "uid-nobody" in layers:
        os.chown(temp, NOBODY, NOBODY)

    def apply() -> None:
        _set_rlimits(limits, nproc=True)

    return _Launch(
        command=prefix,
        preexec=apply,
        cwd=str(temp),
        env=_sandbox_env(str(temp)),
        layers=layers,
        root=str(temp),
        isolated=False,
        nproc=0,
        block_fork="fork-blocked-by-hook" in layers,
        temp=temp,
    )


def _job_fd(job: dict) -> int:
    """An anonymous file holding the job; the harness reads and closes it first thing."""
    fd = os.memfd_create("hs-job", 0)
    os.write(fd, json.dumps(job).encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _Streams:
    """The run's pipes, read without blocking until exit, the deadline or the output cap."""

    def __init__(self, process: subprocess.Popen, report: int, info: int | None) -> None:
        self.process = process
        self.fds = {"stdout": process.stdout.fileno(), "stderr": process.stderr.fileno()}
        self.fds["report"] = report
        if info is not None:
            self.fds["info"] = info
        self.data = {name: bytearray() for name in self.fds}
        for fd in self.fds.values():
            os.set_blocking(fd, False)
        self.caps = {"report": REPORT_LIMIT, "info": 4096}
        self.pidfd: int | None = None

    def collect(self, stdin: bytes, limits: Limits) -> str:
        """Returns "", "timeout" or "output_limit"."""
        deadline = time.monotonic() + limits.wall_seconds
        selector = selectors.DefaultSelector()
        for name, fd in self.fds.items():
            selector.register(fd, selectors.EVENT_READ, name)
        pending = memoryview(stdin)
        stdin_fd = self.process.stdin.fileno()
        os.set_blocking(stdin_fd, False)
        if pending:
            selector.register(stdin_fd, selectors.EVENT_WRITE, "stdin")
        else:
            self.process.stdin.close()
        cut = ""
        while not cut and selector.get_map():
            if self.process.poll() is not None:
                # Exited: take what is buffered now, without waiting on pipes that leftover
                # processes (only possible in the unsafe runner) may still hold open.
                for name in list(self.fds):
                    self._drain(name, limits)
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                cut = "timeout"
                break
            for key, _ in selector.select(min(remaining, 0.5)):
                if key.data == "stdin":
                    pending = self._feed(selector, stdin_fd, pending)
                    continue
                if not self._read(key.data, limits):
                    selector.unregister(key.fd)
                if key.data in ("stdout", "stderr") and len(self.data[key.data]) > (
                    limits.output_bytes
                ):
                    cut = "output_limit"
                    break
        selector.close()
        if not self.process.stdin.closed:
            self.process.stdin.close()
        return cut

    def _feed(self, selector, fd: int, pending: memoryview) -> memoryview:
        try:
            written = os.write(fd, pending[:65536])
        except BrokenPipeError:
            written = len(pending)
        pending = pending[written:]
        if not pending:
            selector.unregister(fd)
            self.process.stdin.close()
        return pending

    def _read(self, name: str, limits: Limits) -> bool:
        """Read one chunk; False at end of file."""
        try:
            chunk = os.read(self.fds[name], 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            if name == "info":
                self._open_pidfd()
            return False
        cap = self.caps.get(name, limits.output_bytes)
        if len(self.data[name]) <= cap:
            self.data[name] += chunk
        return True

    def _drain(self, name: str, limits: Limits) -> None:
        cap = self.caps.get(name, limits.output_bytes)
        while len(self.data[name]) <= cap:
            try:
                chunk = os.read(self.fds[name], 65536)
            except OSError:
                break
            if not chunk:
                break
            self.data[name] += chunk
        if name == "info":
            self._open_pidfd()

    def _open_pidfd(self) -> None:
        """bwrap's --info-fd names the sandbox's PID-1 as the host sees it. A pidfd on it
        cannot hit a recycled pid later."""
        if self.pidfd is not None:
            return
        with contextlib.suppress(ValueError, KeyError, OSError):
            pid = int(json.loads(bytes(self.data["info"]))["child-pid"])
            self.pidfd = os.pidfd_open(pid)

    def kill_namespace(self) -> None:
        """SIGKILL the sandbox's PID-1: the kernel then kills every process in its PID
        namespace, and PID-1 only finishes exiting once they are all gone."""
        if "info" in self.fds:
            self._drain("info", Limits())
        if self.pidfd is None:
            return
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        selector = selectors.DefaultSelector()
        selector.register(self.pidfd, selectors.EVENT_READ)
        selector.select(3.0)
        selector.close()
        os.close(self.pidfd)
        self.pidfd = None


def _kill_group(process: subprocess.Popen, grace: float = 2.0) -> None:
    """SIGKILL the run's process group and wait (briefly) until it is gone."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        if process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        else:
            time.sleep(0.002)  # other members of the group are still exiting


def _exit_signal(returncode: int, isolated: bool) -> int | None:
    """The signal that ended the candidate: bwrap reports a child killed by signal N as
    exit status 128 + N."""
    if returncode < 0:
        return -returncode
    if isolated and returncode > 128:
        return returncode - 128
    return None


def _limit_hit(
    returncode: int, text: str, cut: str, launch: _Launch, limits: Limits
) -> tuple[Status, str] | None:
    """A resource limit that ended or broke the run, from the outside signals first."""
    if cut == "timeout":
        return "timeout", f"wall-time limit of {limits.wall_seconds}s exceeded"
    if cut == "output_limit":
        return "output_limit", f"output exceeded {limits.output_bytes} bytes"
    sig = _exit_signal(returncode, launch.isolated)
    cgroup = launch.cgroup
    if sig == signal.SIGXCPU:
        return "cpu_limit", f"CPU-time limit of {limits.cpu_seconds}s exceeded"
    if (cgroup and cgroup.hit("memory")) or "MemoryError" in text:
        return "memory", f"memory limit of {limits.memory_bytes} bytes exceeded"
    if (cgroup and cgroup.hit("pids")) or (
        "Errno 11" in text and ("BlockingIOError" in text or "fork" in text)
    ):
        return "process_limit", f"process limit of {limits.max_processes} reached"
    if sig == signal.SIGXFSZ or "Errno 28" in text or "Errno 27" in text:
        return "disk_limit", f"disk limit ({limits.disk_bytes} bytes, files {limits.file_bytes})"
    return None


def _classify(
    report: _Report, returncode: int, stderr: str, cut: str, launch: _Launch, limits: Limits
) -> tuple[Status, str]:
    tests_mode = report.done is not None and report.done >= 0
    if report.done is not None and not cut and report.module in ("ok", "exit"):
        if not tests_mode:
            return "passed", "ran to completion"
        if report.done > 0 and report.tests_ok >= set(range(report.done)):
            return "passed", f"all {report.done} test statements passed"
    details = " ".join(
        [report.module_detail, report.failure[1] if report.failure else "", stderr[-2000:]]
    )
    limit = _limit_hit(returncode, details, cut, launch, limits)
    if limit is not None:
        return limit
    if "sandbox: " in details and "PermissionError" in details:
        return "blocked", "sandbox: " + details.split("sandbox: ", 1)[1].split("\n")[0][:300]
    if report.invalid_tests is not None:
        return "error", f"the tests do not parse: {report.invalid_tests}"
    if report.module == "error":
        return "error", report.module_detail
    if report.failure is not None:
        index, detail = report.failure
        total = report.done if tests_mode else "?"
        return "failed", f"{detail} (test statement {index + 1} of {total})"
    if report.done == 0:
        return "error", "the tests contain no statements"
    sig = _exit_signal(returncode, launch.isolated)
    if sig is not None:
        return "error", f"killed by signal {signal.Signals(sig).name}"
    forged = f"; {report.forged} report lines without the run's nonce ignored"
    return "failed", (
        f"the candidate ended the run (exit status {returncode}) before the harness reported "
        f"completion" + (forged if report.forged else "")
    )


def _run(
    candidate: str,
    tests: str | None,
    stdin: str,
    limits: Limits,
    interpreter: str,
    unsafe_no_sandbox: bool,
) -> RunResult:
    if unsafe_no_sandbox:
        launch = _unsafe_launch(interpreter, limits)
    else:
        launch = _isolated_launch(interpreter, limits)
    nonce = secrets.token_hex(16)
    job = {"nonce": nonce, "candidate": candidate, "tests": tests, "root": launch.root}
    job |= {"nproc": launch.nproc, "block_fork": launch.block_fork}
    job["site_dirs"] = list(_site_dirs(interpreter))
    job_fd = _job_fd(job)
    report_r, report_w = os.pipe()
    info_r, info_w = os.pipe() if launch.isolated else (None, None)
    command = list(launch.command)
    if info_w is not None:
        command[1:1] = ["--info-fd", str(info_w)]
    # -S: site's .pth files (editable installs, vendor hooks) cost ~30 ms and run code;
    # the harness puts the site-packages folders on sys.path itself.
    command += [interpreter, "-I", "-S", "-B", "-c", _HARNESS, str(job_fd), str(report_w)]
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            command,
            cwd=launch.cwd,
            env=launch.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=launch.preexec,
            start_new_session=True,
            pass_fds=tuple(fd for fd in (job_fd, report_w, info_w) if fd is not None),
        )
    except BaseException:
        for fd in (job_fd, report_r, report_w, info_r, info_w):
            if fd is not None:
                os.close(fd)
        _cleanup(launch)
        raise
    for fd in (job_fd, report_w, info_w):
        if fd is not None:
            os.close(fd)
    streams = _Streams(process, report_r, info_r)
    try:
        cut = streams.collect(stdin.encode(), limits)
    finally:
        streams.kill_namespace()
        _kill_group(process)
        returncode = process.wait()
        for stream in (process.stdout, process.stderr):
            stream.close()
        for fd in (report_r, info_r):
            if fd is not None:
                os.close(fd)
    seconds = time.monotonic() - started
    stdout = bytes(streams.data["stdout"][: limits.output_bytes]).decode("utf-8", "replace")
    stderr = bytes(streams.data["stderr"][: limits.output_bytes]).decode("utf-8", "replace")
    report = _Report.parse(bytes(streams.data["report"]), nonce)
    try:
        status, reason = _classify(report, returncode, stderr, cut, launch, limits)
    finally:
        _cleanup(launch)
    return RunResult(status, reason, stdout, stderr, returncode, seconds, launch.layers)


def _cleanup(launch: _Launch) -> None:
    if launch.cgroup is not None:
        launch.cgroup.kill()
        launch.cgroup.remove()
    if launch.temp is not None:
        shutil.rmtree(launch.temp, ignore_errors=True)


def run_python(
    source: str,
    stdin: str = "",
    limits: Limits | None = None,
    interpreter: str | None = None,
    *,
    unsafe_no_sandbox: bool = False,
) -> RunResult:
    """Run `source` as `__main__` in the sandbox; "passed" means it ran to completion (or
    to `sys.exit(0)`), as reported by the harness.

    Raises SandboxUnavailable when no OS isolation is available, unless
    `unsafe_no_sandbox` is set. `interpreter` defaults to this Python; candidates need only
    the standard library.
    """
    limits = limits or Limits()
    interpreter = interpreter or sys.executable
    return _run(source, None, stdin, limits, interpreter, unsafe_no_sandbox)


def _same_output(actual: str, expected: str) -> bool:
    """Equal up to trailing spaces on each line and trailing blank lines."""

    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in text.strip().splitlines()]

    return lines(actual) == lines(expected)


def judge_assert_tests(
    candidate: str,
    tests: str,
    limits: Limits | None = None,
    *,
    unsafe_no_sandbox: bool = False,
    interpreter: str | None = None,
) -> CodeVerdict:
    """Import the candidate as module `solution`, then run each top-level statement of the
    assert-style tests in its namespace; passing means the harness saw every one pass."""
    limits = limits or Limits()
    interpreter = interpreter or sys.executable
    result = _run(candidate, tests, "", limits, interpreter, unsafe_no_sandbox)
    return CodeVerdict(result.passed, f"{result.status}: {result.reason}", [result])


def judge_io_cases(
    candidate: str,
    cases: list[IOCase],
    limits: Limits | None = None,
    *,
    unsafe_no_sandbox: bool = False,
    interpreter: str | None = None,
) -> CodeVerdict:
    """Run the candidate once per stdin/stdout case; it stops at the first failing case."""
    runs = []
    for i, case in enumerate(cases):
        result = run_python(
            candidate, case.stdin, limits, interpreter, unsafe_no_sandbox=unsafe_no_sandbox
        )
        runs.append(result)
        if not result.passed:
            return CodeVerdict(False, f"case {i}: {result.status}: {result.reason}", runs)
        if not _same_output(result.stdout, case.expected_stdout):
            got = result.stdout.strip()[:200]
            return CodeVerdict(
                False, f"case {i}: wrong output {got!r}, expected {case.expected_stdout!r}", runs
            )
    return CodeVerdict(True, f"all {len(cases)} cases passed", runs)
