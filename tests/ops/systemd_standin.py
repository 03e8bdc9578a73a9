"""Stand-ins for ``systemctl`` and ``journalctl`` in the operations tests (never shipped).

The test machines are containers without systemd as PID 1, so the real tools cannot start a unit. These
stand-ins carry out what systemd would do with the unit files of ops/, read as they are, so a runbook
block like ``systemctl stop fastmm`` runs verbatim and fails when a unit file or a command is wrong:

* ``systemctl start UNIT...``: ExecStartPre lines in order (a failure fails the start), then ExecStart,
  with an environment built as systemd builds it (a minimal PATH and LANG, then ``Environment=``, then
  ``EnvironmentFile=``; nothing from the caller's environment), in ``WorkingDirectory``, with
  ``CPUAffinity`` and the ``Limit*`` settings applied where this machine allows, in its own process group
  (the stand-in's control group). A small manager process per unit plays systemd's part: it waits for
  the main process, records its exit status, and writes every line of the unit's stdout and stderr with
  a timestamp to the unit's journal. When the main process ends, what is left of the group gets SIGKILL
  (KillMode ``mixed`` and ``control-group``).
* ``systemctl stop UNIT...``: ``KillSignal`` to the main process (``mixed``, ``process``) or to the
  group (``control-group``), SIGKILL to the group after ``TimeoutStopSec``; returns when it is stopped.
* ``systemctl kill [-s SIG] [--kill-whom=all|main] UNIT...``: the signal to the group (default) or the
  main process.
* ``systemctl is-active [--quiet] UNIT...``: active, inactive (ended with status 0) or failed.
* ``journalctl -u UNIT [--since -1h|-30min|-10s|today|"YYYY-MM-DD HH:MM:SS"] [-n N] [--no-pager]``.

What is not modelled: users and groups (``User=``, ``Group=``: the test runs as itself), the sandboxing
settings (``Protect*``, ``PrivateTmp``, ``NoNewPrivileges``, ``ReadWritePaths``), dependencies
(``Wants``, ``After``) and ``Restart=``; a unit with an Exec setting or a ``Type`` this does not
implement is refused, so it cannot pass by being ignored.

The production paths in the unit files are mapped onto the test's: ``FASTMM_TEST_SYSTEMD_MAP`` is a JSON
list of ``[production text, test text]`` replacements applied to every value the stand-in uses; a
directory the unit names that is not mapped into the test's tree is refused, never created. The units
are read from ``FASTMM_TEST_SYSTEMD_UNITS`` (ops/), the state (pids, exit statuses, journals) lives in
``FASTMM_TEST_SYSTEMD_STATE``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from fastmm.shm.segment import pid_alive  # the same test: signal 0, and a zombie is dead

SERVICE_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SUPPORTED = {"Type": {"simple"}, "KillMode": {"mixed", "control-group", "process"}}
NOT_IMPLEMENTED = ("ExecStop", "ExecStopPost", "ExecReload", "ExecStartPost", "ExecCondition")
LIMITS = {"LimitNOFILE": resource.RLIMIT_NOFILE, "LimitMEMLOCK": resource.RLIMIT_MEMLOCK}


class UnitError(Exception):
    pass


# -- units ----------------------------------------------------------------------------------------------
def _env(name: str) -> str:
    v = os.environ.get(name)
    if not v:
        raise UnitError(f"{name} is not set: the stand-in runs only inside the operations tests")
    return v


def unit_name(arg: str) -> str:
    return arg if arg.endswith(".service") else arg + ".service"


def mapping() -> list[tuple[str, str]]:
    return [(a, b) for a, b in json.loads(os.environ.get("FASTMM_TEST_SYSTEMD_MAP", "[]"))]


def mapped(text: str) -> str:
    for a, b in mapping():
        text = text.replace(a, b)
    return text


def load_unit(name: str) -> dict[str, list[str]]:
    path = Path(_env("FASTMM_TEST_SYSTEMD_UNITS")) / name
    if not path.is_file():
        raise UnitError(f"Unit {name} not found.")
    out: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise UnitError(f"{name}: not a setting: {line!r}")
        if section == "[Service]":
            out.setdefault(key.strip(), []).append(value.strip())
    for key in NOT_IMPLEMENTED:
        if key in out:
            raise UnitError(f"{name}: {key}= is not implemented by the stand-in")
    for key, allowed in SUPPORTED.items():
        for v in out.get(key, []):
            if v not in allowed:
                raise UnitError(f"{name}: {key}={v} is not implemented by the stand-in")
    if len(out.get("ExecStart", [])) != 1:
        raise UnitError(f"{name}: a simple service has exactly one ExecStart=")
    return out


def last(unit: dict[str, list[str]], key: str, default: str = "") -> str:
    return unit.get(key, [default])[-1]


def _test_dir(path: str, what: str) -> str:
    """A directory of the unit, mapped into the test's tree; an unmapped one is refused."""
    m = mapped(path)
    if m == path:
        raise UnitError(f"{what}={path} is not mapped into the test's tree (FASTMM_TEST_SYSTEMD_MAP)")
    return m


def service_env(unit: dict[str, list[str]]) -> dict[str, str]:
    env = dict(kv.split("=", 1) for kv in (SERVICE_PATH, "LANG=C.UTF-8"))
    for line in unit.get("Environment", []):
        for word in shlex.split(mapped(line)):
            k, sep, v = word.partition("=")
            if not sep:
                raise UnitError(f"Environment={line}: not KEY=VALUE")
            env[k] = v
    for line in unit.get("EnvironmentFile", []):
        optional = line.startswith("-")
        path = Path(_test_dir(line.lstrip("-"), "EnvironmentFile"))
        try:
            text = path.read_text()
        except OSError as e:
            if optional:
                continue
            raise UnitError(f"Failed to load environment files: {path}: {e.strerror}") from None
        for raw in text.splitlines():
            s = raw.strip()
            if not s or s.startswith(("#", ";")):
                continue
            k, sep, v = s.partition("=")
            if not sep:
                raise UnitError(f"{path}: ignoring invalid line {s!r}")
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                v = v[1:-1]
            env[k.strip()] = v
    return env


def exec_argv(line: str) -> tuple[list[str], bool]:
    """An Exec line's argv (mapped) and whether a failure is ignored (the ``-`` prefix)."""
    ignore = line.startswith("-")
    words = shlex.split(mapped(line.lstrip("-@+!")))
    if not words or not words[0].startswith("/"):
        raise UnitError(f"Exec line {line!r}: the program must be an absolute path")
    if not os.access(words[0], os.X_OK):
        raise UnitError(f"Exec line {line!r}: {words[0]} is not executable (unmapped production path?)")
    return words, ignore


def _cpus(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.replace(",", " ").split():
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m)?", text.strip())
    if not m:
        raise UnitError(f"cannot read the time span {text!r}")
    return float(m.group(1)) * {"ms": 0.001, "min": 60.0, "m": 60.0}.get(m.group(2) or "s", 1.0)


# -- state ----------------------------------------------------------------------------------------------
def state_dir() -> Path:
    d = Path(_env("FASTMM_TEST_SYSTEMD_STATE"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def read_state(name: str) -> dict:
    try:
        return json.loads((state_dir() / f"{name}.json").read_text())
    except (OSError, ValueError):
        return {"state": "inactive"}


def write_state(name: str, st: dict) -> None:
    path = state_dir() / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(st))
    tmp.replace(path)


def active_state(name: str) -> str:
    st = read_state(name)
    if st["state"] in ("activating", "active", "deactivating") and not pid_alive(st.get("manager_pid", 0)):
        return "failed"      # the manager itself died: nothing watches the unit any more
    return st["state"]


# -- the manager: systemd's part for one unit --------------------------------------------------------
class Journal:
    def __init__(self, name: str) -> None:
        self.name = name
        self.f = (state_dir() / f"{name}.journal").open("a")
        self.lock = threading.Lock()

    def write(self, pid: int, text: str) -> None:
        with self.lock:
            self.f.write(f"{time.time_ns()}\t{pid}\t{text.rstrip()}\n")
            self.f.flush()

    def copy(self, proc: subprocess.Popen) -> threading.Thread:
        def run() -> None:
            assert proc.stdout is not None
            for line in iter(proc.stdout.readline, b""):
                self.write(proc.pid, line.decode("utf-8", "replace"))
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def _limits_and_affinity(unit: dict[str, list[str]], journal: Journal) -> None:
    """Applied in the manager before it starts the service, so the service inherits them."""
    if "CPUAffinity" in unit:
        cpus = _cpus(last(unit, "CPUAffinity"))
        have = os.sched_getaffinity(0)
        if cpus <= have:
            os.sched_setaffinity(0, cpus)
        else:
            journal.write(os.getpid(), f"CPUAffinity={last(unit, 'CPUAffinity')}: CPUs "
                                       f"{sorted(cpus - have)} not on this machine; not applied")
    for key, res in LIMITS.items():
        if key not in unit:
            continue
        v = last(unit, key)
        n = resource.RLIM_INFINITY if v == "infinity" else int(v)
        try:
            resource.setrlimit(res, (n, n))
        except (ValueError, OSError) as e:
            journal.write(os.getpid(), f"{key}={v}: not allowed here ({e}); left as it is")


def manage(name: str) -> int:
    """The manager process (``systemd_standin.py _run STATE UNIT``)."""
    journal = Journal(name)
    st = {"state": "activating", "manager_pid": os.getpid(), "since_ns": time.time_ns()}
    write_state(name, st)
    try:
        unit = load_unit(name)
        env = service_env(unit)
        cwd = _test_dir(last(unit, "WorkingDirectory"), "WorkingDirectory") if "WorkingDirectory" in unit else "/"
        for key, base in (("StateDirectory", "/var/lib/"), ("LogsDirectory", "/var/log/")):
            for v in unit.get(key, []):
                Path(_test_dir(base + v, key)).mkdir(parents=True, exist_ok=True)
        _limits_and_affinity(unit, journal)
        for line in unit.get("ExecStartPre", []):
            argv, ignore = exec_argv(line)
            pre = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
            journal.copy(pre).join()
            code = pre.wait()
            if code and not ignore:
                raise UnitError(f"Control process exited, code=exited, status={code} ({line})")
        argv, _ = exec_argv(unit["ExecStart"][0])
        main = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except (UnitError, OSError) as e:
        journal.write(os.getpid(), f"{name}: {e}")
        write_state(name, {**st, "state": "failed", "error": str(e)})
        return 1
    reader = journal.copy(main)
    journal.write(os.getpid(), f"Started {name}.")
    write_state(name, {**st, "state": "active", "main_pid": main.pid})
    code = main.wait()
    if last(unit, "KillMode", "control-group") != "process":
        with contextlib.suppress(ProcessLookupError):
            os.killpg(main.pid, signal.SIGKILL)     # what is left of the control group
    reader.join(10)
    how = f"code=killed, signal={signal.Signals(-code).name}" if code < 0 else f"code=exited, status={code}"
    journal.write(os.getpid(), f"{name}: Main process exited, {how}")
    write_state(name, {**st, "state": "inactive" if code == 0 else "failed", "main_pid": main.pid,
                       "exit": code})
    return 0


# -- systemctl --------------------------------------------------------------------------------------------
def start(names: list[str]) -> int:
    rc = 0
    for name in names:
        load_unit(name)                                  # a unit that does not parse fails here
        if active_state(name) == "active":
            continue
        write_state(name, {"state": "activating", "manager_pid": 0})
        proc = subprocess.Popen([sys.executable, __file__, "_run", str(state_dir()), name],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env=dict(os.environ))
        deadline = time.monotonic() + 90
        while True:
            st = read_state(name)
            if st["state"] in ("active", "failed", "inactive") and st.get("manager_pid") == proc.pid:
                break
            if proc.poll() is not None:
                st = read_state(name)
                if st.get("manager_pid") != proc.pid or st["state"] == "activating":
                    st = {"state": "failed", "error": f"the unit's manager exited {proc.returncode}"}
                break
            if time.monotonic() > deadline:
                raise UnitError(f"{name}: start timed out")
            time.sleep(0.02)
        if st["state"] != "active":
            print(f"Job for {name} failed because the control process exited with error code.\n"
                  f'See "journalctl -u {name[:-8]}" for details. ({st.get("error", "")})', file=sys.stderr)
            rc = 1
    return rc


def _wait_inactive(name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while active_state(name) in ("active", "deactivating"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def stop(names: list[str]) -> int:
    for name in names:
        unit = load_unit(name)
        st = read_state(name)
        if active_state(name) != "active":
            continue
        main = int(st["main_pid"])
        sig = signal.Signals[last(unit, "KillSignal", "SIGTERM")]
        mode = last(unit, "KillMode", "control-group")
        with contextlib.suppress(ProcessLookupError):
            if mode == "control-group":
                os.killpg(main, sig)
            else:
                os.kill(main, sig)
        if not _wait_inactive(name, _seconds(last(unit, "TimeoutStopSec", "90s"))):
            print(f"{name}: State 'stop-sigterm' timed out. Killing.", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(main, signal.SIGKILL)
            _wait_inactive(name, 30)
    return 0


def kill(names: list[str], sig: signal.Signals, whom: str) -> int:
    for name in names:
        load_unit(name)
        st = read_state(name)
        if active_state(name) != "active":
            print(f"Failed to kill unit {name}: No main process to kill", file=sys.stderr)
            return 1
        with contextlib.suppress(ProcessLookupError):
            if whom == "main":
                os.kill(int(st["main_pid"]), sig)
            else:
                os.killpg(int(st["main_pid"]), sig)
    return 0


def is_active(names: list[str], quiet: bool) -> int:
    states = [active_state(n) for n in names]
    if not quiet:
        print("\n".join(states))
    return 0 if all(s == "active" for s in states) else 3


def _signal(text: str) -> signal.Signals:
    t = text.upper()
    if t.isdigit():
        return signal.Signals(int(t))
    return signal.Signals[t if t.startswith("SIG") else "SIG" + t]


def systemctl(argv: list[str]) -> int:
    args = [a for a in argv if a not in ("--no-pager", "--no-block")]
    if "--no-block" in argv:
        raise UnitError("--no-block is not implemented by the stand-in")
    if not args:
        raise UnitError("systemctl stand-in: a command is needed")
    cmd, rest = args[0], args[1:]
    if cmd in ("start", "stop", "is-active"):
        quiet = "--quiet" in rest or "-q" in rest
        names = [unit_name(a) for a in rest if not a.startswith("-")]
        if not names or any(a.startswith("-") and a not in ("--quiet", "-q") for a in rest):
            raise UnitError(f"systemctl {cmd}: unit names (and for is-active --quiet) only: {rest}")
        return {"start": lambda: start(names), "stop": lambda: stop(names),
                "is-active": lambda: is_active(names, quiet)}[cmd]()
    if cmd == "kill":
        sig, whom, names = signal.SIGTERM, "all", []
        it = iter(rest)
        for a in it:
            if a in ("-s", "--signal"):
                sig = _signal(next(it))
            elif a.startswith("--signal="):
                sig = _signal(a.split("=", 1)[1])
            elif a.startswith(("--kill-whom=", "--kill-who=")):
                whom = a.split("=", 1)[1]
                if whom not in ("all", "main"):
                    raise UnitError(f"systemctl kill: {a} is not implemented by the stand-in")
            elif a.startswith("-"):
                raise UnitError(f"systemctl kill: {a} is not implemented by the stand-in")
            else:
                names.append(unit_name(a))
        if not names:
            raise UnitError("systemctl kill: a unit is needed")
        return kill(names, sig, whom)
    raise UnitError(f"systemctl {cmd}: not implemented by the stand-in")


# -- journalctl -------------------------------------------------------------------------------------------
def _since(text: str, now_ns: int) -> int:
    t = text.strip()
    m = re.fullmatch(r"-(\d+)\s*(s|sec|min|m|h|d)", t)
    if m:
        unit = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return now_ns - int(m.group(1)) * unit * 1_000_000_000
    if t == "today":
        lt = time.localtime(now_ns / 1e9)
        return int(time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1)) * 1e9)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        with contextlib.suppress(ValueError):
            return int(time.mktime(time.strptime(t, fmt)) * 1e9)
    raise UnitError(f"journalctl --since {text!r}: not a time the stand-in reads")


def journalctl(argv: list[str]) -> int:
    units: list[str] = []
    since = 0
    lines: int | None = None
    it = iter(argv)
    for a in it:
        if a in ("-u", "--unit"):
            units.append(unit_name(next(it)))
        elif a.startswith("--unit="):
            units.append(unit_name(a.split("=", 1)[1]))
        elif a in ("-S", "--since"):
            since = _since(next(it), time.time_ns())
        elif a.startswith("--since="):
            since = _since(a.split("=", 1)[1], time.time_ns())
        elif a in ("-n", "--lines"):
            lines = int(next(it))
        elif a == "--no-pager":
            pass
        else:
            raise UnitError(f"journalctl {a}: not implemented by the stand-in (-f would never end in a test)")
    if not units:
        raise UnitError("journalctl: the stand-in shows one unit's journal: -u UNIT")
    out: list[tuple[int, str]] = []
    for name in units:
        load_unit(name)
        path = state_dir() / f"{name}.journal"
        with contextlib.suppress(OSError):
            for row in path.read_text().splitlines():
                t, pid, text = row.split("\t", 2)
                if int(t) >= since:
                    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(int(t) / 1e9))
                    out.append((int(t), f"{stamp} localhost {name[:-8]}[{pid}]: {text}"))
    out.sort(key=lambda r: r[0])
    if lines is not None:
        out = out[-lines:] if lines else []
    if not out:
        print("-- No entries --")
    for _, text in out:
        print(text)
    return 0


def main(argv: list[str]) -> int:
    tool, args = argv[0], argv[1:]
    try:
        if tool == "_run":
            os.environ["FASTMM_TEST_SYSTEMD_STATE"] = args[0]
            return manage(args[1])
        if tool == "systemctl":
            return systemctl(args)
        if tool == "journalctl":
            return journalctl(args)
    except (UnitError, StopIteration, KeyError, ValueError) as e:
        print(f"{tool} (test stand-in): {e or 'missing argument'}", file=sys.stderr)
        return 1
    print(f"unknown tool {tool}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
