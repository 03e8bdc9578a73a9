"""Throwaway PostgreSQL and Redis servers on loopback, for tests and benchmarks.

Each server runs from the Debian packages (``postgresql``, ``redis-server``) in a temporary folder on a
free 127.0.0.1 port and is removed with that folder on :meth:`stop`. PostgreSQL refuses to run as root,
so as root its processes are started as the ``postgres`` system user (``subprocess.Popen(user=...)``,
so the pid we hold is the server's own, not a wrapper's). Both servers require a password, generated
here and handed to clients through the environment (never argv), as production does.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote


class ServerError(RuntimeError):
    """A server that is not installed or did not come up."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"{what} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ServerError(f"{what} not listening on 127.0.0.1:{port} after {timeout_s} s")


def _stop_proc(proc: subprocess.Popen[bytes] | None, sig: int, timeout_s: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=timeout_s)


def pg_bindir() -> Path:
    """The newest installed PostgreSQL's binaries (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("postgres")
    if exe:
        return Path(exe).parent
    raise ServerError("PostgreSQL is not installed (Debian: apt-get install postgresql)")


class PostgresServer:
    """``initdb`` into a temporary folder, ``postgres`` on a free loopback port, SCRAM password auth."""

    def __init__(self, user: str = "fastmm", database: str = "fastmm") -> None:
        self.user = user
        self.database = database
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.root = Path(tempfile.mkdtemp(prefix="fastmm-pg-"))
        self.data = self.root / "data"
        self._run_as = "postgres" if os.geteuid() == 0 else None
        self._bin = pg_bindir()

    def _popen(self, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        if self._run_as:
            return subprocess.Popen(argv, user=self._run_as, group=self._run_as, cwd=self.root, **kw)  # type: ignore[call-overload]
        return subprocess.Popen(argv, cwd=self.root, **kw)  # type: ignore[call-overload]

    def init(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._run_as:
            shutil.chown(self.root, self._run_as, self._run_as)
            shutil.chown(pwfile, self._run_as, self._run_as)
        pwfile.chmod(0o600)
        p = self._popen([str(self._bin / "initdb"), "-D", str(self.data), "-U", self.user, "--pwfile",
                         str(pwfile), "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8",
                         "--no-sync"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = p.communicate(timeout=120)
        pwfile.unlink()
        if p.returncode != 0:
            raise ServerError(f"initdb failed: {out.decode(errors='replace')[-500:]}")

    def start(self, timeout_s: float = 30.0) -> None:
        """Start (again) on the same folder; the port is chosen once and kept across restarts."""
        if not self.data.exists():
            self.init()
        self.port = self.port or free_port()
        log = (self.root / "postgres.log").open("ab")
        self.proc = self._popen([str(self._bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                                 "-h", "127.0.0.1", "-k", str(self.root), "-c", "fsync=off",
                                 "-c", "full_page_writes=off"],
                                stdout=log, stderr=log)
        log.close()
        _wait_port(self.port, self.proc, timeout_s, "postgres")
        deadline = time.monotonic() + timeout_s
        import psycopg

        while True:   # listening is not accepting: wait out "the database system is starting up"
            try:
                with psycopg.connect(self.dsn(with_password=True, database="postgres"), connect_timeout=2):
                    break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        if self.database != "postgres":
            with psycopg.connect(self.dsn(with_password=True, database="postgres"), autocommit=True) as c:
                if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone():
                    c.execute(f'CREATE DATABASE "{self.database}"')

    def dsn(self, *, with_password: bool = False, database: str | None = None) -> str:
        """A URL; without ``with_password`` the password is left to ``PGPASSWORD``/the caller's env."""
        auth = self.user + (":" + quote(self.password, safe="") if with_password else "")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database or self.database}"

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT): what a killed server looks like to its clients."""
        _stop_proc(self.proc, signal.SIGQUIT)
        self.proc = None

    def stop(self) -> None:
        """Fast shutdown (SIGINT); the folder stays for a restart."""
        _stop_proc(self.proc, signal.SIGINT)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """``redis-server`` without persistence on a free loopback port, with a password (``requirepass``
    from a config file in the temporary folder, so it is not in the server's argv either)."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise ServerError("Redis is not installed (Debian: apt-get install redis-server)")
        self.exe = exe
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.root = Path(tempfile.mkdtemp(prefix="fastmm-redis-"))

    def start(self, timeout_s: float = 15.0) -> None:
        self.port = self.port or free_port()
        conf = self.root / "redis.conf"
        conf.write_text(f"port {self.port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {self.root}\n"
                        f"requirepass {self.password}\nlogfile {self.root / 'redis.log'}\n")
        conf.chmod(0o600)
        self.proc = subprocess.Popen([self.exe, str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, timeout_s, "redis-server")

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        _stop_proc(self.proc, signal.SIGTERM)
        self.proc = None

    def crash(self) -> None:
        _stop_proc(self.proc, signal.SIGKILL)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
