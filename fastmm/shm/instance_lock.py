"""Which process is the live supervisor of an instance: an abstract Unix socket it holds.

A pid alone cannot say it: a dead supervisor's pid is reused by an unrelated process, and then
``fastmm status`` reports a running engine and ``fastmm stop`` signals a stranger. The supervisor
instead binds the abstract socket ``\\0fastmm.<instance>.supervisor`` and listens on it. The kernel
releases the name the moment the process dies (no file is left behind, nothing to clean up), only one
process can bind it, and a connecting client learns the holder's pid from the kernel (SO_PEERCRED),
not from a header that may be stale. The socket is close-on-exec, so a child never holds it.

Abstract names are per network namespace; the segments' creator pid and start time (segment.py) still
guard an instance shared across namespaces.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import time

from fastmm.shm.segment import InstanceRunning, segment_name

_PEERCRED = struct.Struct("3i")     # struct ucred: pid, uid, gid


def _address(instance: str) -> str:
    return "\0" + segment_name(instance, "supervisor")[1:]


def holder_pid(instance: str, timeout_s: float = 1.0) -> int | None:
    """The pid of the instance's live supervisor, None when no process holds the instance (0 when one
    holds it but has not answered within ``timeout_s``: its connection queue stays full)."""
    deadline = time.monotonic() + timeout_s
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(_address(instance))
            cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            pid: int = _PEERCRED.unpack(cred)[0]
            return pid
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        except BlockingIOError:         # the holder's queue is full until it drains it: ask again
            if time.monotonic() >= deadline:
                return 0
        finally:
            s.close()
        time.sleep(0.002)


class InstanceLock:
    """Held by the one live supervisor of an instance from before it touches anything until it exits."""

    def __init__(self, instance: str, sock: socket.socket) -> None:
        self.instance = instance
        self._sock: socket.socket | None = sock

    @classmethod
    def acquire(cls, instance: str) -> InstanceLock:
        """Take the instance, or raise InstanceRunning naming the live holder (nothing is changed)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(_address(instance))
        except OSError as e:
            s.close()
            if e.errno != errno.EADDRINUSE:
                raise
            pid = holder_pid(instance)
            who = f"supervisor pid {pid}" if pid else "its supervisor"
            raise InstanceRunning(f"instance {instance!r} is already running ({who}); stop it with "
                                  "`fastmm stop` or use another instance name") from None
        s.listen(16)
        s.setblocking(False)
        return cls(instance, s)

    @property
    def held(self) -> bool:
        return self._sock is not None

    def drain(self) -> None:
        """Close the connections of `holder_pid` callers, so its queue never fills (call it often)."""
        if self._sock is None:
            return
        for _ in range(64):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
