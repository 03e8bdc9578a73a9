"""The preloaded start of the supervisor's children: a fork server ("zygote") that imports the modules the
children share once, freezes them out of the garbage collector, and forks each child from that state, so
the pages of the interpreter, numpy, uvloop and fastmm stay shared (copy-on-write) between the processes
instead of being loaded privately by each (issue 21: about 38 MB per process before any work).

Why a separate process and not a fork of the supervisor itself: at the moment it forks, the supervisor
holds the instance lock, its journal, every segment's mapping and eventfd, log handlers and (in a test) a
pytest process with threads; a forked child would inherit all of it and run on a heap it never built. The
zygote is exec'd clean by the supervisor before any child starts: it holds nothing but its socket, has a
single thread (OpenBLAS is limited to one), opens no loop, and is the same for the first start and every
restart. Each child still starts exactly as its argv says (``python -m MODULE ARGS`` or
``python SCRIPT ARGS``, run by :mod:`runpy` as ``__main__``), with its own environment, only the file
descriptors the supervisor passes, SIGINT blocked, and the supervisor's process group.

Why the supervisor stays the parent: the zygote forks twice (the middle process exits at once) and the
supervisor is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so each child is reparented to the supervisor
before the supervisor learns its pid. The supervisor then waits for it, signals it and reads its exit status
exactly as it does an exec'd child (:class:`ForkedProcess`), an exited child stays a zombie until the
supervisor reaps it (so its pid is never reused under a ``kill``), ``PR_SET_PDEATHSIG`` and
``FASTMM_SUPERVISOR_PID`` keep meaning the supervisor, and a dead zygote costs only the fork start (the
supervisor goes back to exec), never a running child. A child waits for that reparenting before it runs.

Without setproctitle, a child rewrites its own argv and environment areas in place (the zygote is started
with room for both) so ``/proc/<pid>/cmdline`` shows the child's command line and ``/proc/<pid>/environ``
its own environment (and so its own secrets only: the zygote has none), as an exec'd child's would.

This module is imported by the zygote before anything else of fastmm: only the standard library at the top.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("fastmm.zygote")

PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
ROOM_ENV = "_FASTMM_ZYGOTE_ROOM"        # filler in the zygote's environment: room for a child's
ENV_ROOM = 8192                          # environment, written over it (secrets included)
ARGV_ROOM = 1024                         # the same for a child's command line
MAX_MESSAGE = 1 << 20
REPLY_TIMEOUT_S = 10.0
REPARENT_TIMEOUT_S = 5.0


class ZygoteError(RuntimeError):
    """The zygote could not start a child (it died, refused, or did not answer)."""


def _prctl(option: int, arg: int) -> bool:
    try:
        return int(ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


# -- the supervisor's side ---------------------------------------------------------------------------
def forkable(argv: Sequence[str]) -> bool:
    """Whether the zygote can run ``argv`` as exec would: this interpreter, no interpreter options, then
    ``-m MODULE`` or a script."""
    if len(argv) < 2 or argv[0] != sys.executable:
        return False
    if argv[1] == "-m":
        return len(argv) >= 3 and bool(argv[2])
    return not argv[1].startswith("-")


class ForkedProcess:
    """A child the zygote forked and the supervisor (its subreaper) adopted: the part of
    :class:`subprocess.Popen` the supervisor uses, on ``waitpid`` and ``kill`` by pid."""

    def __init__(self, pid: int, args: Sequence[str]) -> None:
        self.pid = pid
        self.args = list(args)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:      # not ours after all (no subreaper): it is gone when /proc says so
            if not os.path.exists(f"/proc/{self.pid}"):
                log.error("pid %d was not adopted by the supervisor; its exit status is lost", self.pid)
                self.returncode = 255
            return self.returncode
        if pid == 0:
            return None
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.005)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:      # a reaped pid may belong to someone else by now
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def preload_modules(entry_modules: Iterable[str]) -> list[str]:
    """What the zygote imports: the child runtime, uvloop, and the entry module of each child."""
    return list(dict.fromkeys(["fastmm.procs.run", "uvloop", *entry_modules]))


class Zygote:
    """The supervisor's handle on its fork server."""

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket, threads: int) -> None:
        self.proc = proc
        self.sock = sock
        self.threads = threads

    @classmethod
    def start(cls, modules: Sequence[str], environ: Mapping[str, str], secrets: Iterable[str],
              timeout_s: float = 30.0) -> Zygote:
        """Make this process a child subreaper and start the zygote (exec'd, holding no secret, SIGINT
        blocked); returns once it has imported ``modules``. Raises ZygoteError."""
        from fastmm.procs.children import spawn_without_sigint

        if not _prctl(PR_SET_CHILD_SUBREAPER, 1):
            raise ZygoteError("cannot become a child subreaper (PR_SET_CHILD_SUBREAPER)")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        secret = frozenset(secrets)
        env = {k: v for k, v in environ.items() if k not in secret}
        env[ROOM_ENV] = "." * ENV_ROOM
        argv = [sys.executable, "-m", "fastmm.procs.zygote", str(theirs.fileno()), str(os.getpid()),
                *modules, "." * ARGV_ROOM]
        try:
            proc = spawn_without_sigint(argv, pass_fds=(theirs.fileno(),), env=env)
        except OSError as e:
            ours.close()
            raise ZygoteError(f"cannot start: {e}") from e
        finally:
            theirs.close()
        ours.settimeout(timeout_s)
        try:
            hello = json.loads(ours.recv(MAX_MESSAGE) or b"null")
        except (OSError, ValueError) as e:
            hello = None
            log.error("zygote: no answer (%s)", e)
        if not isinstance(hello, dict) or "threads" not in hello:
            ours.close()
            proc.kill()
            proc.wait(10)
            raise ZygoteError(f"did not start (exit {proc.returncode})")
        for name, err in hello.get("failed", {}).items():
            log.warning("zygote: could not preload %s (%s); children import it themselves", name, err)
        ours.settimeout(REPLY_TIMEOUT_S)
        return cls(proc, ours, int(hello["threads"]))

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], pass_fds: Sequence[int]) -> ForkedProcess:
        """Fork a child that runs ``argv`` with ``env`` and ``pass_fds`` (at the same numbers); its
        handle once it is this process's child. Raises ZygoteError."""
        req = json.dumps({"argv": list(argv), "env": dict(env), "cwd": os.getcwd(),
                          "fds": list(pass_fds), "parent": os.getpid()}).encode()
        try:
            socket.send_fds(self.sock, [req], list(pass_fds))
            reply = json.loads(self.sock.recv(MAX_MESSAGE) or b"null")
        except (OSError, ValueError) as e:
            raise ZygoteError(f"no answer ({e})") from e
        if not isinstance(reply, dict) or "pid" not in reply:
            raise ZygoteError(f"refused: {reply!r}")
        return ForkedProcess(int(reply["pid"]), argv)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """End the zygote (closing its socket ends it) and stop being a subreaper."""
        self.sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        _prctl(PR_SET_CHILD_SUBREAPER, 0)


# -- the zygote's side --------------------------------------------------------------------------------
def _proc_areas() -> tuple[int, int, int, int]:
    """(arg_start, arg_end, env_start, env_end) of this process (/proc/self/stat fields 48 to 51)."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[45]), int(fields[46]), int(fields[47]), int(fields[48])


def _write_area(start: int, end: int, items: Iterable[str]) -> bool:
    """Write NUL-terminated ``items`` over [start, end) of this process's memory, NUL-padded; False (and
    nothing written) when they do not fit."""
    data = b"".join(s.encode("utf-8", "surrogateescape") + b"\0" for s in items)
    if not start or len(data) > end - start:
        return False
    ctypes.memmove(start, data + b"\0" * (end - start - len(data)), end - start)
    return True


def _set_identity(name: str, argv: Sequence[str], env: Mapping[str, str] | None) -> None:
    """/proc/self/cmdline (and environ) as an exec'd process with this argv (and env) would show them,
    and the thread name a short form of it."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        arg_start, arg_end, env_start, env_end = _proc_areas()
        _write_area(arg_start, arg_end, argv)
        if env is not None:
            _write_area(env_start, env_end, (f"{k}={v}" for k, v in env.items()))
    with contextlib.suppress(OSError, AttributeError):
        buf = ctypes.create_string_buffer(name.encode()[:15])
        ctypes.CDLL(None).prctl(PR_SET_NAME, buf, 0, 0, 0)


@dataclass
class Job:
    """What a forked child runs: ``argv`` as ``python`` would have."""

    argv: list[str]

    def run(self) -> int:
        import runpy

        if self.argv[1] == "-m":
            # The zygote preloaded the module; running it again as __main__ is what exec does too.
            warnings.filterwarnings("ignore", r"'.*' found in sys.modules after import of package",
                                    RuntimeWarning)
            sys.argv = [self.argv[2], *self.argv[3:]]
            runpy.run_module(self.argv[2], run_name="__main__", alter_sys=True)
        else:
            script = self.argv[1]
            sys.argv = [script, *self.argv[2:]]
            sys.path[0] = os.path.dirname(os.path.realpath(script))
            runpy.run_path(script, run_name="__main__")
        return 0


def _become_child(sock: socket.socket, req: dict[str, object], fds: list[int], ready: int) -> Job:
    """In the forked child: the environment, descriptors, signals and identity of an exec'd child. Closing
    ``ready`` tells the zygote (and so the supervisor) it is done: from then on /proc shows the child's
    own command line and environment, as it would from an exec'd child's first instruction."""
    argv = [str(a) for a in req["argv"]]                          # type: ignore[attr-defined]
    env = {str(k): str(v) for k, v in req["env"].items()}         # type: ignore[attr-defined]
    targets = [int(t) for t in req["fds"]]                        # type: ignore[attr-defined]
    sock.close()
    # Descriptors: the passed ones at the supervisor's numbers, 0-2, and nothing else.
    high = max([*targets, *fds, ready, 2]) + 1
    moved = [os.dup2(fd, high + i) for i, fd in enumerate(fds)]
    ready = os.dup2(ready, high + len(fds), inheritable=False)
    for fd, target in zip(moved, targets, strict=True):
        os.dup2(fd, target)
    keep = {0, 1, 2, *targets, ready}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    # Wait until the supervisor (a subreaper) has adopted us: PR_SET_PDEATHSIG, set by the child itself,
    # must name the supervisor, not the middle process that just exited.
    parent = int(str(req["parent"]))
    deadline = time.monotonic() + REPARENT_TIMEOUT_S
    while os.getppid() != parent and time.monotonic() < deadline:
        time.sleep(0.0002)
    os.environ.clear()
    _set_identity(env.get("FASTMM_PROCESS") or os.path.basename(argv[-1]), argv, env)
    os.environ.update(env)
    os.close(ready)
    with contextlib.suppress(OSError):
        os.chdir(str(req["cwd"]))
    # Signals as a freshly exec'd interpreter has them; SIGINT stays blocked (fastmm.procs.run unblocks it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if "numpy" in sys.modules:          # the legacy global generator is not reseeded by fork
        sys.modules["numpy"].random.seed()
    return Job(argv)


def _serve(sock: socket.socket) -> Job | None:
    """Fork a child per request until the supervisor closes the socket; returns only in a child."""
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 64)
        except InterruptedError:
            continue
        if not msg:
            return None
        try:
            req = json.loads(msg)
            ok = forkable(req["argv"])
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"error": "bad request"}).encode())
            continue
        r, w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        middle = os.fork()
        if middle == 0:                 # the middle process: fork the child, say its pid, exit
            os.close(r)
            try:
                pid = os.fork()
            except OSError:
                os._exit(1)
            if pid == 0:                 # the child closes its end of the pipe once it is set up
                try:
                    return _become_child(sock, req, fds, w)
                except BaseException:
                    traceback.print_exc()
                    os._exit(127)
            os.write(w, str(pid).encode())
            os._exit(0)
        os.close(w)
        for fd in fds:
            os.close(fd)
        with os.fdopen(r, "rb") as f:
            got = f.read()
        os.waitpid(middle, 0)
        reply = {"pid": int(got)} if got else {"error": "fork failed"}
        sock.send(json.dumps(reply).encode())


def main(argv: list[str] | None = None) -> int:
    """``python -m fastmm.procs.zygote FD SUPERVISOR_PID MODULE... ROOM``."""
    args = sys.argv[1:] if argv is None else argv
    fd, supervisor = int(args[0]), int(args[1])
    modules = [m for m in args[2:] if not m.startswith(".")]
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor:
        return 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # stays blocked too: a child inherits the mask
    os.environ.pop(ROOM_ENV, None)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # no BLAS threads to fork over; the engine has no
    sock = socket.socket(fileno=fd)                      # use for them
    _set_identity("fastmm-zygote", [sys.executable, "-m", "fastmm.procs.zygote", *modules], None)
    failed = {}
    for m in modules:
        try:
            importlib.import_module(m)
        except Exception as e:    # a child imports it again and reports it properly
            failed[m] = f"{type(e).__name__}: {e}"
    gc.collect()
    gc.freeze()
    threads = len(os.listdir("/proc/self/task"))
    sock.send(json.dumps({"threads": threads, "failed": failed}).encode())
    job = _serve(sock)
    if job is None:
        return 0
    return job.run()


if __name__ == "__main__":
    sys.exit(main())
